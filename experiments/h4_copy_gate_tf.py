# Experiment h4: the copy gate (h3) with teacher forcing only (h2).
MODEL_OVERRIDES = {'embed_dim': 48, 'hidden_dim': 64, 'n_layers': 2, 'dilations': (1, 2), 'film_dim': 64,
                   'attn_dim': 32, 'attn_heads': 2, 'idm_dim': 32, 'idm_hidden': 128, 'copy_gate': True}
AR_CURRICULUM = False
SEQ_LEN = 10                 # the same 10 predicted transitions per window as 6 TF + 4 AR

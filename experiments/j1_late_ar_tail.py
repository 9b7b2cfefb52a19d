# Experiment j1: the best so far (i0 = h4: copy gate + teacher forcing only) with a short autoregressive
# tail switched on late: the v6.2 recipe's AR tail bought turns (+1.3 dB over copy-last at 8 steps, f0)
# but cost the still world when it ran from step 300; here it runs only for the last quarter or so.
MODEL_OVERRIDES = {'embed_dim': 48, 'hidden_dim': 64, 'n_layers': 2, 'dilations': (1, 2), 'film_dim': 64,
                   'attn_dim': 32, 'attn_heads': 2, 'idm_dim': 32, 'idm_hidden': 128, 'copy_gate': True}
SEQ_LEN = 10                 # as i0: 10 teacher-forced transitions a window...
AR_CURRICULUM = True
AR_WARMUP_STEPS = 1300       # ...then from step 1,300 (of ~1,700 in 60 minutes) 2..4 AR steps after them
AR_MIN_LEN = 2
AR_MAX_LEN = 4

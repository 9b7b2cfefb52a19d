# Experiment k0: the best recipe (i0 = h4: copy gate + teacher forcing only) alone on the machine: both
# cores for one run (2 torch threads, channels_last: bench.py's fastest CPU setting) instead of one core
# each for two runs side by side. Same 60-minute wall-clock budget; what it buys is steps.
MODEL_OVERRIDES = {'embed_dim': 48, 'hidden_dim': 64, 'n_layers': 2, 'dilations': (1, 2), 'film_dim': 64,
                   'attn_dim': 32, 'attn_heads': 2, 'idm_dim': 32, 'idm_hidden': 128, 'copy_gate': True,
                   'channels_last': True}
AR_CURRICULUM = False
SEQ_LEN = 10
CPU_THREADS = 2
MAX_STEPS = 4000             # the cosine schedule's length: about what 60 minutes reach alone

# Experiment 3: the camera warp shifts every hidden map (the model's memory of the scene) instead
# of the input embedding only, so a turn moves what the model remembers, not just what it sees.
MODEL_OVERRIDES = {'embed_dim': 48, 'hidden_dim': 64, 'n_layers': 2, 'dilations': (1, 2), 'film_dim': 64,
                   'attn_dim': 32, 'attn_heads': 2, 'idm_dim': 32, 'idm_hidden': 128,
                   'camera_warp': 'hidden'}

# Experiment j0: the best so far (i0 = h4: copy gate + teacher forcing only) with the camera warp calibrated:
# content moves by the train clips' mean motion per camera bin (slow turn 0.4 cells a frame, fast 1.85,
# look 0.5), summed in the state, instead of 1 or 2 whole cells every frame. The whole-cell warp moves a
# slow turn 2.5x too far and the eval's 6 deg/frame turn (1.35 cells) 1.5x, which the copy gate then copies.
MODEL_OVERRIDES = {'embed_dim': 48, 'hidden_dim': 64, 'n_layers': 2, 'dilations': (1, 2), 'film_dim': 64,
                   'attn_dim': 32, 'attn_heads': 2, 'idm_dim': 32, 'idm_hidden': 128, 'copy_gate': True}
AR_CURRICULUM = False
SEQ_LEN = 10
WARP_CALIBRATE = True

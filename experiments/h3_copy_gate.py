# Experiment h3: the copy gate. The demo model gives "this cell keeps its token" ~0.4 probability on
# idle cells that keep it 70-80% of the time (eval.json teacher_forced.change_calibration), and
# the same on isolated movement: copying a token through a 48-d embedding and a 64-channel GRU is a
# hard identity map, so the keys have nothing to modulate. With the gate, staying is one learned
# logit per cell, read from the top map (so FiLM and the history set it).
MODEL_OVERRIDES = {'embed_dim': 48, 'hidden_dim': 64, 'n_layers': 2, 'dilations': (1, 2), 'film_dim': 64,
                   'attn_dim': 32, 'attn_heads': 2, 'idm_dim': 32, 'idm_hidden': 128, 'copy_gate': True}

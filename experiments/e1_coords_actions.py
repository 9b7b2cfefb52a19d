# Experiment 1: the model is told where each cell is (coordinate planes) and gets the action as
# input planes besides FiLM. Forward/back moves content away from / towards the screen centre,
# which translation-equivariant convs cannot place without knowing position.
MODEL_OVERRIDES = {'embed_dim': 48, 'hidden_dim': 64, 'n_layers': 2, 'dilations': (1, 2), 'film_dim': 64,
                   'attn_dim': 32, 'attn_heads': 2, 'idm_dim': 32, 'idm_hidden': 128,
                   'coord_channels': True, 'action_planes': True}

# Experiment z1 (not run yet): z3 (the latent model with a learned flow, trained on its own blurred error and gated
# off on idle: config/blockworld_latent_flow_60min.py) with the flow also moving the GRU's hidden maps after each
# step (LATENT_FLOW_HIDDEN), so that the recurrent state keeps where a texture went while the fed-back latent is
# snapped towards its codes (which drops the sub-cell phase the flow moved). Apply after
# config/blockworld_latent_flow_60min.py.
LATENT_FLOW_HIDDEN = True
LATENT_FLOW_ROUND = False    # (session 16) the base preset's rounded rollouts move the latent, not the hidden maps: not both

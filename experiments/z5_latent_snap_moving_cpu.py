# Experiment z5 (not run: the same snap at evaluation only, z3r_..._mov0, lost 6-13 dB on every key as the unsnapped
# latent ran off): z3 (config/blockworld_latent_flow_60min.py) with the fed-back latent snapped only after a still
# transition (LATENT_SNAP_MOVING = 0: no snap after a turn, a look or a movement key; LATENT_SNAP = 0.5 after idle
# ones), in its AR tail and so in every rollout. The snap keeps a still world from drifting, but it drops the
# sub-cell position a move left in the latent: a strafe of 0.25 cells a step moved perfectly for 8 steps decodes
# 2.8 dB worse with the snap (experiments/warp_blur.py). Apply after config/blockworld_latent_flow_60min.py.
LATENT_SNAP_MOVING = 0.0

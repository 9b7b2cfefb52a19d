# Experiment z5 (run in session 14, experiments/README.md item 40: the flow learns the strafe's true speed, the
# rollout holds it 8 steps and runs off by 16; 7 target columns, inside z3r's seed spread; at evaluation only, on z3r's
# weights, the same snap lost 6-13 dB, z3r_..._mov0): z3 (config/blockworld_latent_flow_60min.py) with the fed-back
# latent snapped only after a still transition (LATENT_SNAP_MOVING = 0: no snap after a turn, a look or a movement
# key; LATENT_SNAP = 0.5 after idle ones), in its AR tail and so in every rollout. The snap keeps a still world from drifting, but it drops the
# sub-cell position a move left in the latent: a strafe of 0.25 cells a step moved perfectly for 8 steps decodes
# 2.8 dB worse with the snap (experiments/warp_blur.py). Apply after config/blockworld_latent_flow_60min.py.
LATENT_SNAP_MOVING = 0.0

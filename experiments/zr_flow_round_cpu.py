# zr (session 15): z3r (config/blockworld_latent_flow_60min.py) + LATENT_FLOW_ROUND: the 8-step tail (and every
# rollout) moves the fed-back latent by the learned flow rounded to whole cells, each cell's sub-cell remainder kept
# for the next step (moved by the camera shift, cleared on idle). Items 34-40: the half-way snap takes back a
# strafe's 0.2 cells every step, and every way of keeping that motion (no snap, z5; the carried residual, zc) also
# kept the head's error and the blur of resampling it every step. Rounded, the moved latent stays on its codes (the
# snap takes nothing back) and only the geometry is carried, so the tail can learn the data's speed with the snap on.
#   DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh zr_flow_round_60 60 \
#       config/blockworld_latent_flow_60min.py experiments/zr_flow_round_cpu.py
LATENT_FLOW_ROUND = True
LATENT_FLOW_ROUND_TAIL = True   # (session 16: the base preset rounds rollouts only; zr / zr2 rounded the tail too)

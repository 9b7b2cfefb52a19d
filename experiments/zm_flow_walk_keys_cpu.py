# zm (session 21): zk's preset (config/blockworld_latent_flow_60min.py + a learned flow field per movement key) with a
# walk (a key down, the camera still) moved by the keys' fields alone (LATENT_FLOW_WALK_KEYS, model flow_walk_keys),
# which learn only from the pictures' own optical flow (LATENT_FLOW_TARGET, zf's weight 10), not from the latent
# losses. Taught by the latents the walk's flow shrinks to what the tokenizer's re-coding pays for (zk20 one step
# from the start states: S -0.03 cells a step outward, the truth -0.20) and the rollouts move about half of it
# (item 44); taught the geometry, the rounded rollouts move each cell a whole cell as often as the true walk does.
# Paired with zk20 (the same tokens and CPU).
#   DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh zm_flow_walk_keys_60 60 \
#       config/blockworld_latent_flow_60min.py experiments/zm_flow_walk_keys_cpu.py
LATENT_FLOW_KEYS = True
LATENT_FLOW_TARGET = 10.0
LATENT_FLOW_WALK_KEYS = True

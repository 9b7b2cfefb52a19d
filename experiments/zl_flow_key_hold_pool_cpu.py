# zl (session 21): zj's preset (zk's key fields + 16 hold bins + a flow field per key and frames held) with each
# per-bin field one shift for the whole map (LATENT_FLOW_KEY_HOLD_POOL, model flow_key_hold_pool). zj's per-cell
# fields took the jump's bounce at a sixth of its size: a bin holds ~2 transitions a batch, noise per cell; one shift
# per bin averages every cell's pull. Paired with zk20 and zj (the same tokens and CPU).
#   DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh zl_flow_key_hold_pool_60 60 \
#       config/blockworld_latent_flow_60min.py experiments/zl_flow_key_hold_pool_cpu.py
LATENT_FLOW_KEYS = True
KEY_HOLD_BINS = 16           # 1 .. 16 frames held (the last bin: 16 or more); a bounce takes ~9 frames here
LATENT_FLOW_KEY_HOLD = True
LATENT_FLOW_KEY_HOLD_POOL = True

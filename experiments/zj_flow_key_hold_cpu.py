# zj (session 20): zk's preset (config/blockworld_latent_flow_60min.py + a learned flow field per movement key) with
# the keys' hold counts (KEY_HOLD_BINS, z6's 16 bins) and a field per key and frames held (LATENT_FLOW_KEY_HOLD,
# model flow_key_hold). A held jump lifts the view for ~4 frames, drops it, then bounces (experiments item 37: the
# data's vertical motion +0.40 cells a step on frames 1-2, -0.14 on 7-8): jump's one field learns the mean of up and
# down, and through FiLM alone the count moved the flow half as far as the data and the rollouts did not rise (z6,
# rolled out interpolated before the rounded walk existed). A field per phase is a direct path from the count to the
# motion, and the rounded rollout (LATENT_FLOW_ROUND) adds its sub-cell steps up into whole rows. Paired with zk20
# (zk's preset on the same tokens and CPU): it loses, 9 target columns to 12 (jump 0.26 / 0.22, A 0.52 / 0.93, look
# down 0.58 / 0.97); the jump's fields took the bounce's shape at a sixth of its size (experiments item 46).
#   DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh zj_flow_key_hold_60 60 \
#       config/blockworld_latent_flow_60min.py experiments/zj_flow_key_hold_cpu.py
LATENT_FLOW_KEYS = True
KEY_HOLD_BINS = 16           # 1 .. 16 frames held (the last bin: 16 or more); a bounce takes ~9 frames here
LATENT_FLOW_KEY_HOLD = True

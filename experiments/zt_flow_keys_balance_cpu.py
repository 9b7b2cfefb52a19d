# zt (session 25, next step (l)): zk20's preset (config/blockworld_latent_flow_60min.py + the keys' learned fields,
# experiments/zk_flow_keys_cpu.py) with windows drawn by the inverse frequency of their action combinations
# (BALANCE_ACTIONS = 1.0). On the walk-fit recipe the balance gave W 0.98 and S 0.61, the highest S of any trained
# run, and lost both looks (zs, item 51); zk20 keeps the look down on seed 1337 (0.97). Does the balance raise S
# without the walk fields' cost to the look? Session 25 trained its first 500 steps on session 20's tokens and that
# workspace was lost; session 26 ran it on a fresh checkout's rebuilt tokens (`make experiments-data`), to the preset's
# 2,000-step cosine, side by side with zk's preset on the same tokens (zkr, its pair), one thread each:
#   DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh zt_flow_keys_balance_60 100 \
#       config/blockworld_latent_flow_60min.py experiments/zt_flow_keys_balance_cpu.py --CPU_THREADS=1
# Result (item 52): 4 target columns against zkr's 6 (S 0.16 / 0.11, look up 0.59 / 0.94, CF idle -1.6 dB); not kept.
LATENT_FLOW_KEYS = True
BALANCE_ACTIONS = 1.0

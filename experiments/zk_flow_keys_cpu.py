# zk (session 17): the preset (config/blockworld_latent_flow_60min.py: trained interpolated, rolled out with walks
# moved by whole cells) with a learned flow field per movement key (train.py LATENT_FLOW_KEYS, model flow_keys), added
# to the flow head's output while the key is down. One step from the val states z3r's flow for S is its flow for W
# (outward +0.038 / +0.040 cells, the same dx and dy) and the IDM reads its S rollouts as W 42% of the time, as S 8%:
# the head reads the keys only through FiLM and learned "a key is down", not which. Apply after the preset.
#   DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh zk_flow_keys_60 60 \
#       config/blockworld_latent_flow_60min.py experiments/zk_flow_keys_cpu.py
LATENT_FLOW_KEYS = True

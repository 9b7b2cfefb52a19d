# zo (written in session 22, run in session 23: LOSES, experiments item 49): zn's preset (the walk fields fitted
# from the data and frozen) with the keys' fields kept to walks (LATENT_FLOW_KEYS_WALK_ONLY, model
# flow_keys_walk_only): a turn's or look's flow is the head's alone. zn / zn2 met W on both seeds and lost the look
# down on both (0.75 / 0.72, zk20 0.97; item 48): 73% of the train split's looks down have a key down, and there the
# fields at full size were added to the head's flow, so the head might have learned the look net of them. Result
# (one seed, 1,297 steps): 11 columns against zk20's 12, the look down lower still (0.59), W 0.88, S 0.56: the
# fields added to looks were not what cost the look. Not run on a second seed.
#   DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh zo_walk_only_60 60 \
#       config/blockworld_latent_flow_60min.py experiments/zo_walk_fit_keys_walk_only_cpu.py
LATENT_FLOW_KEYS = True
LATENT_FLOW_WALK_KEYS = True
LATENT_FLOW_WALK_FIT = True
LATENT_FLOW_KEYS_WALK_ONLY = True

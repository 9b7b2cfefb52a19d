# zn (session 22): zm's model (config/blockworld_latent_flow_60min.py + a flow field per movement key, a walk moved
# by the keys' fields alone: LATENT_FLOW_WALK_KEYS) with those fields set at the start to the data's own mean walk
# per token cell and frozen (LATENT_FLOW_WALK_FIT: opticalflow.fit_walk_fields, the stored optical flow regressed on
# the keys over the train walks). zm's fields, taught by the flow target, reached 60-75% of that fit in 60 minutes;
# its weights given the fit after training followed best (zm_fit_fields: 12 columns, following 0.84 on 16 starts).
# Trained with the fit from the first step, the rest of the model learns around the walk it will be rolled out with.
# No flow target: nothing left for it to teach. Paired with zk20 and zm (the same tokens and CPU).
# Result (item 48): 11 target columns on seeds 1337 and 2 (zn, zn2) against zk20's 12: W 0.86 / 0.90, S 0.56 / 0.51
# (zk20 0.71 / 0.21), the look down lost on both (0.75 / 0.72, zk20 0.97). Not kept.
#   DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh zn_walk_fit_60 60 \
#       config/blockworld_latent_flow_60min.py experiments/zn_walk_fit_cpu.py
LATENT_FLOW_KEYS = True
LATENT_FLOW_WALK_KEYS = True
LATENT_FLOW_WALK_FIT = True

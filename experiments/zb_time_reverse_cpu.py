# zb (session 17): the preset (config/blockworld_latent_flow_60min.py: trained interpolated, rolled out with walks
# moved by whole cells) with half the windows that hold no jump or sprint played backwards (train.py TIME_REVERSE):
# every walk forward is then also a walk back, every strafe one the other way. S is the column furthest from its
# target in every run (0.02-0.20 against 0.70) while W, its mirror in time, reaches 0.42-0.68: the flow that moves
# the latent for S has its own parameters to learn from 13% of the transitions (W 45%). Apply after the preset.
#   DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh zb_time_reverse_60 60 \
#       config/blockworld_latent_flow_60min.py experiments/zb_time_reverse_cpu.py
TIME_REVERSE = 0.5

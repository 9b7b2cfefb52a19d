# fm0 (session 13): z3r (config/blockworld_latent_flow_60min.py) + a flow-matching head of width 64 (LATENT_FM):
# the model learns the distribution of the next latent around its mean prediction, and rollouts feed back
# mean + a sample (8 Euler steps from unit noise) instead of the mean, which smears whatever moves by part of a
# cell (experiments/README.md items 34-37). Everything else as z3r, so `--fm-steps 0` at evaluation rolls the same
# weights out with the mean.
#   DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh fm0_latent_fm_60 60 \
#       config/blockworld_latent_flow_60min.py experiments/fm0_latent_fm_cpu.py
LATENT_FM = 64
LATENT_FM_WEIGHT = 1.0
LATENT_FM_FRAMES = 4
LATENT_FM_STEPS = 8
LATENT_FM_TEMP = 1.0

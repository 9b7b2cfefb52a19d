# zc (session 14): z3r (config/blockworld_latent_flow_60min.py) + LATENT_CARRY=1.0: the 8-step tail (and every
# rollout) adds back, while a move goes on, what each half-way snap took off the fed-back latent, moved with the
# input by the camera shift and the learned flow (sigma-delta in time). The snap takes back a strafe's 0.2 cells
# every step (experiments/README.md items 34-37); carried, the parts add up until the codes flip. z3r's own weights
# rolled out with --latent-carry lost (item 39): the carry holds the head's error too, which the network never
# sees; trained with it (LATENT_AR_GRAD), the earlier steps' corrections learn what the carry will add.
#   DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh zc_latent_carry_60 60 \
#       config/blockworld_latent_flow_60min.py experiments/zc_latent_carry_cpu.py
LATENT_CARRY = 1.0

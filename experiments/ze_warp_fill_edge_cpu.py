# ze (session 19): the preset (config/blockworld_latent_flow_60min.py) with the rows a pitch warp uncovers filled by
# the border row instead of zeros (train.py WARP_FILL, model warp_fill). A look down uncovers the bottom rows: ground
# the head paints from a flat mean latent, and the rollouts' ground is re-textured, not moved (item 44). Rolled out on
# z3g1's / zkg's weights (trained with zeros) the fill changed nothing (look down 0.86 -> 0.88, 0.53 -> 0.55; the
# rows move no further): trained with it, does the head learn to continue the ground? Apply after the preset.
#   DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh ze_warp_fill_edge_60 60 \
#       config/blockworld_latent_flow_60min.py experiments/ze_warp_fill_edge_cpu.py
WARP_FILL = 'edge'

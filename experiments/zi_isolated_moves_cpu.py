# zi (session 16, next step (7)): the preset (config/blockworld_latent_flow_60min.py: trained interpolated, rolled out
# with walks moved by whole cells) with half the windows drawn by their share of isolated movement (a key down, the
# camera still: the transitions a rounded walk moves). W and look down are the columns nearest their targets and move
# most between runs; h1 (session 3, the token model) drew windows so without a win. Apply after the preset.
#   DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh zi_isolated_moves_60 47 \
#       config/blockworld_latent_flow_60min.py experiments/zi_isolated_moves_cpu.py
ISOLATED_MOVES = 0.5

# zf (session 18): the preset (config/blockworld_latent_flow_60min.py) with the learned flow also taught the
# pictures' own motion on walking transitions (train.py LATENT_FLOW_TARGET: squared distance to the optical flow of
# preprocess.py --flow, per cell weighted by its share of textured, forward-backward consistent pixels). On the
# blockworld clips that flow, at the token grid on textured cells, moves content under W left / right by
# -0.17 / +0.10 cells a step and the lower half down by +0.17 (S the mirror, A +0.41 sideways); from the latents
# alone z3r's flow for S was its flow for W (+0.04 outward). Weight 10: the flow's own blurred loss has weight 10
# too, and both errors start near 0.05. Needs the tokens with flow (the same tokens and latents as
# runs/exp/tokens_lat; `make experiments-data` builds them with --flow):
#   DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh zf_flow_target_60 60 \
#       config/blockworld_latent_flow_60min.py experiments/zf_flow_target_cpu.py
# Result (experiments item 44): 8 and 7 target columns on two seeds against the preset's 9 and 8; W up, look down down.
LATENT_FLOW_TARGET = 10.0

# zf (session 18): the preset (config/blockworld_latent_flow_60min.py) with the learned flow also taught the
# pictures' own motion on walking transitions (train.py LATENT_FLOW_TARGET: L1 to the optical flow of
# preprocess.py --flow, per cell weighted by its reliability). On the blockworld clips the optical flow at the
# token grid moves content outwards by +0.16 cells a step under W and -0.19 under S; from the latents alone z3r's
# flow was +0.04 for both. Needs the tokens with flow (same tokens and latents as runs/exp/tokens_lat):
#   python preprocess.py --input data/blockworld --output runs/exp/tokens_lat_flow --vqvae runs/vqvae_demo_check/vqvae.pt \
#       --latents --flow --yaw-edges 0.325,4.285 --pitch-edge 0.433 --workers 1
#   DATA=runs/exp/tokens_lat_flow VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh zf_flow_target_60 60 \
#       config/blockworld_latent_flow_60min.py experiments/zf_flow_target_cpu.py
LATENT_FLOW_TARGET = 1.0

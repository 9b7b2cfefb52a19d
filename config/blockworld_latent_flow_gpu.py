# train.py preset: config/blockworld_latent_flow_60min.py's recipe (the latent world model with a learned, gated
# flow; rolled out with walks moved by whole cells) at batch 32 on a GPU: experiments/README.md z3g (session 16).
# Apply after config/demo_cpu.py and config/blockworld_latent_flow_60min.py:
#   python train.py config/demo_cpu.py config/blockworld_latent_flow_60min.py config/blockworld_latent_flow_gpu.py \
#       --DATA_DIR=runs/demo/tokens_lat --VQVAE_CKPT=runs/demo/vqvae/vqvae.pt
# z3g ran 7.7 minutes on a lent H200 beside two other runs (5.8 steps/s) and stopped at its time limit at step 2,911
# of this cosine's 3,284. Alone on an H200 bench.py measured 7.4-9.2 steps/s for this model at batch 8, and the
# step is launch-bound, so the whole cosine should fit ~6-8 minutes (not measured alone at batch 32). Rolled out rounded (its checkpoint's own flow_round; evaluate.py --flow-round 1
# for z3g, trained before the preset saved it) it meets 9 target columns with the highest following yet (0.78; W
# 0.59, A / D 0.98 / 1.02, sensitivity 0.93, the still world kept: CF idle -0.6 / -0.8 dB); look down 0.81, S, jump
# and +2 dB over copy-last for the keys (-1.5 to -2.2 dB @8) are missed. The demo model is launch-bound on a GPU.
OUT_DIR = 'runs/blockworld_latent_flow_gpu'
BATCH_SIZE = 32
MAX_STEPS = 3284
CPU_THREADS = 4
NUM_WORKERS = 3
EVAL_STEPS = 1000            # the demo preset's 250 would evaluate every few seconds on a GPU
IMAGE_LOG_STEPS = 2000
CKPT_STEPS = 1000

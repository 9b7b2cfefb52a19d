# VQ-VAE demo preset: trains on the blockworld dataset in under 15 minutes on a 2-core CPU.
#   python train_vqvae.py config/vqvae_demo.py
# Same 128x72 -> 32x18 grid as v2.1.6, with narrower convs and a smaller codebook so that
# thousands of steps fit in the time budget.
DATA_DIR = 'data/blockworld'
OUT_DIR = 'runs/demo/vqvae'
VAL_FRACTION = 0.1

HIDDEN1 = 32
HIDDEN2 = 64
EMBEDDING_DIM = 64
CODEBOOK_SIZE = 512

BATCH_SIZE = 16
LR = 1e-3
MIN_LR = 1e-4
WARMUP_STEPS = 200
MAX_STEPS = 20000
TIME_LIMIT_MIN = 12.0           # training-loop minutes; data decoding + final eval fit in the rest of 15
LPIPS_RAMP_STEPS = 1000
LPIPS_BATCH = 4                 # LPIPS on 4 of the 16 images: AlexNet is the costliest part on a CPU

LOG_INTERVAL = 50
EVAL_INTERVAL = 1000
SAMPLE_INTERVAL = 1000
CKPT_INTERVAL = 1000
VAL_MAX_FRAMES = 256

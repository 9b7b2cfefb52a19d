# VQ-VAE preset with the design v2.1.6 sizes (128x72 -> 32x18, 1024 codes x 384, ~3.7M params each
# for encoder and decoder), for a GPU and the GF-Minecraft data.
#   python train_vqvae.py config/vqvae_v216.py --DATA_DIR=/path/to/data_2003
DATA_DIR = 'data/gf/data_2003'
OUT_DIR = 'checkpoints/vqvae_v216'
VAL_FRACTION = 0.05

# GF clips are 2,000 frames at 16 FPS; neighbouring frames are near-duplicates, so keep ~100 per clip
# (~5.5 GB of uint8 frames in RAM for 2,000 clips).
FRAME_STRIDE = 8
MAX_FRAMES_PER_CLIP = 100
DECODE_WORKERS = 8
VAL_MAX_FRAMES = 1024

HIDDEN1 = 128
HIDDEN2 = 384
EMBEDDING_DIM = 384
CODEBOOK_SIZE = 1024

BATCH_SIZE = 64
LR = 3e-4
MIN_LR = 3e-5
WARMUP_STEPS = 1000
MAX_STEPS = 60000
LPIPS_WEIGHT = 0.15
LPIPS_RAMP_STEPS = 5000
LPIPS_BATCH = 0                 # all of the batch: cheap on a GPU

LOG_INTERVAL = 100
EVAL_INTERVAL = 2500
SAMPLE_INTERVAL = 2500
CKPT_INTERVAL = 2500
NUM_THREADS = 0                 # leave torch's CPU thread count alone on a GPU box

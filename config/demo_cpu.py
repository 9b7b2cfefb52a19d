# train.py preset: a demo-scale world model that trains in minutes on a 2-core CPU, on blockworld.
#   python train.py config/demo_cpu.py            (make demo runs this after the VQ-VAE and preprocess)
DATA_DIR = 'runs/demo/tokens'
VQVAE_CKPT = 'runs/demo/vqvae/vqvae.pt'
OUT_DIR = 'runs/demo/wm'
MODEL_PRESET = 'demo'
# smaller than the 'demo' preset's 3 layers of 128: a CPU step must take well under a second
MODEL_OVERRIDES = {'embed_dim': 48, 'hidden_dim': 64, 'n_layers': 2, 'dilations': (1, 2), 'film_dim': 64,
                   'attn_dim': 32, 'attn_heads': 2, 'idm_dim': 32, 'idm_hidden': 128}
BATCH_SIZE = 8
SEQ_LEN = 6
NUM_WORKERS = 1
LR = 1e-3
MIN_LR = 1e-4
WARMUP_STEPS = 100
MAX_STEPS = 3000
AR_WARMUP_STEPS = 300
AR_MIN_LEN = 2
AR_MAX_LEN = 4
GUMBEL_TAU_STEPS = 2000
LPIPS_FRAMES = 2
LPIPS_BOOST_RAMP_STEPS = 500
CORRUPT_RAMP_STEPS = 500
ENTROPY_STEPS = 500
LOG_STEPS = 10
IMAGE_LOG_STEPS = 250
EVAL_STEPS = 250
EVAL_WINDOWS = 8
CKPT_STEPS = 250
TIME_LIMIT_MIN = 6.0
CPU_THREADS = 1              # one thread per process: 2 threads on 2 busy cores thrash

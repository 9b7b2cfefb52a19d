# Experiment n0: k0's recipe (copy gate, teacher forcing only) on a lent GPU, batch 32 instead of 8:
# a GPU step of this tiny model costs about the same at batch 8 or 32 (launch-bound), so the larger
# batch buys data, not time. Apply after experiments/k0_solo_two_threads.py; set MAX_STEPS so the
# cosine schedule ends inside the wall-clock budget (measured steps/s x minutes).
BATCH_SIZE = 32
CPU_THREADS = 4              # several runs share the GPU machine's 16 cores
NUM_WORKERS = 3
EVAL_STEPS = 1000            # the demo preset's 250 would evaluate every few seconds on a GPU
IMAGE_LOG_STEPS = 2000
CKPT_STEPS = 1000

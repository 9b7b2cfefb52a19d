# z5g (next step (5), experiments/README.md item 40): z5 (LATENT_SNAP_MOVING=0 on z3r's preset) held the data's
# strafe speed for its tail's 8 steps and ran off after; the same recipe with a 16-step tail, so the steps it is
# measured on (counterfactuals at 8 and 16) are the steps it is trained on. A 16-step tail costs about twice a step
# of the 8-step one, so it is for a GPU (experiments/gpu_side_by_side.sh). Apply after experiments/z5_latent_snap_moving_cpu.py.
AR_MIN_LEN = 16
AR_MAX_LEN = 16

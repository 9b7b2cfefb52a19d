# Experiment w0: v0 (latent I/O) with a fixed 4-step autoregressive tail whose fed-back latents keep their
# gradient (LATENT_AR_GRAD). Apply after experiments/v0_latent_io.py. v0 rolled out contracted to one code
# within a few steps (idle CF -7.5 dB at 8 steps, 512-step idle unique codes 0.01): iterating a regression
# towards the conditional mean shrinks the picture; v1 (the same tail, detached, braked to 2 steps) halved
# that. Backprop through the model's own latents lets the later steps' loss correct the drift it caused.
AR_CURRICULUM = True
SEQ_LEN = 6                  # 6 teacher-forced + 4 autoregressive transitions a window
AR_WARMUP_STEPS = 300
AR_MIN_LEN = 4
AR_MAX_LEN = 4
AR_BRAKE = False             # fixed length: the brake held v1 at 2 steps
LATENT_AR_GRAD = True

# Experiment x0: the latent model's best GPU recipe (w2: an 8-step autoregressive tail with gradient through
# the fed-back latents, input noise 0.2) with the tail fed back as the rollouts that held still were
# (LATENT_SNAP = 0.5: the latent moved half way to its nearest codes), on this 2-core CPU for 60 minutes,
# both cores: the budget k0 (the token model, config/blockworld_60min.py) had. Apply after
# experiments/v0_latent_io.py and experiments/w0_latent_ar_grad.py; evaluate with --latent-snap 0.5.
SEQ_LEN = 4                  # 4 teacher-forced + 8 autoregressive transitions a window
AR_MIN_LEN = 8
AR_MAX_LEN = 8
LATENT_NOISE = 0.2
LATENT_SNAP = 0.5
CPU_THREADS = 2
MAX_STEPS = 2000             # the cosine schedule's length: about what 60 minutes reach alone (~0.55 steps/s)

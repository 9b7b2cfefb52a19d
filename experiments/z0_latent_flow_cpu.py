# Experiment z0: x0 (the latent model on this CPU: an 8-step autoregressive tail with gradient through its fed-back
# latents, snapped half way, input noise 0.2) with a learned per-cell flow (LATENT_FLOW: at most 1 cell a step)
# that moves the input latent before the head's correction. Session 9's next step (2): x0's rollouts drift
# because a regression head can only blend a walk's sub-cell, depth-dependent motion (a blur that feeds back);
# a flow moves the content itself. Apply after experiments/v0_latent_io.py, experiments/w0_latent_ar_grad.py and
# experiments/x0_latent_snap_cpu.py; the same 2,000-step cosine as x0; evaluate with --latent-snap 0.5 and 1.
LATENT_FLOW = 1.0

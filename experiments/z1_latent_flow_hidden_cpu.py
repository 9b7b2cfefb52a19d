# Experiment z1: z0 (the latent model with a learned flow on this CPU) with the flow also moving the GRU's hidden
# maps after each step (LATENT_FLOW_HIDDEN), so that the recurrent state keeps where a texture went while the
# fed-back latent is snapped towards its codes (which drops the sub-cell phase the flow moved). Apply after
# experiments/v0_latent_io.py, w0_latent_ar_grad.py, x0_latent_snap_cpu.py and z0_latent_flow_cpu.py.
LATENT_FLOW_HIDDEN = True

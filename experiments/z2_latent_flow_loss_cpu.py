# Experiment z2: z0 (the latent model with a learned flow on this CPU) with the flow also trained on its own
# (LATENT_FLOW_WEIGHT: MSE between the blurred input latent moved by the flow and the blurred next latent). z0's
# flow barely learned the walk (outward 0.03 cells a step under W) and moved the idle world (|flow| 0.11):
# through the whole prediction the correction explains what the flow should, and a block texture's latent gives
# the warp a gradient that points anywhere past a fraction of a cell. Apply after experiments/v0_latent_io.py,
# w0_latent_ar_grad.py, x0_latent_snap_cpu.py and z0_latent_flow_cpu.py.
LATENT_FLOW_WEIGHT = 10.0         # its blurred error is ~1/20 of the latent MSE (0.025 vs 0.5 at the start)

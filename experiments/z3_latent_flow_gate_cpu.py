# Experiment z3: z0 (the latent model with a learned flow on this CPU) with the flow gated off on idle transitions
# (LATENT_FLOW_GATE: zero when the camera is still and no movement key is down). z0's flow moved the idle world by
# 0.11 cells a step, and its 512-step idle rollouts blurred away (unique codes 0.17, x0 0.74): bilinear sampling
# lowers the MSE by blurring (experiments/latent_flow_fit.py), and a blur fed back grows. Apply after
# experiments/v0_latent_io.py, w0_latent_ar_grad.py, x0_latent_snap_cpu.py and z0_latent_flow_cpu.py.
LATENT_FLOW_GATE = True

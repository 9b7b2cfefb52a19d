# Experiment z3: z2 (the latent model with a learned flow trained on its own blurred error, on this CPU) with the
# flow gated off on idle transitions (LATENT_FLOW_GATE: zero when the camera is still and no movement key is down).
# z2's flow still moved the idle world by 0.13 cells a step and its 512-step idle rollouts lost half their detail
# (unique codes 0.45, CF idle -1.1 dB at 16 steps): bilinear sampling lowers the MSE by blurring
# (experiments/latent_flow_fit.py), and a blur fed back grows. Apply after experiments/v0_latent_io.py,
# w0_latent_ar_grad.py, x0_latent_snap_cpu.py, z0_latent_flow_cpu.py and z2_latent_flow_loss_cpu.py.
LATENT_FLOW_GATE = True

# Experiment z4: z3 (the latent model with a learned flow, trained on its own blurred error and gated off on idle:
# config/blockworld_latent_flow_60min.py) with the flow sampling bicubically (LATENT_FLOW_MODE). z3 slides a strafe
# the right way, but every key stayed 0.2-1.3 dB under copy-last: a fraction of a cell a step, resampled
# bilinearly every step, is a blur that compounds (experiments/warp_blur.py measures how much, each way).
# Apply after config/blockworld_latent_flow_60min.py.
LATENT_FLOW_MODE = 'bicubic'

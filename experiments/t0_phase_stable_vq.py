# Experiment t0 (tokenizer half): train_vqvae.py preset, on top of config/vqvae_demo.py. Codes that do
# not flip with a texture's sub-cell phase (item 24: the demo VQ-VAE re-codes 44% of cells under a 1-px
# shift): each batch also goes through the encoder moved by up to 1.5 px and zoomed by up to 2%, and the
# latents of the two are pulled together (vqvae.shift_distance). w = 0.25 halves what a walk's frame
# re-codes (35% -> 17%) for 1.2 dB of reconstruction (item 26); t1 used --SHIFT_CONSISTENCY=0.05.
#   python train_vqvae.py config/vqvae_demo.py experiments/t0_phase_stable_vq.py --OUT_DIR=runs/exp/vq_shift_w0.25 --NUM_THREADS=1
SHIFT_CONSISTENCY = 0.25
SHIFT_MAX_PX = 1.5
ZOOM_MAX = 0.02

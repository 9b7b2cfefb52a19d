# Experiment v0: the model reads and predicts the VQ-VAE's continuous pre-quantization latents (LATENTS)
# instead of token ids, on k0's recipe (teacher forcing only, both cores, 60 minutes). Session 8: a token
# cannot say where inside its cell a texture sits, so which cells a walk re-codes is a coin flip to a token
# model and "unchanged" wins; the latent keeps the sub-cell phase. The prediction is the warped input
# latent plus a correction (so no copy gate), scored by its MSE and by CE on the codes' distance logits;
# LPIPS compares the decoded predicted latent with the decoded true one. Data: preprocess.py --latents.
MODEL_OVERRIDES = {'embed_dim': 48, 'hidden_dim': 64, 'n_layers': 2, 'dilations': (1, 2), 'film_dim': 64,
                   'attn_dim': 32, 'attn_heads': 2, 'idm_dim': 32, 'idm_hidden': 128, 'channels_last': True}
LATENTS = True
LATENT_WEIGHT = 1.0
SEMANTIC_WEIGHT = 0.0        # the Gumbel codebook-space loss: the latent MSE says the same, exactly
CORRUPT_MAX = 0.0            # token corruption: the latents are read, not the tokens
ENTROPY_WEIGHT = 0.0         # an entropy bonus on distance logits would only push the latent off every code
AR_CURRICULUM = False
SEQ_LEN = 10
CPU_THREADS = 2
MAX_STEPS = 4000

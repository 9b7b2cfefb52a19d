"""What does moving a latent by a fraction of a cell every step cost the picture, bilinear against bicubic?

    python experiments/warp_blur.py runs/exp/tokens_lat runs/vqvae_demo_check/vqvae.pt

A strafe moves content ~0.2-0.3 cells a frame; the learned flow (model_convGru.py flow_warp) moves the fed-back
latent that much every step, so a rollout resamples its picture again and again. Here real latents (val
frames) are moved right by SHIFT cells a step for STEPS steps, compounded, each way (and with the rollouts'
snap: half way to the nearest codes after each step), and decoded; the target is the same latent moved once
by the whole distance, a whole number of cells, so exactly. PSNR (dB) against that target over the columns
no border fill reaches, with copying (no move) for scale: what the motion is worth against what its blur costs.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from latent_flow_fit import latent_cache  # noqa: E402
from model_convGru import warp_by_flow  # noqa: E402
from vqvae import load_vqvae  # noqa: E402

SHIFT = 0.25         # cells a step (a strafe moves ~0.2-0.3)
STEPS = 8            # 8 steps: 2 whole cells, the target is exact
SNAP = 0.5           # the rollouts' feedback (train.py LATENT_SNAP)
FRAMES = 64          # val frames, spread evenly


def psnr(a, b):
    mse = (a - b).pow(2).mean((1, 2, 3)).clamp(min=1e-10)
    return (10 * torch.log10(1 / mse)).mean().item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data', help='a preprocess.py --latents output folder')
    p.add_argument('vqvae', help='the VQ-VAE the latents came from')
    p.add_argument('--out', default=None, help='write the figures as JSON here')
    args = p.parse_args(argv)
    cache = latent_cache(args.data)
    vq = load_vqvae(args.vqvae).eval()
    rows = np.concatenate([np.arange(c['start'], c['start'] + c['length']) for c in cache.clips
                           if c['split'] == 'val'])
    rows = rows[np.linspace(0, len(rows) - 1, FRAMES).round().astype(int)]
    z = torch.from_numpy(np.array(cache.latents[rows])).float()                    # (N, D, H, W)
    N, D, H, W = z.shape

    def snap(x):   # half way to the nearest code vectors, as rollout.snap_latent with the decoded tokens
        flat = x.permute(0, 2, 3, 1).reshape(-1, D)
        near = vq.quantizer.lookup(vq.quantizer.nearest(flat)).view(N, H, W, D).permute(0, 3, 1, 2)
        return torch.lerp(x, near, SNAP)

    step = torch.zeros(N, 2, H, W)
    step[:, 0] = SHIFT
    total = SHIFT * STEPS
    target = warp_by_flow(z, step * STEPS)                     # a whole number of cells: an exact move
    moves = {'copy (no move)': z, 'one move of the whole distance': target}
    for mode in ('bilinear', 'bicubic'):
        for snapped in (False, True):
            x = z
            for _ in range(STEPS):
                x = warp_by_flow(x, step, mode)
                x = snap(x) if snapped else x
            moves[f'{mode} x{STEPS}' + (f', snap {SNAP}' if snapped else '')] = x
    cols = slice(int(np.ceil(total)) * 4 + 4, W * 4 - 4)      # pixels no border fill reaches (4 px a cell)
    with torch.no_grad():
        ref = vq.decoder(target).clamp(0, 1)[..., cols]
        res = {name: psnr(vq.decoder(x).clamp(0, 1)[..., cols], ref) for name, x in moves.items()}
    print(f"{N} val frames moved {SHIFT} cells a step for {STEPS} steps ({total} cells); PSNR (dB) against "
          f"the exact move")
    for name, v in res.items():
        print(f"  {name:36s} {v:6.2f}")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(shift=SHIFT, steps=STEPS, snap=SNAP, frames=N, psnr=res), f, indent=1)


if __name__ == '__main__':
    main()

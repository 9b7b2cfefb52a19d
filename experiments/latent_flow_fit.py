"""Which flow explains what a key does to the VQ-VAE's continuous latent, and what does a flow gain by blurring?

    python experiments/latent_flow_fit.py runs/exp/tokens_lat

The learned flow of a latent model (model_convGru.py flow_warp, train.py LATENT_FLOW) moves frame t's latent
by bilinear sampling. Here frame t's real latent (per-channel standardised) is moved by hand-made flows, a
zoom about the centre (flow = k * (cell - centre): forward k > 0, back k < 0) or a sideways shift of dx cells
(strafe left moves content right, dx > 0), or the flow of walking over level ground seen by a level
camera (rows under the horizon move down and outwards, the more the nearer; the sky stays), and scored by its MSE to frame t+1's latent (the border 2 cells
left out), plain and with both sides blurred as train.py's LATENT_FLOW_WEIGHT loss does. Copying is flow 0.
If every flow beats the copy on the idle world too, bilinear sampling wins by blurring, not by moving.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evaluate import key_classes  # noqa: E402
from model_convGru import warp_by_flow  # noqa: E402
from tokendata import TokenCache  # noqa: E402
from train import flow_blur as blur  # noqa: E402

ZOOMS = (-0.04, -0.02, 0.0, 0.02, 0.04)     # cells of outward motion per cell from the centre, a step
GROUNDS = (-0.01, -0.005, 0.005, 0.01)      # walking over flat ground, level camera: a cell d rows under the
                                            # horizon (the middle row) moves k * d * (d, x - centre) cells
SHIFTS = (-0.4, -0.2, 0.0, 0.2, 0.4)        # cells to the right, a step
MAX_PAIRS = 200                              # per transition class


def latent_cache(path):
    """The TokenCache of a preprocess.py --latents folder (one torch thread: these scripts run beside training)."""
    torch.set_num_threads(1)
    cache = TokenCache(path)
    if not cache.latent_dim:
        sys.exit(f"{path}: no latents (run preprocess.py --latents)")
    return cache


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data', help='a preprocess.py --latents output folder')
    p.add_argument('--out', default=None, help='write the figures as JSON here')
    args = p.parse_args(argv)
    cache = latent_cache(args.data)
    rows = np.concatenate([np.arange(c['start'], c['start'] + c['length'] - 1) for c in cache.clips])
    lat = cache.latents
    sample = torch.from_numpy(np.array(lat[rows[::max(1, len(rows) // 2000)]])).float()
    mean, std = sample.mean((0, 2, 3))[:, None, None], sample.std((0, 2, 3))[:, None, None]
    H, W = cache.grid
    ys, xs = torch.meshgrid(torch.arange(H) - (H - 1) / 2, torch.arange(W) - (W - 1) / 2, indexing='ij')
    res = {}
    classes = key_classes(np.asarray(cache.actions)[rows])
    for name in ('idle', 'forward', 'strafe_left', 'back', 'strafe_right'):
        sel = rows[classes[name]][:MAX_PAIRS]
        if not len(sel):
            continue
        z0 = (torch.from_numpy(np.array(lat[sel])).float() - mean) / std
        z1 = (torch.from_numpy(np.array(lat[sel + 1])).float() - mean) / std
        flows = {f'zoom {k:+.2f}': torch.stack([k * xs, k * ys]) for k in ZOOMS if k}
        below = (ys).clamp(min=0)                               # rows under the middle one
        flows.update({f'ground {k:+.3f}': torch.stack([k * below * xs, k * below * below]) for k in GROUNDS})
        flows.update({f'shift {d:+.1f}': torch.stack([torch.full((H, W), d), torch.zeros(H, W)]) for d in SHIFTS if d})
        flows['copy'] = torch.zeros(2, H, W)
        r = res[name] = {'pairs': int(len(sel))}
        for label, f in flows.items():
            moved = warp_by_flow(z0, f[None].expand(len(sel), 2, H, W))
            mse = lambda a, b: float((a - b)[..., 2:-2, 2:-2].pow(2).mean())
            r[label] = dict(mse=mse(moved, z1), blurred=mse(blur(moved), blur(z1)))
    for key in ('mse', 'blurred'):
        labels = [k for k in next(iter(res.values())) if k != 'pairs']
        print(f"\n{key} (standardised latent; copy = flow 0)\n{'class':<14}{'pairs':>6} " + ' '.join(f'{k:>11}' for k in labels))
        for name, r in res.items():
            print(f"{name:<14}{r['pairs']:>6} " + ' '.join(f"{r[k][key]:>11.4f}" for k in labels))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(res, f, indent=1)
    return res


if __name__ == '__main__':
    main()

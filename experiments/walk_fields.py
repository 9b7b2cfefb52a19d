"""The movement keys' mean motion per token cell, fitted from the data's own optical flow, and (--into) a copy of a
key-field checkpoint with its fields set to it.

    python experiments/walk_fields.py runs/exp/tokens_lat
    python experiments/walk_fields.py runs/exp/tokens_lat --into runs/exp/zm_flow_walk_keys_60 --out runs/exp/zm_fit

On the train transitions with a movement key down and the camera still (the walks LATENT_FLOW_TARGET teaches), each
cell's optical flow (preprocess.py --flow: dx, dy in cells, reliability) is regressed on the five keys (W A S D jump
down or up), weighted by reliability: the fields of a model whose walk flow is the sum of the down keys' fields
(model flow_walk_keys). Prints each key's mean |flow|, dx, dy and outward motion, and with --into the same for the
checkpoint's learned fields; --out then gets the checkpoint with key_flow = atanh(fit / flow_warp), for evaluate.py.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import actions as A  # noqa: E402
from atomicio import atomic_torch_save  # noqa: E402
from inference import resolve_checkpoint  # noqa: E402
from model_convGru import MOVEMENT_KEYS  # noqa: E402
from tokendata import TokenCache  # noqa: E402

KEYS = 'W A S D jump'.split()


def fit_walk_fields(cache, ridge=1e-3):
    """(5, 2, H, W) float64: per cell, the reliability-weighted least squares of the optical flow on the down keys,
    over the train transitions with a key down and the camera still; and how many transitions that is."""
    if not cache.has_flow:
        raise ValueError(f"{cache.dir}: no optical flow (preprocess.py --flow)")
    rows = np.concatenate([np.arange(c['start'], c['start'] + c['length'] - 1)
                           for c in cache.clips if c['split'] == 'train'])
    act = np.asarray(cache.actions[rows])
    walk = A.isolated_movement(act)
    rows = rows[walk]
    x = (act[walk][:, list(MOVEMENT_KEYS)] > 0.5).astype(np.float64)                            # (N, 5)
    flow = np.asarray(cache.flow[rows], dtype=np.float64)                                      # (N, 3, H, W)
    w = flow[:, 2]
    gram = np.einsum('nk,nhw,nl->hwkl', x, w, x) + ridge * np.eye(x.shape[1])
    fields = np.stack([np.linalg.solve(gram, np.einsum('nk,nhw,nhw->hwk', x, w, flow[:, c])[..., None])[..., 0]
                       for c in range(2)])                                                     # (2, H, W, 5)
    return fields.transpose(3, 0, 1, 2), len(rows)


def describe(fields):
    """(5, 2, H, W) -> one line per key: mean |flow|, dx, dy and outward (along the ray from the centre)."""
    f = np.asarray(fields, dtype=np.float64)
    H, W = f.shape[-2:]
    ys, xs = np.meshgrid(np.arange(H) - (H - 1) / 2, np.arange(W) - (W - 1) / 2, indexing='ij')
    ray = np.stack([xs, ys]) / np.hypot(xs, ys)
    return [f"{k:5s} |flow| {np.hypot(*f[i]).mean():.3f}  dx {f[i, 0].mean():+.3f}  dy {f[i, 1].mean():+.3f}  "
            f"outward {(f[i] * ray).sum(0).mean():+.3f}" for i, k in enumerate(KEYS)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data', help='a preprocess.py --flow output folder')
    p.add_argument('--into', help='a key-field checkpoint (file or run folder) to compare with / copy')
    p.add_argument('--out', help='with --into: a folder for the copy with the fitted fields')
    args = p.parse_args(argv)
    fields, n = fit_walk_fields(TokenCache(args.data))
    print(f"fitted from {n} train transitions with a key down and the camera still (cells a step):")
    print('\n'.join(describe(fields)))
    if not args.into:
        return fields
    path = resolve_checkpoint(args.into)
    ck = torch.load(path, map_location='cpu', weights_only=False)
    if 'key_flow' not in ck['model']:
        sys.exit(f"{path}: no key fields (model flow_keys)")
    warp = ck['config']['flow_warp']
    print(f"{path}, learned:")
    print('\n'.join(describe(warp * torch.tanh(ck['model']['key_flow']).numpy())))
    if args.out:
        lim = 0.95 * warp   # inside the tanh's reach, as train.flow_target_error clips the target
        fit = torch.from_numpy(fields).float().clamp(-lim, lim) / warp
        ck['model']['key_flow'] = torch.atanh(fit)
        out = os.path.join(args.out, os.path.basename(path))
        os.makedirs(args.out, exist_ok=True)
        atomic_torch_save(ck, out)
        print(f"wrote {out}")
    return fields


if __name__ == '__main__':
    main()

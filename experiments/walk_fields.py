"""The movement keys' mean motion per token cell, fitted from the data's own optical flow, and (--into) a copy of a
key-field checkpoint with its fields set to it.

    python experiments/walk_fields.py runs/exp/tokens_lat
    python experiments/walk_fields.py runs/exp/tokens_lat --into runs/exp/zm_flow_walk_keys_60 --out runs/exp/zm_fit

On the train transitions with a movement key down and the camera still (the walks LATENT_FLOW_TARGET teaches), each
cell's optical flow (preprocess.py --flow: dx, dy in cells, reliability) is regressed on the five keys (W A S D jump
down or up), weighted by reliability (opticalflow.fit_walk_fields, what train.py LATENT_FLOW_WALK_FIT sets): the
fields of a model whose walk flow is the sum of the down keys' fields (model flow_walk_keys). Prints each key's mean
|flow|, dx, dy and outward motion, and with --into the same for the checkpoint's learned fields; --out then gets the
checkpoint with its fields set to the fit (model set_key_fields), for evaluate.py.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import opticalflow  # noqa: E402
from atomicio import atomic_torch_save  # noqa: E402
from inference import resolve_checkpoint  # noqa: E402
from model_convGru import MOVEMENT_KEYS, load_world_model  # noqa: E402
from tokendata import TokenCache  # noqa: E402

KEYS = 'W A S D jump'.split()


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
    fields, n = opticalflow.fit_walk_fields(TokenCache(args.data), MOVEMENT_KEYS)
    print(f"fitted from {n} train transitions with a key down and the camera still (cells a step):")
    print('\n'.join(describe(fields)))
    if not args.into:
        return fields
    path = resolve_checkpoint(args.into)
    model, ck = load_world_model(path, weights_only=False)
    if not model.config.flow_keys:
        sys.exit(f"{path}: no key fields (model flow_keys)")
    print(f"{path}, learned:")
    print('\n'.join(describe((model.config.flow_warp * torch.tanh(model.key_flow)).detach().numpy())))
    if args.out:
        model.set_key_fields(fields)
        ck['model'] = model.state_dict()
        out = os.path.join(args.out, os.path.basename(path))
        os.makedirs(args.out, exist_ok=True)
        atomic_torch_save(ck, out)
        print(f"wrote {out}")
    return fields


if __name__ == '__main__':
    main()

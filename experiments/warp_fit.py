"""Would a whole-cell warp, like the camera warp, explain what a key does to the token grid?

    python experiments/warp_fit.py runs/exp/tokens [--raw data/blockworld] [--weather clear] [--stride K]

For isolated transitions (token_change.classes), the share of cells where frame t+1's token equals
frame t's token after a whole-cell warp of frame t: a zoom about the centre (forward / back) or a
horizontal shift (strafe). If no warp beats the identity (copy), the key moves content by less
than a cell per frame and a fixed warp of the input would only mislead the model. --stride K compares
frame t with frame t+K over K transitions of the same isolated class: would a model step of K frames
make a walk a whole-cell motion?
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from token_change import classes  # noqa: E402
from tokendata import TokenCache  # noqa: E402

ZOOMS = (0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15)
SHIFTS = (-2, -1, 0, 1, 2)


def zoom_index(H, W, s):
    """Source rows/cols of a nearest-neighbour zoom by s about the grid centre (s > 1: content grows)."""
    ys, xs = np.meshgrid(np.arange(H), np.arange(W), indexing='ij')
    cy, cx = (H - 1) / 2, (W - 1) / 2
    return (np.clip(np.rint(cy + (ys - cy) / s), 0, H - 1).astype(int),
            np.clip(np.rint(cx + (xs - cx) / s), 0, W - 1).astype(int))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data')
    p.add_argument('--raw', default=None, help='GF layout folder: keep only clips of --weather')
    p.add_argument('--weather', default='clear')
    p.add_argument('--stride', type=int, default=1, help='frames between the compared frames (a model step of K)')
    args = p.parse_args(argv)
    cache = TokenCache(args.data)
    tok, act = np.asarray(cache.tokens), np.asarray(cache.actions)
    pairs = {}
    for c in cache.clips:
        if args.raw:
            with open(os.path.join(args.raw, 'metadata', c['stem'] + '.json')) as f:
                if json.load(f).get('initial_weather') != args.weather:
                    continue
        s, n, k = c['start'], c['length'], args.stride
        for name, m in classes(act[s:s + n - 1]).items():
            run = np.lib.stride_tricks.sliding_window_view(m, k).all(1)     # K transitions of this class in a row
            t = np.nonzero(run)[0]
            pairs.setdefault(name, []).append((tok[s + t], tok[s + t + k]))
    H, W = tok.shape[1:]
    print('| transition | n | ' + ' | '.join(f'zoom {z:g}' for z in ZOOMS) + ' | '
          + ' | '.join(f'shift {d:+d}' for d in SHIFTS) + ' |')
    print('|---' * (2 + len(ZOOMS) + len(SHIFTS)) + '|')
    for name, v in sorted(pairs.items()):
        a = np.concatenate([x for x, _ in v])
        b = np.concatenate([y for _, y in v])
        if not len(a):
            continue
        zs = [(a[:, zy, zx] == b).mean() for zy, zx in (zoom_index(H, W, z) for z in ZOOMS)]
        sh = [(a[:, :, np.clip(np.arange(W) - d, 0, W - 1)] == b).mean() for d in SHIFTS]
        print(f'| {name} | {len(a)} | ' + ' | '.join(f'{x:.2f}' for x in zs + sh) + ' |')


if __name__ == '__main__':
    main()

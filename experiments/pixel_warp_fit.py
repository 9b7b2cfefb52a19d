"""Would a sub-pixel warp of the picture, re-encoded by the VQ-VAE, predict what a key does to the tokens?

    python experiments/pixel_warp_fit.py runs/exp/tokens runs/vqvae_demo_check/vqvae.pt --raw data/blockworld

warp_fit.py moves whole token cells; token_shift.py shows the codes change with the sub-cell phase of
the picture. Here frame t's real picture is zoomed about its centre (forward / back) or shifted
sideways (strafe) by a fraction of a cell in pixel space and encoded again; the score is the share of
cells whose code then equals frame t+1's, beside copying frame t's codes. A warp that beats the copy
would give the dynamics model the phase-correct codes of a walk as an input, the way the camera warp
gives it the turn.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from token_change import classes  # noqa: E402
from token_shift import encode, shifted, zoomed  # noqa: E402

ZOOMS = (1.0, 1.005, 1.01, 1.02, 1.03)      # > 1: content grows (forward); back uses 1 / s
SHIFTS = (0, 0.5, 1, 2, 3)                   # pixels, content moves against the strafe
MAX_PAIRS = 300                              # per transition class


def ground_warp(frames, forward=0.0, right=0.0, eye=1.62, vfov_deg=70.0):
    """The picture after the camera moves `forward` / `right` metres over flat ground, level camera:
    rows below the horizon move as ground at depth eye * f / row offset (the near ground by pixels,
    the far by fractions of one); the sky and everything above the horizon stay (far away)."""
    import cv2
    H, W = frames.shape[1:3]
    f = (H / 2) / np.tan(np.radians(vfov_deg) / 2)
    yc = np.arange(H, dtype=np.float32) + 0.5 - H / 2
    xc = np.arange(W, dtype=np.float32) + 0.5 - W / 2
    ground = yc > 0
    scale = np.where(ground, 1 / (1 + forward * np.maximum(yc, 0) / (eye * f)), 1).astype(np.float32)
    lateral = np.where(ground, right * np.maximum(yc, 0) / eye, 0).astype(np.float32)   # px the ground slides left
    map_x = (xc[None, :] * scale[:, None] + lateral[:, None] + W / 2 - 0.5).astype(np.float32)
    map_y = np.broadcast_to((yc * scale + H / 2 - 0.5)[:, None], (H, W)).astype(np.float32)
    return np.stack([cv2.remap(fr, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for fr in frames])


GROUND_STEPS = (0.5, 1.0, 1.5)               # x a walk's metres per frame (blockworld: 4.317 m/s at 16 fps)


def main(argv=None):
    import torch
    from tokendata import TokenCache
    import gfdata
    from vqvae import load_vqvae
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data', help='token folder made from --raw at its own frame rate')
    p.add_argument('vqvae')
    p.add_argument('--raw', required=True, help='GF layout folder of the clips')
    p.add_argument('--weather', default='clear')
    p.add_argument('--frames-per-step', type=float, default=1.0, help='world frames between two token frames')
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    vq = load_vqvae(args.vqvae, 'cpu').eval()
    cache = TokenCache(args.data)
    tok, act = np.asarray(cache.tokens), np.asarray(cache.actions)
    pairs = {}
    for c in cache.clips:
        with open(os.path.join(args.raw, 'metadata', c['stem'] + '.json')) as f:
            if json.load(f).get('initial_weather') != args.weather:
                continue
        s, n = c['start'], c['length']
        cl = classes(act[s:s + n - 1])
        a = act[s:s + n - 1] > 0.5
        named = {'W alone': cl['W alone'], 'S alone': cl['S alone'], 'A alone': cl['A/D alone'] & a[:, 9],
                 'D alone': cl['A/D alone'] & a[:, 11], 'idle': cl['idle']}
        if not any(m.any() for m in named.values()):
            continue
        frames = gfdata.read_frames(os.path.join(args.raw, 'video', c['stem'] + '.mp4'))
        for name, m in named.items():
            t = np.nonzero(m)[0]
            pairs.setdefault(name, []).append((frames[t], tok[s + t + 1]))
    print('| transition | n | ' + ' | '.join(f'zoom {z:g}' for z in ZOOMS) + ' | '
          + ' | '.join(f'shift {d:g} px' for d in SHIFTS) + ' | '
          + ' | '.join(f'ground x{g:g}' for g in GROUND_STEPS) + ' |')
    print('|---' * (2 + len(ZOOMS) + len(SHIFTS) + len(GROUND_STEPS)) + '|')
    step = 4.317 / 16 * args.frames_per_step
    rng = np.random.default_rng(0)
    for name in ('W alone', 'S alone', 'A alone', 'D alone', 'idle'):
        if name not in pairs:
            continue
        fr = np.concatenate([f for f, _ in pairs[name]])
        nxt = np.concatenate([t for _, t in pairs[name]])
        keep = rng.permutation(len(fr))[:MAX_PAIRS]
        fr, nxt = fr[keep], nxt[keep]
        back = name == 'S alone'
        zs = [(encode(vq, zoomed(fr, 1 / z if back else z) if z != 1 else fr) == nxt).mean() for z in ZOOMS]
        sign = 1 if name == 'A alone' else -1      # strafing left moves the picture right
        sh = [(encode(vq, shifted(fr, sign * d) if d else fr) == nxt).mean() for d in SHIFTS]
        move = {'W alone': (1, 0), 'S alone': (-1, 0), 'A alone': (0, -1), 'D alone': (0, 1)}.get(name, (0, 0))
        gr = [(encode(vq, ground_warp(fr, move[0] * g * step, move[1] * g * step)) == nxt).mean() for g in GROUND_STEPS]
        print(f'| {name} | {len(fr)} | ' + ' | '.join(f'{x:.3f}' for x in zs + sh + gr) + ' |')


if __name__ == '__main__':
    main()

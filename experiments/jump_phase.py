"""Does a latent flow model move the view up and down with a held jump's phase, as the data does?

    python experiments/jump_phase.py runs/exp/tokens_lat runs/exp/z6_key_hold_60 runs/exp/z3r_latent_flow_gate_60

A held jump key lifts the view, then drops it, then bounces; whether a step rises or falls is in how long the key
has been down (model_convGru.key_hold_counts), not in the key. Every clip runs teacher-forced as one window from its
first frame (so the hold counts are exact); on the transitions with jump down and the camera still,
grouped by frames held, this prints each model's mean vertical flow (cells a step, + = content moves down) and, for
scale, the data's: the vertical shift of the real latent (among SHIFTS) that best explains the next one, blurred on
both sides as train.py's flow loss compares them. The view rising moves content down.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import actions as A  # noqa: E402
from inference import resolve_checkpoint  # noqa: E402
from latent_flow_fit import latent_cache  # noqa: E402
from model_convGru import key_hold_counts, load_world_model, warp_by_flow  # noqa: E402
from train import flow_blur  # noqa: E402

GROUPS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 12), (13, 10_000))   # frames held, inclusive
SHIFTS = np.round(np.arange(-1.0, 1.01, 0.1), 2)                   # candidate vertical shifts, cells a step
BORDER = 2                                                          # rows / columns left out (border fill)
CHUNK = 4                                                           # clips per forward


def best_vertical_shift(z, nxt):
    """(N, D, H, W) standardised latents and their successors -> (N,) the shift in SHIFTS whose move of z is
    nearest the successor, blurred both sides."""
    target = flow_blur(nxt)[..., BORDER:-BORDER, BORDER:-BORDER]
    errs = []
    for s in SHIFTS:
        flow = torch.zeros(len(z), 2, *z.shape[-2:])
        flow[:, 1] = float(s)
        moved = flow_blur(warp_by_flow(z, flow))[..., BORDER:-BORDER, BORDER:-BORDER]
        errs.append((moved - target).pow(2).mean((1, 2, 3)))
    return torch.from_numpy(SHIFTS)[torch.stack(errs, 1).argmin(1)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data', help='a preprocess.py --latents output folder')
    p.add_argument('ckpts', nargs='+', help='latent flow checkpoints (files or run folders)')
    args = p.parse_args(argv)
    cache = latent_cache(args.data)
    clips = [c for c in cache.clips if c['length'] > 1]
    T = min(c['length'] for c in clips) - 1
    rows = np.stack([np.arange(c['start'], c['start'] + T + 1) for c in clips])           # (B, T + 1)
    lat = torch.from_numpy(np.array(cache.latents[rows.ravel()])).float().view(len(clips), T + 1, *cache.latents.shape[1:])
    act = torch.from_numpy(np.array(cache.actions[rows[:, :-1].ravel()])).view(len(clips), T, -1)
    j = A.V5_NAMES.index('jump')
    still = torch.from_numpy(A.camera_still(act.numpy())).view(len(clips), T)
    jump = still & (act[..., j] > 0.5)       # jump down, camera still (walking keys may be down too: in the data a
    held = key_hold_counts(act)[..., j - A.KEYS_SLICE.start]   # jump mostly clears an obstacle); frames jump held
    print(f"{int(jump.sum())} transitions with jump down and the camera still in {len(clips)} clips of {T} steps")
    cols = {}
    for path in args.ckpts:
        model, _ = load_world_model(resolve_checkpoint(path), weights_only=False)
        model.eval()
        if not model.config.flow_warp:
            sys.exit(f"{path}: not a latent flow model (flow_warp = 0)")
        dy = []
        for i in range(0, len(clips), CHUNK):   # a few clips at a time: a whole window's maps are large
            tok = torch.zeros(len(act[i:i + CHUNK]), T, *cache.grid, dtype=torch.long)   # unused: latents are read
            with torch.no_grad():
                out = model(tok, act[i:i + CHUNK], latents=lat[i:i + CHUNK, :T], return_flow=True)
            dy.append(out[-2][:, :, 1].mean((-2, -1)))                                    # (b, T) mean dy
        cols[os.path.basename(path.rstrip('/'))] = torch.cat(dy)
    z = model.normalise_latent(lat)            # the models share the data's statistics: the last one's serve
    data = torch.zeros(len(clips), T)
    data[jump] = best_vertical_shift(z[:, :T][jump], z[:, 1:][jump]).float()
    cols = {'data': data, **cols}
    print('| frames held | n | ' + ' | '.join(cols) + ' |')
    print('|---|---|' + '---|' * len(cols))
    for lo, hi in GROUPS:
        m = jump & (held >= lo) & (held <= hi)
        if m.any():
            print(f"| {lo}-{hi if hi < 10_000 else ''} | {int(m.sum())} | "
                  + ' | '.join(f"{float(v[m].mean()):+.2f}" for v in cols.values()) + ' |')


if __name__ == '__main__':
    main()

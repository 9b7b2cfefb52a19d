"""How stable are the VQ-VAE's codes under motion smaller than a cell?

    python experiments/token_shift.py runs/vqvae_demo_check/vqvae.pt data/blockworld [--frames 256]

Encodes real frames, then the same frames moved by a few pixels (a horizontal shift, as a strafe or a
slow turn does) or zoomed about the centre by a few percent (as a step forward does), and prints the
share of cells whose code changes. A cell is 4x4 pixels: a 4-pixel shift is a whole cell, compared with
the grid shifted by one cell. If a one-pixel move already changes as many codes as a walk's frame
does, a walk's token change is mostly the tokenizer re-coding textures at a new sub-cell phase: which
code a cell takes depends on a phase that the tokens themselves do not carry.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import gfdata  # noqa: E402
from evaluate import vq_encode  # noqa: E402
from vqvae import load_vqvae  # noqa: E402

SHIFTS = (1, 2, 3, 4)           # pixels
ZOOMS = (1.01, 1.02, 1.04, 1.08)
MARGIN = 2                      # cells at the border are not scored (edge padding, zoom's clipped content)


def encode(vq, frames):
    """uint8 [N, H, W, 3] -> numpy token grids [N, h, w] (evaluate.vq_encode on the CPU)."""
    return vq_encode(vq, frames, 'cpu').numpy()


def shifted(frames, d):
    """Content moved d pixels to the right (d may be fractional or negative; bilinear, edges repeated)."""
    import cv2
    H, W = frames.shape[1:3]
    m = np.array([[1, 0, d], [0, 1, 0]], np.float32)
    return np.stack([cv2.warpAffine(f, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for f in frames])


def zoomed(frames, s):
    import cv2
    H, W = frames.shape[1:3]
    m = np.array([[s, 0, (1 - s) * (W - 1) / 2], [0, s, (1 - s) * (H - 1) / 2]], np.float32)
    return np.stack([cv2.warpAffine(f, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for f in frames])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('vqvae')
    p.add_argument('raw', help='GF layout folder (metadata/ + video/)')
    p.add_argument('--frames', type=int, default=256, help='frames, spread over the clips')
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    vq = load_vqvae(args.vqvae, 'cpu').eval()
    stems = gfdata.list_clips(args.raw)
    per = max(1, args.frames // len(stems))
    frames = np.concatenate([gfdata.read_frames(os.path.join(args.raw, 'video', s + '.mp4'))[::37][:per]
                             for s in stems])[:args.frames]
    base = encode(vq, frames)
    m = (slice(None), slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    print(f"{len(frames)} frames, {base.shape[1]}x{base.shape[2]} cells of {frames.shape[1] // base.shape[1]} px; "
          "share of interior cells whose code changes:")
    print('| motion | codes changed |\n|---|---|')
    for d in SHIFTS:
        moved = encode(vq, shifted(frames, d))
        ref = base if d % 4 else np.concatenate([base[:, :, :1].repeat(d // 4, 2), base[:, :, :-(d // 4)]], 2)
        print(f"| shift {d} px{' (one cell, against the shifted grid)' if d % 4 == 0 else ''} | "
              f"{100 * (moved[m] != ref[m]).mean():.1f}% |")
    for s in ZOOMS:
        print(f"| zoom x{s:g} | {100 * (encode(vq, zoomed(frames, s))[m] != base[m]).mean():.1f}% |")


if __name__ == '__main__':
    main()

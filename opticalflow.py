"""The frames' own motion at the token grid: what a learned latent flow should move (train.py LATENT_FLOW_TARGET).

    python preprocess.py ... --latents --flow      # stores it per clip as `flow`

A latent model's flow (model_convGru.flow_warp) learns from the latents alone how far content moves, and a walk
back's comes out a tenth of its size: the flow draws the picture in by 0.02-0.04 cells a step where the walk
moves the edges 0.2-0.4 (experiments item 43). This is the pictures' dense optical flow (OpenCV's Farneback, any
footage: nothing here knows the world that rendered it), averaged over each token cell, in cells, in the
convention of model_convGru.warp_by_flow: frame t+1 at p = frame t at p - flow(p). Each cell also gets a weight:
the share of its pixels that have texture and whose forward and backward flows agree (a flat sky has no motion
to measure, Farneback calls it still; rain and content that leaves the view have no consistent one).
"""
import numpy as np

# Farneback at 128 x 72: three pyramid levels reach motions of ~10 px (a walk moves edges 1-2 px a frame)
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=9, iterations=3, poly_n=5, poly_sigma=1.1, flags=0)
CONSISTENT_PX = 0.5          # a pixel counts when its backward flow, followed by the forward flow, returns within this
TEXTURE_GRAD = 16.0          # ... and its Sobel gradient magnitude (0-255 gray) reaches this in frame t + 1


def pixel_flows(a, b):
    """uint8 gray frames a, b (H, W) -> (flow (H, W, 2) in pixels with b at p = a at p - flow(p), reliable (H, W)
    bool: b has texture at p and the forward flow at p - flow(p) takes it back to p within CONSISTENT_PX)."""
    import cv2
    back = cv2.calcOpticalFlowFarneback(b, a, None, **FARNEBACK)     # b(p) ~ a(p + back(p))
    fwd = cv2.calcOpticalFlowFarneback(a, b, None, **FARNEBACK)      # a(q) ~ b(q + fwd(q))
    H, W = a.shape
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    fwd_at = cv2.remap(fwd, xs + back[..., 0], ys + back[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    consistent = np.linalg.norm(back + fwd_at, axis=-1) < CONSISTENT_PX
    textured = np.hypot(cv2.Sobel(b, cv2.CV_32F, 1, 0), cv2.Sobel(b, cv2.CV_32F, 0, 1)) >= TEXTURE_GRAD
    return -back, consistent & textured


def cell_flow(frames, grid):
    """uint8 RGB frames (N, H, W, 3), grid (gh, gw) -> float16 (N - 1, 3, gh, gw): for transition t -> t + 1 and
    each cell, the mean flow (dx right, dy down) in cells over the cell's reliable pixels (pixel_flows; over all of
    them where none is), and the share of reliable pixels (the weight a loss gives the cell)."""
    import cv2
    N, H, W = frames.shape[:3]
    gh, gw = grid
    if H % gh or W % gw:
        raise ValueError(f"frames of {W}x{H} do not split into a {gw}x{gh} grid of whole cells")
    ch, cw = H // gh, W // gw
    gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
    out = np.zeros((max(N - 1, 0), 3, gh, gw), np.float16)
    cells = lambda x: x.reshape(gh, ch, gw, cw, *x.shape[2:]).sum((1, 3))   # noqa: E731  per-cell sums
    for t in range(N - 1):
        flow, ok = pixel_flows(gray[t], gray[t + 1])
        n_ok = cells(ok.astype(np.float32))
        mean_ok = cells(flow * ok[..., None]) / np.maximum(n_ok, 1)[..., None]
        mean_all = cells(flow) / (ch * cw)
        mean = np.where((n_ok > 0)[..., None], mean_ok, mean_all)
        out[t, 0] = mean[..., 0] / cw
        out[t, 1] = mean[..., 1] / ch
        out[t, 2] = n_ok / (ch * cw)
    return out


def fit_walk_fields(cache, keys, ridge=1e-3, chunk=4096):
    """The movement keys' mean motion per token cell, fitted from the stored flow: over the train transitions with a
    movement key down and the camera still (actions.isolated_movement: there the keys explain the whole change), per
    cell, the reliability-weighted least squares of the flow (dx, dy) on which of the key columns `keys` are down.
    Returns ((len(keys), 2, H, W) float64, the number of transitions). The rows are read `chunk` at a time: a GF
    cache has ~10^5 walks."""
    import actions as A
    if not cache.has_flow:
        raise ValueError(f"{cache.dir}: no optical flow (preprocess.py --flow)")
    rows = cache.window_starts('train', 2)   # every train transition: the first row of each 2-frame window
    act = np.asarray(cache.actions[rows])
    walk = A.isolated_movement(act)
    rows, x = rows[walk], (act[walk][:, list(keys)] > 0.5).astype(np.float64)            # (N, K)
    H, W = cache.flow.shape[-2:]
    gram, rhs = np.zeros((H, W, len(keys), len(keys))), np.zeros((2, H, W, len(keys)))
    for i in range(0, len(rows), chunk):
        xs, f = x[i:i + chunk], np.asarray(cache.flow[rows[i:i + chunk]], dtype=np.float64)   # (n, 3, H, W)
        gram += np.einsum('nk,nhw,nl->hwkl', xs, f[:, 2], xs)
        rhs += np.einsum('nk,nhw,nchw->chwk', xs, f[:, 2], f[:, :2])
    fields = np.linalg.solve(gram + ridge * np.eye(len(keys)), rhs[..., None])[..., 0]    # (2, H, W, K)
    return fields.transpose(3, 0, 1, 2), len(rows)

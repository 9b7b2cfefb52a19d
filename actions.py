"""One home for action encodings, shared by blockworld, preprocess, training and play.

A GF-Minecraft per-frame record (FACTS §1) holds the keys and the camera change of one frame
transition: ws (0 none, 1 W, 2 S), ad (0 none, 1 A, 2 D), scs (0 none, 1 jump, 2 sneak,
3 sprint), yaw_delta / pitch_delta in units of 15 degrees (yaw_delta > 0 turns right,
pitch_delta > 0 looks down). Encodings here take the camera change in DEGREES PER FRAME so
the bin edges mean the same thing at any frame rate and for any source.

v5 (default, 15-D): yaw one-hot(5) | pitch one-hot(3) | W, A, S, D | jump, sprint, sneak
v4 (5-D, continuous): yaw, pitch (degrees / 15, clipped to [-1, 1]), move_x, move_z, jump
"""
import math

import numpy as np

DEG_PER_UNIT = 15.0  # GF stores yaw_delta / pitch_delta in units of 15 degrees

V5_NAMES = ('yaw_fast_left', 'yaw_slow_left', 'yaw_none', 'yaw_slow_right', 'yaw_fast_right',
            'pitch_up', 'pitch_level', 'pitch_down',
            'W', 'A', 'S', 'D', 'jump', 'sprint', 'sneak')
V4_NAMES = ('yaw', 'pitch', 'move_x', 'move_z', 'jump')
YAW_SLICE, PITCH_SLICE, KEYS_SLICE = slice(0, 5), slice(5, 8), slice(8, 15)

# Symmetric bin edges in degrees per frame, given by their positive side:
# |yaw| < YAW_EDGES[0] is "none", < YAW_EDGES[1] is "slow", else "fast"; |pitch| < PITCH_EDGE is level.
# preprocess re-derives them from the data's real distribution and stores them in the manifest.
DEFAULT_YAW_EDGES = (0.5, 4.0)
DEFAULT_PITCH_EDGE = 0.5


def yaw_bin(yaw_deg, edges=DEFAULT_YAW_EDGES):
    """0 fast left, 1 slow left, 2 none, 3 slow right, 4 fast right. Symmetric by construction."""
    y = np.asarray(yaw_deg, dtype=np.float64)
    mag = np.abs(y)
    level = np.where(mag < edges[0], 0, np.where(mag < edges[1], 1, 2))
    return np.where(y < 0, 2 - level, 2 + level).astype(np.int64)


def pitch_bin(pitch_deg, edge=DEFAULT_PITCH_EDGE):
    """0 up (pitch decreasing), 1 level, 2 down (pitch increasing, GF's pitch > 0 looks down)."""
    p = np.asarray(pitch_deg, dtype=np.float64)
    return np.where(p <= -edge, 0, np.where(p >= edge, 2, 1)).astype(np.int64)


def encode_v5(yaw_deg, pitch_deg, ws, ad, scs, yaw_edges=DEFAULT_YAW_EDGES, pitch_edge=DEFAULT_PITCH_EDGE):
    """Vectorised: arrays of length N (or scalars) -> float32 [N, 15]."""
    yaw_deg, pitch_deg, ws, ad, scs = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v)) for v in
                                                             (yaw_deg, pitch_deg, ws, ad, scs)))
    n = len(yaw_deg)
    out = np.zeros((n, 15), np.float32)
    out[np.arange(n), yaw_bin(yaw_deg, yaw_edges)] = 1
    out[np.arange(n), 5 + pitch_bin(pitch_deg, pitch_edge)] = 1
    out[:, 8] = ws == 1   # W
    out[:, 9] = ad == 1   # A
    out[:, 10] = ws == 2  # S
    out[:, 11] = ad == 2  # D
    out[:, 12] = scs == 1  # jump
    out[:, 13] = scs == 3  # sprint
    out[:, 14] = scs == 2  # sneak
    return out


def encode_v4(yaw_deg, pitch_deg, ws, ad, scs):
    """The 5-D continuous encoding of design v4: camera in units of 15 degrees, clipped to [-1, 1]."""
    yaw_deg, pitch_deg, ws, ad, scs = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v)) for v in
                                                             (yaw_deg, pitch_deg, ws, ad, scs)))
    out = np.zeros((len(yaw_deg), 5), np.float32)
    out[:, 0] = np.clip(yaw_deg / DEG_PER_UNIT, -1, 1)
    out[:, 1] = np.clip(pitch_deg / DEG_PER_UNIT, -1, 1)
    out[:, 2] = (ad == 2).astype(np.float32) - (ad == 1)
    out[:, 3] = (ws == 1).astype(np.float32) - (ws == 2)
    out[:, 4] = scs == 1
    return out


# ---- live controls: the same mapping for blockworld --play and live_inference.py ----
ARROW_YAW_DEG = 3.0      # degrees per frame while an arrow key is held (a "slow" turn)
ARROW_PITCH_DEG = 2.0
MOUSE_DEG_PER_PIXEL = 0.15  # relative mouse motion to camera degrees


def keys_to_record(keys, mouse_dx=0.0, mouse_dy=0.0):
    """Held keys -> one GF-style action (ws, ad, scs, yaw_deg, pitch_deg) for one frame.

    `keys` is a set of names: w a s d space shift ctrl left right up down. GF's mapping:
    Space jump, Shift sneak, Ctrl sprint; the three are exclusive in GF, jump wins, then sneak.
    Mouse right / arrow right turns right (yaw +); mouse down / arrow down looks down (pitch +).
    """
    ws = 1 if 'w' in keys and 's' not in keys else 2 if 's' in keys and 'w' not in keys else 0
    ad = 1 if 'a' in keys and 'd' not in keys else 2 if 'd' in keys and 'a' not in keys else 0
    scs = 1 if 'space' in keys else 2 if 'shift' in keys else 3 if 'ctrl' in keys else 0
    yaw = mouse_dx * MOUSE_DEG_PER_PIXEL + ARROW_YAW_DEG * (('right' in keys) - ('left' in keys))
    pitch = mouse_dy * MOUSE_DEG_PER_PIXEL + ARROW_PITCH_DEG * (('down' in keys) - ('up' in keys))
    return dict(ws=ws, ad=ad, scs=scs, yaw_deg=float(yaw), pitch_deg=float(pitch))


class HeldKeys:
    """Which control keys are held, tracked from pygame KEYDOWN / KEYUP events.

    Events rather than pygame.key.get_pressed(): releases are seen exactly, and posted events
    (tests, headless runs) drive it the same way as a keyboard.
    """

    def __init__(self):
        import pygame
        self.table = {pygame.K_w: 'w', pygame.K_a: 'a', pygame.K_s: 's', pygame.K_d: 'd',
                      pygame.K_SPACE: 'space', pygame.K_LSHIFT: 'shift', pygame.K_RSHIFT: 'shift',
                      pygame.K_LCTRL: 'ctrl', pygame.K_RCTRL: 'ctrl', pygame.K_LEFT: 'left',
                      pygame.K_RIGHT: 'right', pygame.K_UP: 'up', pygame.K_DOWN: 'down'}
        self.held = set()

    def update(self, event):
        """Feed one pygame event; returns True when it was a control key."""
        import pygame
        name = self.table.get(getattr(event, 'key', None))
        if name is None or event.type not in (pygame.KEYDOWN, pygame.KEYUP):
            return False
        (self.held.add if event.type == pygame.KEYDOWN else self.held.discard)(name)
        return True

    def clear(self):
        self.held.clear()


# ---- data-driven bin edges and action statistics (used by preprocess.py) ----
# Edges are chosen in DEGREES PER FRAME (at the dataset's target fps) from |change| of the frames
# where the camera really moves, pooled over both directions, so they are symmetric by construction.
ENCODINGS = {'v5': V5_NAMES, 'v4': V4_NAMES}
CAMERA_NOISE_FLOOR_DEG = 0.1  # |change| at or below this is no camera move (sub-pixel: 1 px ~ 0.8 deg at 128 wide)
NONE_EDGE_QUANTILE = 0.02     # the none/slow (and level) edge sits at NONE_EDGE_FRACTION x this quantile
NONE_EDGE_FRACTION = 0.5      # of the real moves (never below the noise floor): "none" holds only non-moves
FAST_QUANTILE_RANGE = (0.35, 0.65)  # slow/fast yaw edge: in the widest gap of |yaw| that leaves this share
                                    # of the moving frames below it: slow and fast each get 35-65% of the
                                    # turns and a cluster of equal speeds is not cut in two
MIN_MOVING_FRAMES = 20        # fewer real moves than this (e.g. GF data_269, keyboard only): keep the defaults
EDGE_DECIMALS = 3             # edges are rounded so they can be passed back as flags exactly
COOCCURRENCE_NAMES = ('camera+movement', 'movement only', 'camera only', 'nothing')


def _none_edge(mag, noise_floor):
    moving = np.sort(mag[mag > noise_floor])
    if len(moving) < MIN_MOVING_FRAMES:
        return None, moving
    edge = max(noise_floor, NONE_EDGE_FRACTION * float(np.quantile(moving, NONE_EDGE_QUANTILE)))
    return round(edge, EDGE_DECIMALS), moving


def _fast_edge(moving, none_edge):
    """Slow/fast edge: a cut between two distinct |yaw| values of the moving frames. Among the cuts that
    leave 35-65% of the moves below, the widest gap relative to its position (log scale, so speed clusters
    are kept whole); if no cut lies in that range, the cut whose share is closest to one half."""
    vals = np.unique(np.round(moving, 4))
    vals = vals[vals > none_edge]
    if len(vals) < 2:
        return round(2 * none_edge, EDGE_DECIMALS)
    mids = 0.5 * (vals[:-1] + vals[1:])
    share = np.searchsorted(moving, mids) / len(moving)
    lo, hi = FAST_QUANTILE_RANGE
    inside = (share >= lo) & (share <= hi)
    if inside.any():
        rel = np.log(vals[1:] / vals[:-1])
        k = int(np.argmax(np.where(inside, rel, -np.inf)))
    else:
        k = int(np.argmin(np.abs(share - 0.5)))
    edge = round(float(mids[k]), EDGE_DECIMALS)
    return edge if edge > none_edge else round(2 * none_edge, EDGE_DECIMALS)


MINECRAFT_VFOV_DEG = 70.0   # Minecraft's default field of view ("Normal"), measured vertically


def camera_warp_shifts(yaw_deg, pitch_deg, edges, grid_h, vfov_deg=MINECRAFT_VFOV_DEG,
                       default=((2, 1, 0, -1, -2), (1, 0, -1))):
    """The mean content motion, in token cells per frame, of each yaw bin (5) and pitch bin (3), from a
    dataset's recorded camera degrees per frame (arrays, one entry per transition): the model's
    warp_yaw_shift / warp_pitch_shift for warp_accumulate. A pinhole camera turned by a degrees moves the
    centre of the view by f * tan(a), f = (grid_h / 2) / tan(vfov / 2) cells (square cells). Turning right
    (yaw > 0) moves content left and looking down (pitch > 0) moves it up, hence the minus signs. The
    'none' and 'level' bins are 0 (sub-edge jitter must not add up to a drift); a bin with no transitions
    keeps its default."""
    f = (grid_h / 2) / math.tan(math.radians(vfov_deg) / 2)
    out = []
    for deg, bins, n, still, dflt in ((yaw_deg, yaw_bin(yaw_deg, edges['yaw']), 5, 2, default[0]),
                                      (pitch_deg, pitch_bin(pitch_deg, edges['pitch']), 3, 1, default[1])):
        motion = -f * np.tan(np.radians(np.asarray(deg, dtype=np.float64)))
        out.append(tuple(0.0 if b == still else round(float(motion[bins == b].mean()), 3) if (bins == b).any()
                         else float(dflt[b]) for b in range(n)))
    return out[0], out[1]


def choose_bin_edges(yaw_deg, pitch_deg, noise_floor=CAMERA_NOISE_FLOOR_DEG, info=None):
    """Symmetric bin edges from the data: ((yaw none/slow edge, yaw slow/fast edge), pitch level edge).

    yaw_deg, pitch_deg: camera change per transition in degrees per frame (any length, NaN-free).
    - none/slow (and pitch level) edge: half the 2% quantile of |change| over the moving frames
      (|change| > noise_floor), never below noise_floor: every real move lands in a non-zero bin.
    - slow/fast edge: the middle of the widest (log-scale) gap between distinct |yaw| values of the
      moving frames among the cuts leaving 35-65% of them below (so both speeds get a useful share and a
      cluster of equal speeds is not cut in two); failing that, the cut closest to the median.
    With fewer than MIN_MOVING_FRAMES moves along an axis its defaults are kept.
    `info`, if a dict, receives the counts and which axes fell back to the defaults.
    """
    yaw = np.abs(np.asarray(yaw_deg, np.float64).ravel())
    pitch = np.abs(np.asarray(pitch_deg, np.float64).ravel())
    y0, ymov = _none_edge(yaw, noise_floor)
    yaw_edges = tuple(DEFAULT_YAW_EDGES) if y0 is None else (y0, _fast_edge(ymov, y0))
    p0, pmov = _none_edge(pitch, noise_floor)
    pitch_edge = DEFAULT_PITCH_EDGE if p0 is None else p0
    if info is not None:
        info.update(transitions=int(len(yaw)), yaw_moving=int(len(ymov)), pitch_moving=int(len(pmov)),
                    yaw_default=y0 is None, pitch_default=p0 is None, noise_floor=noise_floor)
    return yaw_edges, float(pitch_edge)


def encode(data, encoding='v5', yaw_edges=DEFAULT_YAW_EDGES, pitch_edge=DEFAULT_PITCH_EDGE):
    """Encode transitions as float32 [N, A].

    `data` is either a sequence of GF records (dicts with yaw_delta / pitch_delta in units of 15
    degrees and ws / ad / scs; missing keys count as 0) or a dict of arrays yaw_deg, pitch_deg
    (degrees per frame), ws, ad, scs. Note a GF record i is the transition frame i-1 -> i.
    """
    if isinstance(data, dict):
        yaw, pitch, ws, ad, scs = (np.asarray(data[k]) for k in ('yaw_deg', 'pitch_deg', 'ws', 'ad', 'scs'))
    else:
        recs = list(data)
        yaw = np.array([float(r.get('yaw_delta', 0) or 0) * DEG_PER_UNIT for r in recs])
        pitch = np.array([float(r.get('pitch_delta', 0) or 0) * DEG_PER_UNIT for r in recs])
        ws, ad, scs = (np.array([int(r.get(k, 0) or 0) for r in recs], np.int64) for k in ('ws', 'ad', 'scs'))
    if encoding == 'v5':
        return encode_v5(yaw, pitch, ws, ad, scs, yaw_edges, pitch_edge)
    if encoding == 'v4':
        return encode_v4(yaw, pitch, ws, ad, scs)
    raise ValueError(f"unknown action encoding {encoding!r}; expected one of {sorted(ENCODINGS)}")


def action_stats(actions_v5):
    """Per-bin frequencies and the camera/movement co-occurrence of v5-encoded transitions.

    actions_v5: float [N, 15] (or a list of such arrays). Camera = yaw not 'none' or pitch not
    'level'; movement = any of W/A/S/D. Returns {'transitions', 'frequencies' {name: share},
    'counts' {name: n}, 'cooccurrence' {camera+movement, movement only, camera only, nothing: share}}.
    """
    if isinstance(actions_v5, (list, tuple)):
        actions_v5 = np.concatenate([np.asarray(a).reshape(-1, 15) for a in actions_v5]) if actions_v5 \
            else np.zeros((0, 15), np.float32)
    a = np.asarray(actions_v5).reshape(-1, 15) > 0.5
    n = len(a)
    counts = a.sum(0)
    camera = ~a[:, 2] | ~a[:, 6]
    move = a[:, 8:12].any(1)
    co = (camera & move, move & ~camera, camera & ~move, ~camera & ~move)
    share = (lambda c: float(c) / n if n else 0.0)
    return dict(transitions=int(n),
                frequencies={name: share(c) for name, c in zip(V5_NAMES, counts)},
                counts={name: int(c) for name, c in zip(V5_NAMES, counts)},
                cooccurrence={name: share(m.sum()) for name, m in zip(COOCCURRENCE_NAMES, co)})


def action_combos(actions_v5):
    """Per transition, an id of its action combination: yaw direction x pitch x W/S x A/D x jump
    (3*3*3*3*2 = 162 ids; sprint and sneak only modify W and are left out)."""
    a = np.asarray(actions_v5).reshape(-1, 15) > 0.5
    yaw = np.where(a[:, 0] | a[:, 1], 1, np.where(a[:, 3] | a[:, 4], 2, 0))
    pitch = np.where(a[:, 5], 1, np.where(a[:, 7], 2, 0))
    ws = np.where(a[:, 8] & ~a[:, 10], 1, np.where(a[:, 10] & ~a[:, 8], 2, 0))
    ad = np.where(a[:, 9] & ~a[:, 11], 1, np.where(a[:, 11] & ~a[:, 9], 2, 0))
    return (((yaw * 3 + pitch) * 3 + ws) * 3 + ad) * 2 + a[:, 12]


def balance_weights(actions_v5):
    """Per-transition sampling weight for action-balanced training: the inverse frequency of its
    action combination (action_combos), normalised to mean 1. Every combination then weighs the
    same in total: a rare isolated action (walking back with the camera still) as much as the
    common ones it usually hides in (walking while turning), so the model can tell their effects apart."""
    combo = action_combos(actions_v5)
    if not len(combo):
        return np.zeros(0)
    freq = np.bincount(combo, minlength=162) / len(combo)
    w = 1.0 / freq[combo]
    return w / w.mean()


def camera_still(actions_v5):
    """Per transition, True when the camera does not move (yaw bin 'none' and pitch 'level')."""
    a = np.asarray(actions_v5).reshape(-1, 15) > 0.5
    return a[:, 2] & a[:, 6]


def movement_keys_down(actions_v5):
    """Per transition, True when a movement key (W, A, S, D or jump) is down."""
    return (np.asarray(actions_v5).reshape(-1, 15)[:, 8:13] > 0.5).any(1)


def isolated_movement(actions_v5):
    """Per transition, True when a movement key (W, A, S, D or jump) is down and the camera is still
    (no yaw, level pitch): the transitions whose whole change the keys explain. In GF data camera
    and keys act together 87% of the time (FACTS section 2), so these are where a key is learnt."""
    return camera_still(actions_v5) & movement_keys_down(actions_v5)


# Column order of a v5 action played backwards in time: the transition t+1 -> t of a walk forward while turning
# right is a walk back while turning left (yaw bins mirrored, pitch up <-> down, W <-> S, A <-> D). Jump, sprint and
# sneak keep their columns; a window holding jump or sprint has no backward twin (gravity; sprint only goes forward).
V5_TIME_REVERSED = (4, 3, 2, 1, 0, 7, 6, 5, 10, 11, 8, 9, 12, 13, 14)


def time_reversible(actions_v5):
    """Per transition (..., 15) -> (...), True when playing it backwards is a transition the player could make: no
    jump (gravity does not run backwards) and no sprint (sprint only speeds W; backwards it would be a sprint to the
    back). Numpy arrays or torch tensors."""
    a = actions_v5 if hasattr(actions_v5, 'shape') else np.asarray(actions_v5)
    return (a[..., 12] < 0.5) & (a[..., 13] < 0.5)


def format_action_stats(stats):
    """A printable table of action_stats()."""
    f = stats['frequencies']
    groups = (('yaw', V5_NAMES[0:5]), ('pitch', V5_NAMES[5:8]), ('keys', V5_NAMES[8:15]))
    lines = [f"action statistics over {stats['transitions']} transitions (share of transitions per bin):"]
    for label, names in groups:
        lines.append(f"  {label:<6}" + '  '.join(f"{n} {100 * f[n]:5.1f}%" for n in names))
    lines.append('  camera/movement: ' + '  '.join(f"{k} {100 * v:5.1f}%" for k, v in stats['cooccurrence'].items()))
    return '\n'.join(lines)


# ---- named action scripts: inference presets, training's action rollouts, evaluation ----
# Each preset is one transition held for every step, in GF terms with the camera in degrees per frame.
PRESET_TURN_DEG = 6.0    # a brisk turn: 90 degrees in 15 frames
PRESET_PITCH_DEG = 3.0
PRESETS = {
    'idle': {},
    'turn_left': dict(yaw_deg=-PRESET_TURN_DEG), 'turn_right': dict(yaw_deg=PRESET_TURN_DEG),
    'look_up': dict(pitch_deg=-PRESET_PITCH_DEG), 'look_down': dict(pitch_deg=PRESET_PITCH_DEG),
    'forward': dict(ws=1), 'back': dict(ws=2), 'strafe_left': dict(ad=1), 'strafe_right': dict(ad=2),
    'jump': dict(scs=1),
}


def preset_records(spec, steps=None):
    """'turn_left' or a sequence 'forward:16,turn_left:8' -> list of transition dicts
    (ws, ad, scs, yaw_deg, pitch_deg). A name without a count lasts `steps`; with `steps` the
    sequence is cut or repeated to exactly that length."""
    out = []
    for part in spec.split(','):
        name, _, count = part.strip().partition(':')
        if name not in PRESETS:
            raise ValueError(f"unknown action preset {name!r}; expected one of {', '.join(PRESETS)}")
        n = int(count) if count else (steps or 1)
        rec = {**dict(ws=0, ad=0, scs=0, yaw_deg=0.0, pitch_deg=0.0), **PRESETS[name]}
        out += [dict(rec) for _ in range(n)]
    if steps:
        out = [out[i % len(out)] for i in range(steps)]
    return out


def edges_from_manifest(manifest):
    """The encoding and bin edges a preprocessed dataset was made with (preprocess's manifest.json)."""
    e = manifest.get('bin_edges') or {}
    return dict(encoding=manifest.get('action_encoding', 'v5'),
                yaw=tuple(e.get('yaw', DEFAULT_YAW_EDGES)), pitch=float(e.get('pitch', DEFAULT_PITCH_EDGE)))


def encode_records(records, edges=None):
    """Transition dicts (ws, ad, scs, yaw_deg, pitch_deg) -> float32 [N, A] in the dataset's encoding."""
    edges = edges or dict(encoding='v5', yaw=DEFAULT_YAW_EDGES, pitch=DEFAULT_PITCH_EDGE)
    arrays = {k: np.array([r[k] for r in records]) for k in ('ws', 'ad', 'scs', 'yaw_deg', 'pitch_deg')}
    return encode(arrays, edges['encoding'], tuple(edges['yaw']), edges['pitch'])


def preset_actions(spec, steps=None, edges=None):
    """A named preset (or sequence) encoded like the training data: float32 [steps, A]."""
    return encode_records(preset_records(spec, steps), edges)


# ---- frame rate: per-frame transitions -> transitions between kept frames ----
RAW_ACTION_NAMES = ('yaw_deg', 'pitch_deg', 'ws', 'ad', 'scs')


def kept_indices(n, source_fps, fps):
    """Source frames (or steps) kept at the target fps: round(j * source_fps / fps), j = 0, 1, ... < n."""
    if fps > source_fps + 1e-9:
        raise ValueError(f"--fps {fps} is above the source rate {source_fps}: upsampling is not supported")
    step = source_fps / fps
    if n <= 0:
        return np.zeros(0, np.int64)
    count = int(np.floor((n - 1) / step + 1e-9)) + 1
    return np.floor(np.arange(count) * step + 0.5).astype(np.int64)


def _majority(vals):
    """The non-zero value held in at least half the window (ties between two values: the later), else 0."""
    nz = vals[vals != 0]
    if len(nz) == 0:
        return 0
    best, best_n, best_last = 0, 0, -1
    for v in np.unique(nz):
        cnt = int((vals == v).sum())
        last = int(np.nonzero(vals == v)[0][-1])
        if cnt > best_n or (cnt == best_n and last > best_last):
            best, best_n, best_last = int(v), cnt, last
    return best if 2 * best_n >= len(vals) else 0


def aggregate(tr, kept):
    """Per-source-transition arrays (length n-1; transition s: source s -> s+1) -> per output transition
    (length len(kept)-1) between consecutive kept sources. Camera: the SUM of the degrees;
    W/S, A/D, sprint/sneak: the value held in at least half the window (ties: the later); jump: held if
    pressed at any transition of the window (preprocess --fps, evaluate at a model step of several frames)."""
    kept = np.asarray(kept, np.int64)
    if len(kept) < 2:
        return {k: np.zeros(0, np.float64 if k.endswith('_deg') else np.int64) for k in RAW_ACTION_NAMES}
    lo, hi = kept[:-1], kept[1:]
    if np.all(hi - lo == 1):
        return {k: np.asarray(tr[k])[lo] for k in RAW_ACTION_NAMES}
    out = {}
    for k in ('yaw_deg', 'pitch_deg'):
        out[k] = np.add.reduceat(np.asarray(tr[k], np.float64)[:hi[-1]], lo)
    for k in ('ws', 'ad'):
        v = np.asarray(tr[k])
        out[k] = np.array([_majority(v[a:b]) for a, b in zip(lo, hi)], np.int64)
    scs = np.asarray(tr['scs'])
    out['scs'] = np.array([1 if (scs[a:b] == 1).any() else _majority(np.where(scs[a:b] == 1, 0, scs[a:b]))
                           for a, b in zip(lo, hi)], np.int64)
    return out

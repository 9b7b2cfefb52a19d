"""One home for action encodings, shared by blockworld, preprocess, training and play.

A GF-Minecraft per-frame record (FACTS §1) holds the keys and the camera change of one frame
transition: ws (0 none, 1 W, 2 S), ad (0 none, 1 A, 2 D), scs (0 none, 1 jump, 2 sneak,
3 sprint), yaw_delta / pitch_delta in units of 15 degrees (yaw_delta > 0 turns right,
pitch_delta > 0 looks down). Encodings here take the camera change in DEGREES PER FRAME so
the bin edges mean the same thing at any frame rate and for any source.

v5 (default, 15-D): yaw one-hot(5) | pitch one-hot(3) | W, A, S, D | jump, sprint, sneak
v4 (5-D, continuous): yaw, pitch (degrees / 15, clipped to [-1, 1]), move_x, move_z, jump
"""
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

"""blockworld: a small procedural Minecraft-like world that records GF-Minecraft-format gameplay.

Everything in Ochre runs on it with no download, and it knows the ground truth no dataset has:
what the world really looks like after any action sequence from any state.

    python blockworld.py --out data/blockworld --clips 24 --frames 160 --size 128x72 --seed 0
    python blockworld.py --play                      # walk around (W/A/S/D, Space, Shift, Ctrl, mouse/arrows)

Python API (used by evaluation):
    world = World(seed, biome='plains', start_time=TIMES[1], weather='clear')
    state = world.spawn()                       # PlayerState
    state = world.step(state, Action(ws=1, yaw_deg=3.0))
    frame = world.render(state, 128, 72)        # uint8 [72, 128, 3] RGB
    frames, meta = record_clip(seed, frames=160, width=128, height=72)
    frames = replay_clip(meta, 128, 72)          # identical to the recorded frames

Coordinates follow Minecraft: x east, y up, z south; yaw 0 faces +z and grows turning right;
pitch > 0 looks down. The world wraps around in x and z (a torus), so walks never hit an edge.
"""
import argparse
import dataclasses
import json
import math
import os
import sys

import numpy as np

# ---- world ----
WORLD_SIZE = 128         # columns along x and z (power of two: wrapping is a bit mask)
WORLD_HEIGHT = 40        # blocks; above is sky
SEA_LEVEL = 12           # water fills columns whose ground is below this
VIEW_DISTANCE = 40.0     # blocks; fog reaches the sky colour here
FOG_START = 0.5          # fraction of VIEW_DISTANCE where fog begins
VFOV_DEG = 70.0          # vertical field of view, Minecraft's default
CLOUD_Y = 46.0           # height of the flat cloud layer
BIOMES = ('plains', 'forest', 'desert')
WEATHERS = ('clear', 'rain', 'thunder')
TIMES = ("Starting of a day", "Noon, sun is at its peak", "Sunset", "Beginning of night",
         "Midnight, moon is at its peak", "Beginning of sunrise")  # GF's six start_time values

# ---- player physics, Minecraft's numbers, integrated at FPS steps/s with SUBSTEPS sub-steps ----
FPS = 16
SUBSTEPS = 4
WALK_SPEED = 4.317       # m/s
SPRINT_SPEED = 5.612
SNEAK_SPEED = 1.295
GRAVITY = 32.0           # m/s^2 (0.08 blocks/tick^2 at 20 ticks/s)
JUMP_HEIGHT = 1.25       # blocks at the apex
MAX_FALL_SPEED = 20.0
PLAYER_HALF_WIDTH = 0.3
PLAYER_HEIGHT = 1.8
EYE_HEIGHT = 1.62
PITCH_LIMIT = 90.0

# block ids
AIR, GRASS, DIRT, STONE, SAND, WATER, LOG, LEAVES, CACTUS = range(9)
BLOCK_NAMES = ('air', 'grass', 'dirt', 'stone', 'sand', 'water', 'log', 'leaves', 'cactus')
SOLID = np.array([b not in (AIR, WATER) for b in range(9)])
TEX = 16  # texels per block face

_DT = 1.0 / (FPS * SUBSTEPS)
# Launch speed whose apex under our semi-implicit Euler integration is JUMP_HEIGHT:
# apex = v^2 / 2g - v dt / 2  =>  v = g dt / 2 + sqrt((g dt / 2)^2 + 2 g h)
JUMP_SPEED = GRAVITY * _DT / 2 + math.sqrt((GRAVITY * _DT / 2) ** 2 + 2 * GRAVITY * JUMP_HEIGHT)

# Sky per GF start_time: zenith and horizon colours, light level, sun/moon elevation (deg, east > 0 < west).
SKIES = {
    TIMES[0]: dict(zenith=(118, 160, 235), horizon=(235, 200, 160), light=0.85, body='sun', elev=20),
    TIMES[1]: dict(zenith=(105, 155, 255), horizon=(185, 212, 255), light=1.00, body='sun', elev=80),
    TIMES[2]: dict(zenith=(70, 85, 165), horizon=(250, 145, 75), light=0.68, body='sun', elev=172),
    TIMES[3]: dict(zenith=(22, 28, 62), horizon=(70, 55, 95), light=0.42, body='moon', elev=25),
    TIMES[4]: dict(zenith=(8, 11, 28), horizon=(22, 28, 50), light=0.32, body='moon', elev=85),
    TIMES[5]: dict(zenith=(45, 55, 110), horizon=(215, 125, 110), light=0.55, body='sun', elev=6),
}


@dataclasses.dataclass
class PlayerState:
    x: float
    y: float          # feet
    z: float
    yaw: float = 0.0  # degrees, continuous (not wrapped) so recorded deltas are exact
    pitch: float = 0.0
    vy: float = 0.0
    on_ground: bool = True

    def copy(self):
        return dataclasses.replace(self)

    @property
    def eye(self):
        return np.array([self.x, self.y + EYE_HEIGHT, self.z])


@dataclasses.dataclass
class Action:
    ws: int = 0          # 0 none, 1 forward (W), 2 back (S)
    ad: int = 0          # 0 none, 1 left (A), 2 right (D)
    scs: int = 0         # 0 none, 1 jump, 2 sneak, 3 sprint
    yaw_deg: float = 0.0    # camera change this frame; > 0 turns right
    pitch_deg: float = 0.0  # > 0 looks down


# ---------------------------------------------------------------- procedural content
def _periodic_noise(rng, size, period):
    """Smooth value noise on a size x size torus with lattice spacing `period` (divides size)."""
    n = size // period
    lattice = rng.random((n, n))
    t = (np.arange(size) % period) / period
    t = t * t * (3 - 2 * t)
    i0 = np.arange(size) // period
    i1 = (i0 + 1) % n
    a = lattice[i0][:, i0] * (1 - t)[None, :] + lattice[i0][:, i1] * t[None, :]
    b = lattice[i1][:, i0] * (1 - t)[None, :] + lattice[i1][:, i1] * t[None, :]
    return a * (1 - t)[:, None] + b * t[:, None]


def _fbm(rng, size, periods=(64, 32, 16, 8), gain=0.5):
    out, amp, total = np.zeros((size, size)), 1.0, 0.0
    for p in periods:
        out += amp * _periodic_noise(rng, size, p)
        total += amp
        amp *= gain
    return out / total


def _make_textures():
    """[block, face (0 top, 1 side, 2 bottom), TEX, TEX, 3] float in [0, 1]; fixed like Minecraft's."""
    rng = np.random.default_rng(1234)
    tex = np.zeros((9, 3, TEX, TEX, 3), np.float32)

    def noisy(base, amount, blotch=0.0, scale=1.0):
        n = 1 + amount * (rng.random((TEX, TEX, 1)) - 0.5) * 2
        if blotch:
            b = _periodic_noise(rng, TEX, 4)[..., None]
            n = n * (1 - blotch + 2 * blotch * b)
        return np.clip(np.array(base, np.float32)[None, None] / 255 * n * scale, 0, 1)

    dirt = noisy((134, 96, 67), 0.18, 0.15)
    grass_top = noisy((96, 160, 56), 0.2, 0.2)
    grass_side = dirt.copy()
    fringe = 3 + (rng.random(TEX) < 0.45) + (rng.random(TEX) < 0.2)  # jagged green edge
    for u in range(TEX):
        grass_side[:fringe[u], u] = grass_top[:fringe[u], u] * 0.95
    stone = noisy((128, 128, 128), 0.12, 0.3)
    sand = noisy((220, 208, 162), 0.1, 0.08)
    water = noisy((48, 92, 205), 0.08, 0.2)
    water[::4] *= 1.15  # wave lines
    log_side = noisy((104, 82, 50), 0.15)
    log_side[:, ::3] *= 0.75  # bark furrows
    yy, xx = np.mgrid[:TEX, :TEX] - (TEX - 1) / 2
    rings = (np.sqrt(xx ** 2 + yy ** 2).astype(int) % 3 == 0)[..., None]
    log_top = noisy((170, 138, 86), 0.1) * np.where(rings, 0.8, 1.0)
    leaves = noisy((58, 128, 40), 0.35, 0.3)
    leaves[rng.random((TEX, TEX)) < 0.18] *= 0.45  # gaps between leaves
    cactus_side = noisy((82, 140, 52), 0.12)
    cactus_side[:, 1::4] *= 0.7
    cactus_side[rng.random((TEX, TEX)) < 0.05] = (0.85, 0.85, 0.65)  # spines
    cactus_top = noisy((110, 165, 70), 0.1)
    per_face = {GRASS: (grass_top, grass_side, dirt), DIRT: (dirt,) * 3, STONE: (stone,) * 3,
                SAND: (sand,) * 3, WATER: (water,) * 3, LOG: (log_top, log_side, log_top),
                LEAVES: (leaves,) * 3, CACTUS: (cactus_top, cactus_side, cactus_top)}
    for b, faces in per_face.items():
        for f in range(3):
            tex[b, f] = faces[f]
    return tex


TEXTURES = _make_textures()
CLOUDS = _periodic_noise(np.random.default_rng(99), 64, 4) > 0.62  # 64x64 cells of 8 blocks each


# ---------------------------------------------------------------- the world
def camera_basis(yaw_deg, pitch_deg):
    """Unit forward, right and up vectors of the camera (Minecraft axes: x east, y up, z south)."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    fwd = np.array([-math.sin(yaw) * math.cos(pitch), -math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
    right = np.array([-math.cos(yaw), 0.0, -math.sin(yaw)])
    return fwd, right, np.cross(right, fwd)


class World:
    """A seeded block world of one GF biome, with its clip's time of day and weather."""

    def __init__(self, seed, biome='plains', start_time=TIMES[1], weather='clear'):
        if biome not in BIOMES:
            raise ValueError(f"unknown biome {biome!r}; expected one of {BIOMES}")
        if start_time not in SKIES:
            raise ValueError(f"unknown start_time {start_time!r}; expected one of {TIMES}")
        if weather not in WEATHERS:
            raise ValueError(f"unknown weather {weather!r}; expected one of {WEATHERS}")
        self.seed, self.biome, self.start_time, self.weather = int(seed), biome, start_time, weather
        rng = np.random.default_rng([self.seed, BIOMES.index(biome)])
        self.grid, self.height = _generate(rng, biome)
        self.top = int(np.nonzero(self.grid.any(axis=(0, 2)))[0].max()) + 1  # rays above this with dy >= 0 see sky
        self._rays = {}
        sky = SKIES[start_time]
        dim = {'clear': 1.0, 'rain': 0.72, 'thunder': 0.55}[weather]
        grey = np.array([0.55, 0.58, 0.62]) * sky['light']
        mix = 0.0 if weather == 'clear' else 0.55
        self.zenith = (np.array(sky['zenith']) / 255 * (1 - mix) + grey * mix) * dim
        self.horizon = (np.array(sky['horizon']) / 255 * (1 - mix) + grey * mix) * dim
        self.light = sky['light'] * dim
        e = math.radians(sky['elev'])
        self.body = sky['body']
        self.body_dir = np.array([math.cos(e), math.sin(e), 0.0])  # sun/moon rise east (+x)

    # ---- player ----
    def spawn(self, rng=None):
        """A standing player on dry land, away from trees, facing a random direction."""
        rng = rng if rng is not None else np.random.default_rng([self.seed, 7])
        land = (self.grid[np.arange(WORLD_SIZE)[:, None], self.height, np.arange(WORLD_SIZE)[None]] != WATER)
        land &= self.height >= SEA_LEVEL
        free = land & ~SOLID[self.grid[np.arange(WORLD_SIZE)[:, None], np.minimum(self.height + 1, WORLD_HEIGHT - 1),
                                        np.arange(WORLD_SIZE)[None]]]
        free &= ~SOLID[self.grid[np.arange(WORLD_SIZE)[:, None], np.minimum(self.height + 2, WORLD_HEIGHT - 1),
                                  np.arange(WORLD_SIZE)[None]]]
        xs, zs = np.nonzero(free)
        k = rng.integers(len(xs))
        return PlayerState(x=float(xs[k]) + 0.5, y=float(self.height[xs[k], zs[k]] + 1), z=float(zs[k]) + 0.5,
                           yaw=float(rng.uniform(-180, 180)), pitch=0.0)

    def block(self, x, y, z):
        if y < 0:
            return STONE
        if y >= WORLD_HEIGHT:
            return AIR
        return int(self.grid[x & (WORLD_SIZE - 1), y, z & (WORLD_SIZE - 1)])

    def _collides(self, x, y, z):
        e = 1e-6
        for bx in range(math.floor(x - PLAYER_HALF_WIDTH + e), math.floor(x + PLAYER_HALF_WIDTH - e) + 1):
            for by in range(math.floor(y + e), math.floor(y + PLAYER_HEIGHT - e) + 1):
                for bz in range(math.floor(z - PLAYER_HALF_WIDTH + e), math.floor(z + PLAYER_HALF_WIDTH - e) + 1):
                    if SOLID[self.block(bx, by, bz)]:
                        return True
        return False

    def _move_axis(self, s, axis, d):
        """Move state `s` by d along axis 0/1/2, stopping flush against solid blocks. Returns blocked."""
        pos = [s.x, s.y, s.z]
        old = pos[axis]
        pos[axis] = old + d
        if not self._collides(*pos):
            s.x, s.y, s.z = pos
            return False
        if axis == 1:
            pos[1] = math.floor(pos[1]) + 1.0 if d < 0 else math.floor(pos[1] + PLAYER_HEIGHT) - PLAYER_HEIGHT - 1e-7
        else:
            h = PLAYER_HALF_WIDTH
            pos[axis] = math.floor(pos[axis] + h) - h - 1e-7 if d > 0 else math.floor(pos[axis] - h) + 1 + h + 1e-7
        if (d > 0) == (pos[axis] > old) and not self._collides(*pos):
            s.x, s.y, s.z = pos
        return True

    def step(self, state, action):
        """Advance one frame (1/FPS s): turn the camera, then move with the held keys."""
        s = state.copy()
        s.yaw = s.yaw + action.yaw_deg
        s.pitch = float(np.clip(s.pitch + action.pitch_deg, -PITCH_LIMIT, PITCH_LIMIT))
        return self.move(s, action)

    def move(self, state, action):
        """The movement half of `step` (camera already set): keys, jump, gravity and collisions."""
        s = state.copy()
        yaw = math.radians(s.yaw)
        fwd, right = (-math.sin(yaw), math.cos(yaw)), (-math.cos(yaw), -math.sin(yaw))
        mz = (action.ws == 1) - (action.ws == 2)
        mx = (action.ad == 2) - (action.ad == 1)
        dx, dz = fwd[0] * mz + right[0] * mx, fwd[1] * mz + right[1] * mx
        norm = math.hypot(dx, dz)
        speed = SNEAK_SPEED if action.scs == 2 else SPRINT_SPEED if (action.scs == 3 and action.ws == 1) else WALK_SPEED
        if norm > 0:
            dx, dz = dx / norm * speed, dz / norm * speed
        if action.scs == 1 and s.on_ground:
            s.vy = JUMP_SPEED
        for _ in range(SUBSTEPS):
            self._move_axis(s, 0, dx * _DT)
            self._move_axis(s, 2, dz * _DT)
            s.vy = max(s.vy - GRAVITY * _DT, -MAX_FALL_SPEED)
            blocked = self._move_axis(s, 1, s.vy * _DT)
            s.on_ground = blocked and s.vy < 0
            if blocked:
                s.vy = 0.0
        return s

    # ---- rendering ----
    def _ray_dirs(self, width, height):
        """Camera-space unit ray directions (forward, right, up components), cached per size."""
        key = (width, height)
        if key not in self._rays:
            th = math.tan(math.radians(VFOV_DEG) / 2)
            tw = th * width / height
            u = (2 * (np.arange(width) + 0.5) / width - 1) * tw
            v = (1 - 2 * (np.arange(height) + 0.5) / height) * th
            uu, vv = np.meshgrid(u, v)
            cam = np.stack([np.ones_like(uu), uu, vv], -1).reshape(-1, 3)
            self._rays[key] = cam / np.linalg.norm(cam, axis=1, keepdims=True)
        return self._rays[key]

    def render(self, state, width=128, height=72, frame_index=0):
        """First-person RGB view, uint8 [height, width, 3]. Deterministic in (state, frame_index)."""
        fwd, right, up = camera_basis(state.yaw, state.pitch)
        dirs = self._ray_dirs(width, height) @ np.stack([fwd, right, up])
        origin = state.eye
        rgb = self._shade(origin, dirs)
        img = rgb.reshape(height, width, 3)
        if self.block(math.floor(origin[0]), math.floor(origin[1]), math.floor(origin[2])) == WATER:
            img = img * 0.45 + np.array([0.1, 0.2, 0.5]) * 0.55  # underwater tint
        if self.weather != 'clear':
            img = _rain(img, frame_index, self.seed, heavy=self.weather == 'thunder')
        return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)

    def _sky(self, dirs):
        t = np.clip(dirs[:, 1], 0, 1)[:, None] ** 0.5
        col = self.horizon * (1 - t) + self.zenith * t
        # a square sun or moon, as in Minecraft
        b = self.body_dir
        side = np.cross(b, [0.0, 0.0, 1.0])
        side /= np.linalg.norm(side)
        up = np.cross(side, b)
        size = 0.09 if self.body == 'sun' else 0.06
        on = (dirs @ b > 0) & (np.abs(dirs @ side) < size) & (np.abs(dirs @ up) < size)
        col[on] = (1.0, 0.95, 0.7) if self.body == 'sun' else (0.85, 0.87, 0.95)
        # blocky clouds on a flat layer
        going_up = dirs[:, 1] > 0.02
        t_c = (CLOUD_Y - 0.0) / np.where(going_up, dirs[:, 1], 1.0)
        cx = np.floor(dirs[:, 0] * t_c / 8).astype(np.int64) % 64
        cz = np.floor(dirs[:, 2] * t_c / 8).astype(np.int64) % 64
        cloud = going_up & CLOUDS[cx, cz] & (t_c < 400)
        fade = np.clip(1 - t_c / 400, 0, 1)[:, None] * 0.85
        white = np.array([1.0, 1.0, 1.0]) * max(self.light, 0.35)
        col = np.where(cloud[:, None], col * (1 - fade) + white * fade, col)
        return col

    def _shade(self, origin, dirs):
        n = len(dirs)
        t_hit, blk, axis, step_sign, water_t = _raycast(self.grid, self.top, origin, dirs, VIEW_DISTANCE)
        sky = self._sky(dirs)
        out = sky.copy()
        hit = np.isfinite(t_hit)
        if hit.any():
            idx = np.nonzero(hit)[0]
            out[idx] = self._surface(origin, dirs[idx], t_hit[idx], blk[idx], axis[idx], step_sign[idx],
                                     sky[idx])
        wet = np.isfinite(water_t)
        if wet.any():
            idx = np.nonzero(wet)[0]
            surf = self._surface(origin, dirs[idx], water_t[idx], np.full(len(idx), WATER),
                                 np.full(len(idx), 1), np.full(len(idx), -1), sky[idx])
            out[idx] = out[idx] * 0.35 + surf * 0.65
        return out.reshape(n, 3)

    def _surface(self, origin, dirs, t, blk, axis, step_sign, sky):
        p = origin + dirs * t[:, None]
        # tiny push into the hit block so faces index the right texel
        fx, fy, fz = (p[:, 0] % 1.0), (p[:, 1] % 1.0), (p[:, 2] % 1.0)
        u = np.where(axis == 0, fz, fx)
        v = np.where(axis == 1, fz, 1.0 - fy)
        tu = np.clip((u * TEX).astype(np.int64), 0, TEX - 1)
        tv = np.clip((v * TEX).astype(np.int64), 0, TEX - 1)
        face = np.where(axis == 1, np.where(step_sign < 0, 0, 2), 1)
        col = TEXTURES[blk, face, tv, tu]
        shade = np.where(axis == 1, np.where(step_sign < 0, 1.0, 0.5), np.where(axis == 0, 0.8, 0.64))
        col = col * (shade * self.light)[:, None]
        fog = np.clip((t - FOG_START * VIEW_DISTANCE) / ((1 - FOG_START) * VIEW_DISTANCE), 0, 1)[:, None]
        return col * (1 - fog) + sky * fog


def _raycast(grid, top, origin, dirs, max_dist):
    """Vectorised voxel DDA. Returns per ray: hit distance (inf = sky), block id, hit face axis,
    the ray's step sign along that axis, and the distance at which it first entered water (inf = none)."""
    n = len(dirs)
    mask = WORLD_SIZE - 1
    with np.errstate(divide='ignore'):
        inv = 1.0 / dirs
    step = np.where(dirs > 0, 1, -1).astype(np.int64)
    cell = np.broadcast_to(np.floor(origin).astype(np.int64), (n, 3)).copy()
    tdelta = np.abs(inv)
    tmax = np.where(dirs != 0, (cell + (step > 0) - origin) * inv, np.inf)
    t_hit = np.full(n, np.inf)
    water_t = np.full(n, np.inf)
    blk = np.zeros(n, np.int64)
    axis = np.zeros(n, np.int64)
    sgn = np.zeros(n, np.int64)
    ids = np.arange(n)
    dy = dirs[:, 1].copy()
    max_iters = int(3 * max_dist) + 3
    for _ in range(max_iters):
        m = len(ids)
        if m == 0:
            break
        a = np.where(tmax[:, 0] < tmax[:, 1], np.where(tmax[:, 0] < tmax[:, 2], 0, 2),
                     np.where(tmax[:, 1] < tmax[:, 2], 1, 2))
        r = np.arange(m)
        t = tmax[r, a]
        st = step[r, a]
        cell[r, a] += st
        tmax[r, a] += tdelta[r, a]
        y = cell[:, 1]
        b = grid[cell[:, 0] & mask, np.clip(y, 0, WORLD_HEIGHT - 1), cell[:, 2] & mask]
        b = np.where(y < 0, STONE, np.where(y >= WORLD_HEIGHT, AIR, b))
        wet = (b == WATER)
        if wet.any():
            first = wet & ~np.isfinite(water_t[ids])
            water_t[ids[first]] = t[first]
        hit = SOLID[b]
        done = hit | (t > max_dist) | ((y >= top) & (dy >= 0))
        if hit.any():
            hi = ids[hit]
            t_hit[hi], blk[hi], axis[hi], sgn[hi] = t[hit], b[hit], a[hit], st[hit]
        if done.any():
            keep = ~done
            ids, cell, tmax, tdelta, step, dy = ids[keep], cell[keep], tmax[keep], tdelta[keep], step[keep], dy[keep]
    t_hit[t_hit > max_dist] = np.inf
    return t_hit, blk, axis, sgn, water_t


_RAIN_CACHE = {}


def _rain(img, frame_index, seed, heavy=False):
    """Falling streaks: a fixed streak pattern scrolled down by the frame index (deterministic)."""
    h, w, _ = img.shape
    key = (h, w, seed, heavy)
    if key not in _RAIN_CACHE:
        rng = np.random.default_rng([seed, 5])
        base = np.zeros((h, w), bool)
        count = int(w * h * (0.012 if heavy else 0.007))
        length = max(2, h // 12)
        ys, xs = rng.integers(0, h, count), rng.integers(0, w, count)
        for k in range(length):
            base[(ys + k) % h, (xs + k // 3) % w] = True
        _RAIN_CACHE[key] = base
    mask = np.roll(_RAIN_CACHE[key], shift=(frame_index * max(1, h // 9), frame_index), axis=(0, 1))
    out = img.copy()
    out[mask] = out[mask] * 0.55 + np.array([0.62, 0.66, 0.76]) * 0.45
    return out


def _generate(rng, biome):
    """Terrain grid [x, y, z] uint8 and ground height map [x, z] (y of the top solid ground block)."""
    s = WORLD_SIZE
    base = {'plains': SEA_LEVEL + 2.0, 'forest': SEA_LEVEL + 3.0, 'desert': SEA_LEVEL + 2.5}[biome]
    amp = {'plains': 9.0, 'forest': 12.0, 'desert': 8.0}[biome]
    n = _fbm(rng, s)
    height = np.clip(np.round(base + (n - 0.5) * amp * 2), 2, WORLD_HEIGHT - 14).astype(np.int64)
    grid = np.zeros((s, WORLD_HEIGHT, s), np.uint8)
    y = np.arange(WORLD_HEIGHT)[None, :, None]
    h = height[:, None, :]
    grid[y <= h] = STONE
    if biome == 'desert':
        grid[(y <= h) & (y > h - 4)] = SAND
    else:
        grid[(y <= h) & (y > h - 4)] = DIRT
        beach = height <= SEA_LEVEL + 1  # sand along the shore
        top = np.where(beach, SAND, GRASS)[:, None, :]
        grid[:] = np.where(y == h, top, grid)
        rocky = _fbm(rng, s, (16, 8)) > 0.68  # stone outcrops on hilltops
        grid[:] = np.where((y == h) & (rocky & (height > base + 3))[:, None, :], STONE, grid)
    grid[(y > h) & (y <= SEA_LEVEL)] = WATER  # water surface flush with the lowest dry land
    # vegetation on dry ground
    dry = height >= SEA_LEVEL
    if biome == 'desert':
        for x, z in zip(*np.nonzero(dry & (rng.random((s, s)) < 0.006))):
            for k in range(1, 2 + rng.integers(3)):
                grid[x, height[x, z] + k, z] = CACTUS
    else:
        density = 0.004 if biome == 'plains' else 0.03
        spots = dry & (rng.random((s, s)) < density) & (grid[np.arange(s)[:, None], height, np.arange(s)[None]] == GRASS)
        for x, z in zip(*np.nonzero(spots)):
            _tree(grid, rng, x, int(height[x, z]) + 1, z)
    return grid, height


def _tree(grid, rng, x, y0, z):
    trunk = 4 + int(rng.integers(3))
    top = y0 + trunk
    m = WORLD_SIZE - 1
    for dy in range(-2, 2):
        r = 2 if dy < 0 else 1
        for dx in range(-r, r + 1):
            for dz in range(-r, r + 1):
                corner = abs(dx) == r and abs(dz) == r
                if corner and (dy == 1 or rng.random() < 0.5):
                    continue
                yy = top + dy
                if 0 <= yy < WORLD_HEIGHT and grid[(x + dx) & m, yy, (z + dz) & m] == AIR:
                    grid[(x + dx) & m, yy, (z + dz) & m] = LEAVES
    for yy in range(y0, min(top, WORLD_HEIGHT)):
        grid[x, yy, z] = LOG


# ---------------------------------------------------------------- scripted player and recording
class ScriptedPlayer:
    """GF-like gameplay: actions held for random lengths, isolated and combined, camera turns of
    several speeds in yaw and pitch, so every bin of the 15-D encoding occurs often."""
    YAW_SPEEDS = (0.75, 1.5, 3.0, 6.0, 10.0)   # degrees per frame
    PITCH_SPEEDS = (1.0, 2.0, 4.0)
    MAX_SCRIPTED_PITCH = 35.0  # GF players mostly look near the horizon; a sky-only view teaches little

    def __init__(self, rng):
        self.rng = rng
        self.left = 0
        self.current = Action()
        self.stuck = 0

    def _new_segment(self, state):
        rng = self.rng
        self.left = int(rng.integers(4, 25))
        mode = rng.choice(['idle', 'move', 'camera', 'both'], p=[0.08, 0.24, 0.24, 0.44])
        a = Action()
        if mode in ('move', 'both'):
            while a.ws == 0 and a.ad == 0:
                a.ws = int(rng.choice([0, 1, 2], p=[0.3, 0.5, 0.2]))
                a.ad = int(rng.choice([0, 1, 2], p=[0.5, 0.25, 0.25]))
            a.scs = int(rng.choice([0, 1, 2, 3], p=[0.55, 0.17, 0.12, 0.16]))
            if self.stuck >= 2 and rng.random() < 0.6:
                a.scs = 1  # jump over what blocks us
        elif mode == 'camera' or rng.random() < 0.1:
            a.scs = int(rng.choice([0, 1], p=[0.85, 0.15]))  # an isolated jump now and then
        if mode in ('camera', 'both'):
            kind = rng.choice(['yaw', 'pitch', 'yaw+pitch'], p=[0.5, 0.3, 0.2])
            if 'yaw' in kind:
                a.yaw_deg = float(rng.choice(self.YAW_SPEEDS) * rng.choice([-1, 1]) * rng.uniform(0.85, 1.15))
            if 'pitch' in kind:
                sign = rng.choice([-1, 1])
                if abs(state.pitch) > 12 and rng.random() < 0.75:
                    sign = -np.sign(state.pitch)  # drift back towards the horizon
                a.pitch_deg = float(rng.choice(self.PITCH_SPEEDS) * sign * rng.uniform(0.85, 1.15))
        self.current = a

    def act(self, state, moved):
        self.stuck = 0 if moved else self.stuck + 1
        if self.left <= 0 or (self.stuck >= 3 and self.current.scs != 1):
            self._new_segment(state)
        self.left -= 1
        a = dataclasses.replace(self.current)
        if abs(state.pitch + a.pitch_deg) > self.MAX_SCRIPTED_PITCH:  # keep the view mostly on the world
            a.pitch_deg = -a.pitch_deg
            self.current.pitch_deg = a.pitch_deg
        return a


def clip_settings(seed):
    """Biome, start time and weather of the clip with this seed (GF-like mix)."""
    rng = np.random.default_rng([seed, 3])
    return dict(biome=str(rng.choice(BIOMES)), start_time=str(rng.choice(TIMES)),
                weather=str(rng.choice(WEATHERS, p=[0.7, 0.2, 0.1])))


def _record(i, state, prev):
    """GF per-frame record i: the transition frame i-1 -> i (record 0: zero deltas)."""
    r = dict(ws=0, ad=0, scs=0, pitch=state.pitch, yaw=state.yaw, pitch_delta=0.0, yaw_delta=0.0,
             pos=[state.x, state.y, state.z])
    if prev is not None:
        act, before = prev
        r.update(ws=act.ws, ad=act.ad, scs=act.scs,
                 pitch_delta=(state.pitch - before.pitch) / 15.0, yaw_delta=(state.yaw - before.yaw) / 15.0)
    return r


def record_clip(seed, frames=160, width=128, height=72, settings=None):
    """Play a scripted clip. Returns (frames uint8 [F, H, W, 3], GF metadata dict)."""
    settings = settings or clip_settings(seed)
    world = World(seed, **settings)
    rng = np.random.default_rng([seed, 11])
    state = world.spawn(rng)
    start = dataclasses.asdict(state)
    player = ScriptedPlayer(rng)
    out = np.zeros((frames, height, width, 3), np.uint8)
    records = {}
    moved, prev = True, None
    for i in range(frames):
        if i > 0:
            act = player.act(state, moved)
            new = world.step(state, act)
            moved = (abs(new.x - state.x) + abs(new.z - state.z) > 1e-3) or (act.ws == 0 and act.ad == 0)
            prev, state = (act, state), new
        records[str(i)] = _record(i, state, prev)
        out[i] = world.render(state, width, height, frame_index=i)
    meta = dict(biome=settings['biome'], initial_weather=settings['weather'], start_time=settings['start_time'],
                actions=records,
                blockworld=dict(version=1, seed=int(seed), size=[width, height], fps=FPS, start_state=start))
    return out, meta


def replay_clip(meta, width=None, height=None):
    """Re-render a recorded clip from its initial state and per-frame records (exactly)."""
    bw = meta['blockworld']
    width, height = width or bw['size'][0], height or bw['size'][1]
    world = World(bw['seed'], meta['biome'], meta['start_time'], meta['initial_weather'])
    state = PlayerState(**bw['start_state'])
    recs = meta['actions']
    out = np.zeros((len(recs), height, width, 3), np.uint8)
    for i in range(len(recs)):
        r = recs[str(i)]
        if i > 0:
            state = state.copy()
            state.yaw, state.pitch = r['yaw'], r['pitch']  # absolute angles: exact, no re-summed deltas
            state = world.move(state, Action(ws=r['ws'], ad=r['ad'], scs=r['scs']))
        out[i] = world.render(state, width, height, frame_index=i)
    return out


def write_video(path, frames, fps=FPS):
    """H.264 mp4 through PyAV, written to a temp file then renamed (never half-written)."""
    import av
    tmp = os.path.join(os.path.dirname(path) or '.', '.tmp_' + os.path.basename(path))
    with av.open(tmp, mode='w', format='mp4') as container:
        stream = container.add_stream('libx264', rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = 'yuv420p'
        stream.options = {'crf': '16', 'preset': 'veryfast'}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format='rgb24')):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)


def write_json(path, obj):
    from atomicio import atomic_write
    atomic_write(path, lambda f: json.dump(obj, f), mode='w')


def clip_stem(seed):
    return f"bw_seed_{seed}"


def _record_one(job):
    seed, out_dir, frames, width, height = job
    stem = clip_stem(seed)
    video, meta_path = os.path.join(out_dir, 'video', stem + '.mp4'), os.path.join(out_dir, 'metadata', stem + '.json')
    if os.path.exists(video) and os.path.exists(meta_path):
        return stem, False
    imgs, meta = record_clip(seed, frames, width, height)
    write_video(video, imgs)
    write_json(meta_path, meta)  # written last: its presence marks a finished clip
    return stem, True


def contact_sheet(out_dir, path, per_biome=6, width=None):
    """PNG grid: one row per biome found in out_dir, frames spread over a clip of that biome."""
    import cv2
    rows = []
    metas = {}
    for m in sorted(f for f in os.listdir(os.path.join(out_dir, 'metadata')) if f.endswith('.json')):
        with open(os.path.join(out_dir, 'metadata', m)) as f:
            metas[m] = json.load(f)
    daylight = [TIMES[1], TIMES[0], TIMES[2], TIMES[5], TIMES[3], TIMES[4]]  # brightest clips first
    for biome in BIOMES:
        for m, meta in sorted(metas.items(), key=lambda kv: (daylight.index(kv[1]['start_time'])
                                                              if kv[1]['start_time'] in daylight else 9)):
            if meta['biome'] != biome:
                continue
            cap = cv2.VideoCapture(os.path.join(out_dir, 'video', m[:-5] + '.mp4'))
            frames = []
            while True:
                ok, fr = cap.read()
                if not ok:
                    break
                frames.append(fr)
            if not frames:
                continue
            picks = [frames[k] for k in np.linspace(0, len(frames) - 1, per_biome).astype(int)]
            w = width or max(256, picks[0].shape[1])
            picks = [cv2.resize(p, (w, w * p.shape[0] // p.shape[1]), interpolation=cv2.INTER_NEAREST) for p in picks]
            row = np.concatenate(picks, axis=1)
            label = f"{biome} | {meta['start_time']} | {meta['initial_weather']} | {m[:-5]}"
            (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
            row[:th + 10, :tw + 10] //= 3  # a dark band so the label reads on any sky
            cv2.putText(row, label, (5, th + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
            rows.append(row)
            break
    if not rows:
        raise SystemExit(f"{out_dir}: no clips to make a contact sheet from")
    sheet = np.concatenate(rows, axis=0)
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    tmp = os.path.join(os.path.dirname(path) or '.', '.tmp_' + os.path.basename(path))
    cv2.imwrite(tmp, sheet)
    os.replace(tmp, path)
    return path


def play(seed, biome, width, height, scale, start_time, weather, frames=None):
    """Walk around in a pygame window with the live-inference keys (actions.py)."""
    import pygame
    import actions as A
    world = World(seed, biome, start_time, weather)
    state = world.spawn()
    pygame.init()
    screen = pygame.display.set_mode((width * scale, height * scale))
    pygame.display.set_caption(f"blockworld {biome} seed {seed} - Esc quits")
    pygame.event.set_grab(True)
    pygame.mouse.set_visible(False)
    clock = pygame.time.Clock()
    held = A.HeldKeys()
    i = 0
    while frames is None or i < frames:
        mdx = mdy = 0
        for ev in pygame.event.get():
            if ev.type == pygame.QUIT or (ev.type == pygame.KEYDOWN and ev.key == pygame.K_ESCAPE):
                frames = i
            elif ev.type == pygame.MOUSEMOTION:
                mdx, mdy = mdx + ev.rel[0], mdy + ev.rel[1]
            else:
                held.update(ev)
        if frames is not None and i >= frames:
            break
        rec = A.keys_to_record(held.held, mdx, mdy)
        state = world.step(state, Action(rec['ws'], rec['ad'], rec['scs'], rec['yaw_deg'], rec['pitch_deg']))
        img = world.render(state, width, height, frame_index=i)
        surf = pygame.surfarray.make_surface(img.swapaxes(0, 1))
        screen.blit(pygame.transform.scale(surf, (width * scale, height * scale)), (0, 0))
        pygame.display.flip()
        clock.tick(FPS)
        i += 1
    pygame.quit()
    return state


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', default='data/blockworld', help='dataset folder (GF layout: video/, metadata/)')
    p.add_argument('--clips', type=int, default=24)
    p.add_argument('--frames', type=int, default=160, help='frames per clip (GF: 2000)')
    p.add_argument('--size', default='128x72', help='WxH, e.g. 640x360 like GF')
    p.add_argument('--seed', type=int, default=0, help='clip k uses seed + k')
    p.add_argument('--workers', type=int, default=1)
    p.add_argument('--contact-sheet', default=None, help='also write a PNG of frames from each biome here')
    p.add_argument('--play', action='store_true', help='walk around in a pygame window')
    p.add_argument('--biome', default='forest', choices=BIOMES)
    p.add_argument('--start-time', default=TIMES[1], choices=TIMES)
    p.add_argument('--weather', default='clear', choices=WEATHERS)
    p.add_argument('--scale', type=int, default=6, help='--play window scale')
    args = p.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split('x'))
    except ValueError:
        p.error(f"--size {args.size!r}: expected WxH, e.g. 128x72")
    if args.play:
        play(args.seed, args.biome, width, height, args.scale, args.start_time, args.weather)
        return
    from tqdm import tqdm
    for sub in ('video', 'metadata'):
        os.makedirs(os.path.join(args.out, sub), exist_ok=True)
    jobs = [(args.seed + k, args.out, args.frames, width, height) for k in range(args.clips)]
    made = 0
    bar = tqdm(total=len(jobs), desc='blockworld clips', unit='clip')
    if args.workers > 1:
        import multiprocessing as mp
        with mp.get_context('spawn').Pool(args.workers) as pool:
            for _, new in pool.imap_unordered(_record_one, jobs):
                made += new
                bar.update()
    else:
        for job in jobs:
            made += _record_one(job)[1]
            bar.update()
    bar.close()
    print(f"{args.out}: {made} clips recorded, {len(jobs) - made} already there")
    if args.contact_sheet:
        print(f"contact sheet: {contact_sheet(args.out, args.contact_sheet)}")


if __name__ == '__main__':
    main(sys.argv[1:])

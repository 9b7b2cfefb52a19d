"""Token trajectories for training and evaluation: a flat memory-mapped cache built once from
preprocess.py's per-clip npz files, and windows that never cross a clip boundary.

FACTS §5: np.load(mmap_mode='r') does nothing for .npz, so the earlier loader decompressed a
whole trajectory per sample. Here every clip is copied once into two flat .npy files that are
truly memory-mapped; a sample is a slice.

    <data>/cache/tokens.npy   uint16  [N, H, W]   every frame of every clip, clip after clip
    <data>/cache/actions.npy  float32 [N, A]      row i: the action from frame i to i+1 (0 on a clip's last frame)
    <data>/cache/latents.npy  float16 [N, D, H, W] only when every clip has preprocess.py --latents' latents
    <data>/cache/flow.npy     float16 [N, 3, H, W] only when every clip has preprocess.py --flow's flow: row i, the
                              pictures' motion from frame i to i+1 (dx, dy in cells, weight; 0 on a clip's last frame)
    <data>/cache/index.json   clips (stem, start, length, split) and the manifest's hash
"""
import hashlib
import json
import os

import numpy as np
import torch

import actions as A

CACHE_DIR = 'cache'


def load_manifest(data_dir):
    path = os.path.join(data_dir, 'manifest.json')
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no manifest; run preprocess.py --output {data_dir} first")
    with open(path, 'rb') as f:
        raw = f.read()
    return json.loads(raw), hashlib.sha1(raw).hexdigest()


def _arrays_whole(cache, index):
    """Every array the index names is there with all its frames (a crash or a foreign writer can cut one short)."""
    names = ['tokens', 'actions'] + (['latents'] if index.get('latent_dim') else []) + (['flow'] if index.get('flow') else [])
    for n in names:
        path = os.path.join(cache, f'{n}.npy')
        try:   # mapping checks the file holds every byte its header promises
            if np.load(path, mmap_mode='r').shape[0] != index['frames']:
                return False
        except (OSError, ValueError):
            return False
    return True


def build_cache(data_dir, progress=True):
    """Build (or reuse) the flat cache for data_dir. Returns the cache folder."""
    manifest, digest = load_manifest(data_dir)
    cache = os.path.join(data_dir, CACHE_DIR)
    index_path = os.path.join(cache, 'index.json')
    if os.path.isfile(index_path):
        with open(index_path) as f:
            index = json.load(f)
        if index.get('manifest_sha1') == digest and _arrays_whole(cache, index):
            return cache
    os.makedirs(cache, exist_ok=True)
    clips, total, shape, adim, lat_shapes, has_flow = [], 0, None, None, set(), []
    for c in manifest['clips']:
        with np.load(os.path.join(data_dir, c['file'])) as z:
            t_shape, a_shape = z['tokens'].shape, z['actions'].shape
            lat_shapes.add(z['latents'].shape[1:] if 'latents' in z.files else None)
            has_flow.append('flow' in z.files)
            if 'flow' in z.files and z['flow'].shape != (t_shape[0] - 1, 3) + t_shape[1:]:
                raise ValueError(f"{c['file']}: flow of shape {z['flow'].shape} for {t_shape[0]} frames of "
                                 f"{t_shape[1:]} (expected frames - 1 transitions, 3 maps of the token grid)")
            if 'latents' in z.files and z['latents'].shape[0] != t_shape[0]:
                raise ValueError(f"{c['file']}: {z['latents'].shape[0]} latent maps for {t_shape[0]} frames")
        if a_shape[0] != t_shape[0] - 1:
            raise ValueError(f"{c['file']}: {a_shape[0]} actions for {t_shape[0]} frames (expected frames - 1)")
        shape, adim = shape or t_shape[1:], adim or a_shape[1]
        if t_shape[1:] != shape or a_shape[1] != adim:
            raise ValueError(f"{c['file']}: shape {t_shape}/{a_shape} differs from the first clip's {shape}/{adim}")
        clips.append(dict(stem=c.get('stem', os.path.splitext(os.path.basename(c['file']))[0]), file=c['file'],
                          start=total, length=int(t_shape[0]), split=c['split']))
        total += t_shape[0]
    if not clips:
        raise ValueError(f"{data_dir}/manifest.json lists no clips")

    from tqdm import tqdm

    # latents only when every clip has them, all of one shape (a mixed dataset has none)
    lat_shape = next(iter(lat_shapes)) if len(lat_shapes) == 1 else None
    flow = all(has_flow)   # the same: every clip's or none

    def fill(tok_mm, act_mm, lat_mm, flow_mm):
        for c in tqdm(clips, desc='token cache', disable=not progress):
            with np.load(os.path.join(data_dir, c['file'])) as z:
                tok_mm[c['start']:c['start'] + c['length']] = z['tokens']
                act_mm[c['start']:c['start'] + c['length'] - 1] = z['actions']
                act_mm[c['start'] + c['length'] - 1] = 0
                if lat_mm is not None:
                    lat_mm[c['start']:c['start'] + c['length']] = z['latents']
                if flow_mm is not None:
                    flow_mm[c['start']:c['start'] + c['length'] - 1] = z['flow']
                    flow_mm[c['start'] + c['length'] - 1] = 0

    names = ['tokens', 'actions'] + (['latents'] if lat_shape else []) + (['flow'] if flow else [])
    # temp names per process: runs started side by side on one dataset each build, the last rename wins
    tmps = {n: os.path.join(cache, f'{n}.npy.tmp{os.getpid()}.npy') for n in names}
    tok = np.lib.format.open_memmap(tmps['tokens'], mode='w+', dtype=np.uint16, shape=(total,) + tuple(shape))
    act = np.lib.format.open_memmap(tmps['actions'], mode='w+', dtype=np.float32, shape=(total, adim))
    lat = (np.lib.format.open_memmap(tmps['latents'], mode='w+', dtype=np.float16, shape=(total,) + tuple(lat_shape))
           if lat_shape else None)
    flw = (np.lib.format.open_memmap(tmps['flow'], mode='w+', dtype=np.float16, shape=(total, 3) + tuple(shape))
           if flow else None)
    fill(tok, act, lat, flw)
    for m in (tok, act, lat, flw):
        if m is not None:
            m.flush()
    del tok, act, lat, flw
    for n, kept in (('latents', lat_shape), ('flow', flow)):
        stale = os.path.join(cache, f'{n}.npy')
        if not kept and os.path.exists(stale):
            os.remove(stale)
    for n in names:
        os.replace(tmps[n], os.path.join(cache, f'{n}.npy'))
    tmp = index_path + f'.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(dict(manifest_sha1=digest, clips=clips, frames=total, grid=list(shape), action_dim=adim,
                       latent_dim=int(lat_shape[0]) if lat_shape else 0, flow=flow,
                       action_encoding=manifest.get('action_encoding'),
                       action_names=manifest.get('action_names')), f)
    os.replace(tmp, index_path)  # written last: the cache is valid only once this exists
    return cache


class TokenCache:
    """The memory-mapped arrays of a cache folder; opened lazily so DataLoader workers each map them."""

    def __init__(self, data_dir):
        self.dir = build_cache(data_dir)
        with open(os.path.join(self.dir, 'index.json')) as f:
            self.index = json.load(f)
        self.clips = self.index['clips']
        self.action_dim = self.index['action_dim']
        self.grid = tuple(self.index['grid'])
        self.latent_dim = self.index.get('latent_dim', 0)   # 0: the dataset has no latents
        self.has_flow = bool(self.index.get('flow'))          # preprocess.py --flow
        self._tok = self._act = self._lat = self._held = self._flow = None

    @property
    def tokens(self):
        if self._tok is None:
            self._tok = np.load(os.path.join(self.dir, 'tokens.npy'), mmap_mode='r')
        return self._tok

    @property
    def actions(self):
        if self._act is None:
            self._act = np.load(os.path.join(self.dir, 'actions.npy'), mmap_mode='r')
        return self._act

    @property
    def latents(self):
        if self._lat is None:
            if not self.latent_dim:
                raise ValueError(f"{self.dir}: this dataset has no latents (preprocess.py --latents)")
            self._lat = np.load(os.path.join(self.dir, 'latents.npy'), mmap_mode='r')
        return self._lat

    @property
    def flow(self):
        if self._flow is None:
            if not self.has_flow:
                raise ValueError(f"{self.dir}: this dataset has no optical flow (preprocess.py --flow)")
            self._flow = np.load(os.path.join(self.dir, 'flow.npy'), mmap_mode='r')
        return self._flow

    def __getstate__(self):  # workers re-open the maps instead of pickling them
        d = dict(self.__dict__)
        d['_tok'] = d['_act'] = d['_lat'] = d['_held'] = d['_flow'] = None
        return d

    @property
    def held_before(self):
        """int64 [N, 7] (the 15-D v5 layout): row i, how many frames in a row each key (W A S D jump sprint
        sneak) was down in the clip's actions before action i; what a window starting at row i carries in
        (model_convGru.key_hold_counts). Computed once, vectorised."""
        if self._held is None:
            if self.action_dim != len(A.V5_NAMES):
                raise ValueError(f"{self.dir}: key hold counts need the 15-D v5 action layout, not {self.action_dim}-D")
            down = np.asarray(self.actions[:, A.KEYS_SLICE]) > 0.5
            n = len(down)
            pos = np.arange(n)[:, None]
            first = np.zeros(n, bool)
            first[[c['start'] for c in self.clips]] = True
            # the last row before i (inclusive) where the run broke: a key up, or the row before a clip starts
            broke = np.where(~down, pos, np.where(first[:, None], pos - 1, -1))
            after = pos - np.maximum.accumulate(broke, axis=0)      # frames down up to and including row i
            held = np.zeros_like(after)
            held[1:] = after[:-1]
            held[first] = 0
            self._held = held
        return self._held

    def window_starts(self, split, frames):
        """Start rows of every window of `frames` frames lying inside one clip of `split`."""
        starts = [np.arange(c['start'], c['start'] + c['length'] - frames + 1)
                  for c in self.clips if c['split'] == split and c['length'] >= frames]
        return np.concatenate(starts) if starts else np.zeros(0, np.int64)

    def window(self, start, frames):
        """tokens long [frames, H, W] and actions float [frames - 1, A] (action t: frame t -> t+1)."""
        tok = torch.from_numpy(self.tokens[start:start + frames].astype(np.int64))
        act = torch.from_numpy(np.array(self.actions[start:start + frames - 1]))
        return tok, act

    def latent_window(self, start, frames):
        """float16 latents [frames, D, H, W] of the same rows as window(start, frames)."""
        return torch.from_numpy(np.array(self.latents[start:start + frames]))

    def flow_window(self, start, frames):
        """float16 optical flow [frames - 1, 3, H, W] of the transitions of window(start, frames)."""
        return torch.from_numpy(np.array(self.flow[start:start + frames - 1]))


class WindowDataset(torch.utils.data.Dataset):
    """Windows of `frames` consecutive frames from one split, strictly inside one clip: (tokens, actions),
    then the latents with latents=True, the optical flow with flow=True, then with held=True the frames each key
    was already down (7,) long."""

    def __init__(self, cache, split, frames, latents=False, held=False, flow=False):
        self.cache, self.frames, self.with_latents, self.with_held, self.with_flow = cache, frames, latents, held, flow
        if latents and not cache.latent_dim:
            raise ValueError(f"{cache.dir}: this dataset has no latents (preprocess.py --latents)")
        if flow and not cache.has_flow:
            raise ValueError(f"{cache.dir}: this dataset has no optical flow (preprocess.py --flow)")
        self.starts = cache.window_starts(split, frames)
        if len(self.starts) == 0:
            raise ValueError(f"no {split} clip in {cache.dir} has {frames} frames; "
                             f"lower the window or record longer clips")

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, i):
        s = int(self.starts[i])
        w = self.cache.window(s, self.frames)
        if self.with_latents:
            w = w + (self.cache.latent_window(s, self.frames),)
        if self.with_flow:
            w = w + (self.cache.flow_window(s, self.frames),)
        return w + (torch.from_numpy(self.cache.held_before[s]),) if self.with_held else w

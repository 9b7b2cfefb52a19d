"""preprocess: gameplay recordings -> VQ-VAE token grids + encoded actions, one .npz per clip.

    python preprocess.py --input data/blockworld --output preprocessedv4/blockworld --vqvae checkpoints/vqvae.pt
    python preprocess.py --check data/blockworld            # validate a dataset, encode nothing
    python preprocess.py --output DIR --manifest-only       # rebuild DIR/manifest.json from the npz files

Input layouts
  gf      GF-Minecraft: <in>/metadata/<stem>.json + <in>/video/<stem>.mp4, one record per frame, 16 FPS.
          Record "i" is the transition frame i-1 -> i, so actions[t] (frame t -> t+1) comes from record
          str(t+1); camera degrees per frame = yaw_delta * 15, pitch_delta * 15 (yaw > 0 right, pitch > 0 down).
  minerl  one folder per trajectory anywhere under <in> (stem = its relative path, '/' -> '__'):
            recording.mp4    the video (any resolution)
            metadata.json    {"duration_ms": int, "duration_steps": S, ...}
            rendered.npz     MineRL's per-step actions, arrays of length S or S-1:
                             action$forward, action$back, action$left, action$right, action$jump,
                             action$sprint, action$sneak (0/1) and action$camera float [S(-1), 2] =
                             [pitch, yaw] degrees (pitch > 0 looks down, yaw > 0 turns right).
          MineRL's convention: action s is taken at step s and leads to step s+1. Native 20 steps/s;
          step s is shown by video frame round(s * (F-1) / (S-1)) (linspace). Keys map to GF's:
          ws = W/S (both held = none), ad = A/D, scs = jump > sneak > sprint.

Frame rate (actions.kept_indices / aggregate): --fps below the source rate keeps source frames (steps)
round(j * src / fps) and aggregates the transitions between two kept frames: camera = SUM of the degrees
(the real change between the kept frames; MineRL: then clipped to +-15 deg per output frame); W/S, A/D and
sprint/sneak = the value held in at least half of the window (a tie between two values: the later one);
jump = held if pressed in ANY transition of the window (a jump is a short press whose effect outlasts it).

Output (the training loop reads this), <out>/<stem>.npz, np.savez (uncompressed):
    tokens       uint16  [K, 18, 32]  VQ-VAE codes of the K kept frames
    actions      float32 [K-1, A]     actions[t] drives frame t -> t+1 (v5: A = 15, v4: A = 5)
    raw_actions  float32 [K-1, 5]     yaw_deg, pitch_deg (degrees per output frame), ws, ad, scs
    frame_index  int32   [K]          source video frame of each kept frame
    latents      float16 [K, D, 18, 32]  with --latents only: the VQ-VAE's pre-quantization latents (what a
                                      world model with latent_dim > 0 reads; 74 KB a frame at D = 64)
    flow         float16 [K-1, 3, 18, 32]  with --flow only: the frames' optical flow per token cell, dx / dy in
                                      cells and a reliability weight (opticalflow.py; train.py LATENT_FLOW_TARGET)
    settings     str (0-d array)      JSON: everything the content depends on; resume compares it
    info         str (0-d array)      JSON: stem, source files, source frame count, missing record keys
<out>/manifest.json (rebuilt at the end of every run from all npz files whose settings match),
<out>/errors.json (clips that failed: stem, file, problem), <out>/progress/shard_<i>_of_<n>.json.
Every file is written atomically (temp file in the same folder + os.replace).
"""
import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time

import numpy as np

import actions as A
from atomicio import atomic_write
import gfdata
from gfdata import ClipError

# ---- defaults (flags override) ----
LAYOUT = 'gf'                # gf | minerl
ACTION_ENCODING = 'v5'       # v5 (15-D discrete) | v4 (5-D continuous)
FPS = 16                     # output frames per second (GF's native rate)
SOURCE_FPS = {'gf': 16, 'minerl': 20}  # native rate of each layout (frames / steps per second)
FRAME_SIZE = (128, 72)       # (W, H) frames are resized to before encoding
WORKERS = 2                  # decoding processes (0: decode in the main process)
PREFETCH_PER_WORKER = 2      # clips decoded ahead per worker while the main process encodes
BATCH = 256                  # frames per VQ-VAE encode call
LATENTS = False              # also store the continuous pre-quantization latents (--latents)
FLOW = False                 # also store the kept frames' optical flow per token cell (--flow, opticalflow.py)
MIN_FRAMES = 8               # clips with fewer output frames are reported and skipped
VAL_FRACTION = 0.1           # share of clips in the 'val' split (gfdata.split_of, by stem hash)
MINERL_CAMERA_CLIP_DEG = 15.0  # MineRL camera per output frame is clipped to +- this
FORMAT_VERSION = 1
MINERL_KEYS = ('forward', 'back', 'left', 'right', 'jump', 'sprint', 'sneak')


@dataclasses.dataclass
class Source:
    stem: str
    layout: str
    video: str
    meta: str
    actions: str = ''  # MineRL rendered.npz


def log(msg, file=sys.stdout):
    from tqdm import tqdm
    tqdm.write(msg, file=file)


# ----------------------------------------------------------------------------- files

def write_json(path, obj):
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=1).encode('utf-8')))


def file_sha1(path):
    h = hashlib.sha1()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def settings_key(settings):
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def read_npz_meta(path):
    """(settings dict, info dict, frame_index, raw_actions) of an output npz, reading only the small
    members; None when the file is not a readable output npz."""
    try:
        with np.load(path) as z:
            return (json.loads(str(z['settings'])), json.loads(str(z['info'])), z['frame_index'],
                    z['raw_actions'])
    except Exception:
        return None


def npz_settings(path):
    try:
        with np.load(path) as z:
            return json.loads(str(z['settings']))
    except Exception:
        return None


# ----------------------------------------------------------------------------- finding clips

def _stem_of(path):
    return os.path.splitext(os.path.basename(path))[0]


def find_sources(root, layout):
    """(sorted list of Source, list of (stem, ClipError) for incomplete clips)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: input folder not found")
    if layout == 'gf':
        stems, orphans = gfdata.scan_clips(root)
        src = [Source(s, 'gf', os.path.join(root, 'video', s + '.mp4'), os.path.join(root, 'metadata', s + '.json'))
               for s in stems]
        return src, [(_stem_of(e.path), e) for e in orphans]
    if layout != 'minerl':
        raise ValueError(f"unknown layout {layout!r}")
    src, orphans = [], []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if not x.startswith('.'))
        have = set(files) & {'recording.mp4', 'metadata.json', 'rendered.npz'}
        if not have:
            continue
        rel = os.path.relpath(d, root)
        stem = os.path.basename(os.path.abspath(root)) if rel == '.' else rel.replace(os.sep, '__')
        paths = {f: os.path.join(d, f) for f in ('recording.mp4', 'metadata.json', 'rendered.npz')}
        lacking = sorted({'recording.mp4', 'metadata.json', 'rendered.npz'} - have)
        if lacking:
            orphans.append((stem, ClipError(d, f"incomplete MineRL trajectory: missing {', '.join(lacking)}")))
            continue
        src.append(Source(stem, 'minerl', paths['recording.mp4'], paths['metadata.json'], paths['rendered.npz']))
    return sorted(src, key=lambda s: s.stem), orphans


# ----------------------------------------------------------------------------- actions

def _minerl_actions(src):
    """(per-step transitions of length S-1, S, metadata dict) of a MineRL trajectory."""
    try:
        with open(src.meta, 'rb') as f:
            md = json.loads(f.read())
    except OSError as e:
        raise ClipError(src.meta, f"cannot read metadata ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ClipError(src.meta, f"invalid JSON ({e})") from None
    if not isinstance(md, dict):
        raise ClipError(src.meta, "top level is not a JSON object")
    for k in ('duration_ms', 'duration_steps'):
        if k not in md:
            raise ClipError(src.meta, f"missing required key {k!r}")
        if isinstance(md[k], bool) or not isinstance(md[k], (int, float)) or md[k] < 0:
            raise ClipError(src.meta, f"{k} = {md[k]!r}: expected a non-negative number")
    S = int(md['duration_steps'])
    try:
        with np.load(src.actions) as z:
            arrs = {}
            for k in MINERL_KEYS + ('camera',):
                name = f'action${k}'
                if name not in z.files:
                    raise ClipError(src.actions, f"missing array {name!r}")
                arrs[k] = np.asarray(z[name])
    except ClipError:
        raise
    except Exception as e:
        raise ClipError(src.actions, f"unreadable actions file ({type(e).__name__}: {e})") from None
    cam = arrs['camera']
    if cam.ndim != 2 or cam.shape[1] != 2:
        raise ClipError(src.actions, f"action$camera has shape {cam.shape}, expected [steps, 2]")
    for k in MINERL_KEYS + ('camera',):
        if len(arrs[k]) < S - 1:
            raise ClipError(src.actions, f"action${k} has {len(arrs[k])} steps, duration_steps is {S}")
    n = max(S - 1, 0)
    on = {k: np.asarray(arrs[k][:n]).astype(np.float64) > 0.5 for k in MINERL_KEYS}
    cam = cam[:n].astype(np.float64)
    if not np.isfinite(cam).all():
        raise ClipError(src.actions, "action$camera holds non-finite values")
    tr = dict(yaw_deg=cam[:, 1], pitch_deg=cam[:, 0],
              ws=np.where(on['forward'] & ~on['back'], 1, np.where(on['back'] & ~on['forward'], 2, 0)),
              ad=np.where(on['left'] & ~on['right'], 1, np.where(on['right'] & ~on['left'], 2, 0)),
              scs=np.where(on['jump'], 1, np.where(on['sneak'], 2, np.where(on['sprint'], 3, 0))))
    return tr, S, md


def clip_actions(src, fps, source_fps, min_frames=MIN_FRAMES):
    """Read and check a clip's actions (no video). Returns dict(raw: output transitions (K-1 each),
    kept: kept source frames (GF) or steps (MineRL), n_source: records (GF) or steps (MineRL),
    missing: {record key: count}). Raises ClipError, including for a clip shorter than min_frames."""
    if src.layout == 'gf':
        meta = gfdata.load_metadata(src.meta)
        tr, n, missing = gfdata.transitions(meta), len(meta['actions']), meta['missing_keys']
    else:
        tr, n, _ = _minerl_actions(src)
        missing = {}
    kept = A.kept_indices(n, source_fps, fps)
    if len(kept) < min_frames:
        what = 'records' if src.layout == 'gf' else 'steps'
        raise ClipError(src.meta, f"clip too short: {n} {what} give {len(kept)} frames at {fps:g} fps "
                                  f"(MIN_FRAMES = {min_frames})")
    raw = A.aggregate(tr, kept)
    if src.layout == 'minerl':
        for k in ('yaw_deg', 'pitch_deg'):
            raw[k] = np.clip(raw[k], -MINERL_CAMERA_CLIP_DEG, MINERL_CAMERA_CLIP_DEG)
    return dict(raw=raw, kept=kept, n_source=n, missing=missing)


def raw_array(raw):
    return np.stack([np.asarray(raw[k], np.float32) for k in A.RAW_ACTION_NAMES], 1).reshape(-1, 5)


def raw_dict(arr):
    arr = np.asarray(arr).reshape(-1, 5)
    return {k: (arr[:, i].astype(np.float64) if i < 2 else np.rint(arr[:, i]).astype(np.int64))
            for i, k in enumerate(A.RAW_ACTION_NAMES)}


def encode_actions(raw, settings):
    return A.encode(raw, settings['action_encoding'], tuple(settings['yaw_edges']), settings['pitch_edge'])


def v5_of(raw, settings):
    return A.encode(raw, 'v5', tuple(settings['yaw_edges']), settings['pitch_edge'])


# ----------------------------------------------------------------------------- workers

def _scan_job(job):
    """First pass (JSON / action files only): (stem, result dict or ClipError)."""
    src, fps, source_fps, min_frames = job
    try:
        r = clip_actions(src, fps, source_fps, min_frames)
        return src.stem, dict(yaw=r['raw']['yaw_deg'], pitch=r['raw']['pitch_deg'], missing=r['missing'])
    except ClipError as e:
        return src.stem, e
    except Exception as e:  # a bug or an odd file must not stop the other clips
        return src.stem, ClipError(src.meta, f"{type(e).__name__}: {e}")


def _decode_job(job):
    """Worker: actions + decoded, resized frames of one clip -> dict, or dict(stem, error=ClipError)."""
    src, settings, min_frames = job
    try:
        return _decode(src, settings, min_frames)
    except ClipError as e:
        return dict(stem=src.stem, error=e)
    except Exception as e:
        return dict(stem=src.stem, error=ClipError(src.video, f"{type(e).__name__}: {e}"))


def _decode(src, settings, min_frames):
    fps, source_fps = settings['fps'], settings['source_fps']
    size = tuple(settings['frame_size'])
    r = clip_actions(src, fps, source_fps, min_frames)
    kept = r['kept']
    if src.layout == 'gf':
        frames, count = gfdata.read_frames(src.video, size, keep=kept, return_count=True)
        if count != r['n_source']:
            raise ClipError(src.video, f"frame count mismatch: the video has {count} frames, "
                                       f"{src.meta} has {r['n_source']} records")
        frame_index = kept
    else:
        S = r['n_source']
        count = gfdata.frame_count(src.video)
        for _ in range(2):  # the container's count, then the decoded count if they differ
            if count < 2:
                raise ClipError(src.video, f"video has {count} frames; a trajectory needs at least 2")
            frame_index = np.floor(kept * (count - 1) / max(S - 1, 1) + 0.5).astype(np.int64)
            uniq = np.unique(frame_index)
            frames_u, decoded = gfdata.read_frames(src.video, size, keep=uniq, return_count=True)
            if decoded == count:
                break
            count = decoded
        else:
            raise ClipError(src.video, "video frame count is unstable between two decodes")
        frames = frames_u[np.searchsorted(uniq, frame_index)]
    flow = None
    if settings.get('flow'):   # here, in the decoding workers: the frames are at hand, and it runs in parallel
        import opticalflow
        flow = opticalflow.cell_flow(frames, settings['token_grid'])
    return dict(stem=src.stem, frames=frames, frame_index=frame_index.astype(np.int32), flow=flow,
                actions=encode_actions(r['raw'], settings).astype(np.float32), raw=raw_array(r['raw']),
                info=dict(stem=src.stem, layout=src.layout, video=os.path.abspath(src.video),
                          metadata=os.path.abspath(src.meta), source_frames=int(count),
                          source_steps=int(r['n_source']) if src.layout == 'minerl' else None,
                          missing_keys=r['missing']))


# ----------------------------------------------------------------------------- encoding

def encode_frames(model, frames, batch, device, latents=False):
    """uint8 [N, H, W, 3] -> uint16 [N, gh, gw] token grids, in batches, inference mode (bf16 autocast on CUDA);
    with latents, also float16 [N, D, gh, gw] pre-quantization latents."""
    import torch
    dev = torch.device(device)
    out = lat = None
    for s in range(0, len(frames), batch):
        x = torch.from_numpy(np.ascontiguousarray(frames[s:s + batch]))
        if dev.type == 'cuda':
            x = x.pin_memory()
        x = x.to(dev, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        with torch.inference_mode(), torch.autocast(device_type=dev.type, dtype=torch.bfloat16,
                                                     enabled=dev.type == 'cuda'):
            idx = model.encode(x, return_latents=latents)
        if latents:
            idx, z = idx
            if lat is None:
                lat = np.empty((len(frames),) + tuple(z.shape[1:]), np.float16)
            lat[s:s + len(z)] = z.to('cpu', torch.float16).numpy()
        idx = idx.to('cpu').numpy()
        if out is None:
            out = np.empty((len(frames),) + idx.shape[1:], np.uint16)
        out[s:s + len(idx)] = idx
    return (out, lat) if latents else out


def write_clip(path, tokens, res, settings, latents=None):
    def w(f):
        extra = {} if latents is None else dict(latents=latents)
        if res.get('flow') is not None:
            extra['flow'] = res['flow']
        np.savez(f, tokens=tokens, actions=res['actions'], raw_actions=res['raw'], frame_index=res['frame_index'],
                 settings=np.array(json.dumps(settings, sort_keys=True)), info=np.array(json.dumps(res['info'])),
                 **extra)
    atomic_write(path, w)


# ----------------------------------------------------------------------------- manifest, errors

def rebuild_manifest(output, settings=None, val_fraction=VAL_FRACTION, quiet=False):
    """Rebuild <output>/manifest.json from the npz files present whose settings equal `settings`
    (None: the settings most npz files share). Returns the manifest dict (None when no npz)."""
    files = sorted(f for f in os.listdir(output) if f.endswith('.npz') and not f.startswith('.'))
    metas = {f: read_npz_meta(os.path.join(output, f)) for f in files}
    unreadable = [f for f, m in metas.items() if m is None]
    metas = {f: m for f, m in metas.items() if m is not None}
    if settings is None:
        groups = {}
        for f, m in metas.items():
            groups.setdefault(json.dumps(m[0], sort_keys=True), []).append(f)
        if not groups:
            return None
        best = max(groups, key=lambda g: (len(groups[g]), max(os.path.getmtime(os.path.join(output, f))
                                                             for f in groups[g])))
        settings = json.loads(best)
    want = json.dumps(settings, sort_keys=True)
    clips, v5, missing, ignored = [], [], {}, []
    for f, (s, info, frame_index, raw) in metas.items():
        if json.dumps(s, sort_keys=True) != want:
            ignored.append(f)
            continue
        stem = info.get('stem', f[:-4])
        clips.append(dict(file=f, stem=stem, length=int(len(frame_index)), split=gfdata.split_of(stem, val_fraction)))
        v5.append(v5_of(raw_dict(raw), settings))
        for k, c in (info.get('missing_keys') or {}).items():
            missing[k] = missing.get(k, 0) + int(c)
    stats = A.action_stats(v5)
    stats['missing_record_keys'] = missing
    n_frames = sum(c['length'] for c in clips)
    manifest = dict(
        format_version=FORMAT_VERSION,
        created=time.strftime('%Y-%m-%dT%H:%M:%S'),
        layout=settings['layout'], fps=settings['fps'], source_fps=settings['source_fps'],
        frame_size=settings['frame_size'], token_grid=settings['token_grid'],
        action_encoding=settings['action_encoding'], action_names=settings['action_names'],
        action_dim=len(settings['action_names']), raw_action_names=list(A.RAW_ACTION_NAMES),
        bin_edges=dict(units='degrees per frame', yaw=settings['yaw_edges'], pitch=settings['pitch_edge']),
        vqvae=dict(sha1=settings['vqvae_sha1'], codebook_size=settings['codebook_size']),
        val_fraction=val_fraction,
        clips=clips,
        totals=dict(clips=len(clips), frames=n_frames, transitions=n_frames - len(clips),
                    train_clips=sum(c['split'] == 'train' for c in clips),
                    val_clips=sum(c['split'] == 'val' for c in clips)),
        stats=stats,
        settings=settings,
        ignored_npz=sorted(ignored + unreadable),
    )
    write_json(os.path.join(output, 'manifest.json'), manifest)
    if not quiet and (ignored or unreadable):
        log(f"manifest: {len(ignored)} npz files with other settings and {len(unreadable)} unreadable ones "
            f"left out (listed under ignored_npz)", sys.stderr)
    return manifest


def progress_path(output, shard):
    return os.path.join(output, 'progress', f'shard_{shard[0]}_of_{shard[1]}.json')


def rebuild_errors(output, settings, shard_n):
    """errors.json = the failures recorded in the progress files of every shard of this layout (i/n)
    run with these settings (each shard rewrites its own file on every run)."""
    key = settings_key(settings)
    pdir = os.path.join(output, 'progress')
    errors = {}
    for f in sorted(os.listdir(pdir)) if os.path.isdir(pdir) else []:
        if not f.endswith(f'_of_{shard_n}.json'):
            continue
        try:
            with open(os.path.join(pdir, f)) as fh:
                p = json.load(fh)
        except (OSError, ValueError):
            continue
        if p.get('settings_key') != key:
            continue
        for e in p.get('failed', []):
            errors[e['stem']] = e
    out = [errors[s] for s in sorted(errors)]
    write_json(os.path.join(output, 'errors.json'), out)
    return out


# ----------------------------------------------------------------------------- the run

def parse_edges(text, n, flag):
    try:
        vals = tuple(float(v) for v in text.split(','))
    except ValueError:
        raise SystemExit(f"{flag} {text!r}: expected {n} comma-separated numbers") from None
    if len(vals) != n or any(v <= 0 for v in vals) or list(vals) != sorted(vals) or len(set(vals)) != n:
        raise SystemExit(f"{flag} {text!r}: expected {n} increasing positive numbers (degrees per frame)")
    return vals


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--input', help='dataset folder')
    p.add_argument('--output', help='output folder (npz per clip, manifest.json, errors.json)')
    p.add_argument('--vqvae', help='VQ-VAE checkpoint (vqvae.save_vqvae)')
    p.add_argument('--layout', default=LAYOUT, choices=('gf', 'minerl'))
    p.add_argument('--action-encoding', default=ACTION_ENCODING, choices=sorted(A.ENCODINGS))
    p.add_argument('--fps', type=float, default=FPS, help=f'output frame rate (default {FPS})')
    p.add_argument('--source-fps', type=float, default=None, help='native rate of the input (default: gf 16, minerl 20)')
    p.add_argument('--workers', type=int, default=WORKERS, help='decoding processes (0: none)')
    p.add_argument('--shard', default='0/1', help='i/n: process only clips whose index %% n == i')
    p.add_argument('--batch', type=int, default=BATCH, help='frames per VQ-VAE call')
    p.add_argument('--device', default=None, help='cpu | cuda (default: cuda when available)')
    p.add_argument('--yaw-edges', default=None, help='a,b: yaw none/slow and slow/fast edges, degrees per frame')
    p.add_argument('--pitch-edge', type=float, default=None, help='pitch level edge, degrees per frame')
    p.add_argument('--latents', action='store_true', default=LATENTS,
                   help='also store the pre-quantization latents (for a world model with latent_dim > 0)')
    p.add_argument('--flow', action='store_true', default=FLOW,
                   help="also store the frames' optical flow per token cell (train.py LATENT_FLOW_TARGET)")
    p.add_argument('--min-frames', type=int, default=MIN_FRAMES)
    p.add_argument('--val-fraction', type=float, default=VAL_FRACTION)
    p.add_argument('--check', metavar='DIR', default=None, help='validate the dataset in DIR, encode nothing')
    p.add_argument('--manifest-only', action='store_true', help='rebuild OUTPUT/manifest.json from its npz files')
    args = p.parse_args(argv)
    try:
        i, n = (int(v) for v in args.shard.split('/'))
        assert 0 <= i < n
    except (ValueError, AssertionError):
        p.error(f"--shard {args.shard!r}: expected i/n with 0 <= i < n")
    args.shard = (i, n)
    if args.source_fps is None:
        args.source_fps = float(SOURCE_FPS[args.layout])
    if args.fps <= 0 or args.fps > args.source_fps + 1e-9:
        p.error(f"--fps {args.fps:g}: must be in (0, source rate {args.source_fps:g}]")
    if args.pitch_edge is not None and args.pitch_edge <= 0:
        p.error("--pitch-edge must be positive")
    if args.check is None and not args.manifest_only:
        missing = [f for f in ('input', 'output', 'vqvae') if getattr(args, f) is None]
        if missing:
            p.error('missing ' + ', '.join('--' + m for m in missing))
    if args.manifest_only and not args.output:
        p.error('--manifest-only needs --output')
    return args


def _num(x):
    return int(x) if float(x).is_integer() else float(x)


def first_pass(sources, args, pool):
    """Actions of every clip (JSON / action files only) -> {stem: dict or ClipError}."""
    jobs = [(s, args.fps, args.source_fps, args.min_frames) for s in sources]
    it = pool.imap(_scan_job, jobs, chunksize=8) if pool is not None else map(_scan_job, jobs)
    return dict(it)


def pick_edges(scan, args):
    """(yaw_edges, pitch_edge, where from): flags, else chosen from the data."""
    ok = [r for r in scan.values() if not isinstance(r, ClipError)]
    yaw = np.concatenate([r['yaw'] for r in ok]) if ok else np.zeros(0)
    pitch = np.concatenate([r['pitch'] for r in ok]) if ok else np.zeros(0)
    info = {}
    yaw_edges, pitch_edge = A.choose_bin_edges(yaw, pitch, info=info)
    where = f"chosen from {len(yaw)} transitions of {len(ok)} clips"
    if info['yaw_default'] or info['pitch_default']:
        where += ' (too few camera moves on ' + ' and '.join(
            a for a in ('yaw', 'pitch') if info[f'{a}_default']) + ': defaults kept)'
    if args.yaw_edges is not None:
        yaw_edges = parse_edges(args.yaw_edges, 2, '--yaw-edges')
    if args.pitch_edge is not None:
        pitch_edge = float(args.pitch_edge)
    if args.yaw_edges is not None and args.pitch_edge is not None:
        where = 'given by flags'
    elif args.yaw_edges is not None or args.pitch_edge is not None:
        where += '; partly given by flags'
    return tuple(float(v) for v in yaw_edges), float(pitch_edge), where


def run_check(args):
    """Validate a dataset without encoding: pairs, JSON / action schema, frame count vs records, length."""
    from tqdm import tqdm
    root = args.check
    try:
        sources, orphans = find_sources(root, args.layout)
    except (FileNotFoundError, ValueError) as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 2
    problems = [e for _, e in orphans]
    scan = {}
    missing = {}
    for src in tqdm(sources, desc='check', unit='clip', file=sys.stderr, mininterval=1.0):
        try:
            r = clip_actions(src, args.fps, args.source_fps, args.min_frames)
            count = gfdata.frame_count(src.video)
            if src.layout == 'gf' and count != r['n_source']:
                count = gfdata.frame_count(src.video, verify=True)  # the container may be wrong: decode
                if count != r['n_source']:
                    raise ClipError(src.video, f"frame count mismatch: the video has {count} frames, "
                                               f"{src.meta} has {r['n_source']} records")
            if src.layout == 'minerl' and count < 2:
                raise ClipError(src.video, f"video has {count} frames; a trajectory needs at least 2")
            gfdata.read_frames(src.video, keep=[0])  # the first frame decodes
            scan[src.stem] = dict(yaw=r['raw']['yaw_deg'], pitch=r['raw']['pitch_deg'], missing=r['missing'],
                                  raw=r['raw'])
            for k, c in r['missing'].items():
                missing[k] = missing.get(k, 0) + c
        except ClipError as e:
            problems.append(e)
    for e in problems:
        print(f"ERROR {e}", file=sys.stderr)
    n_clips = len(sources) + len(orphans)
    print(f"checked {n_clips} clips in {root}: {len(scan)} ok, {len(problems)} with problems")
    if missing:
        print("records with missing keys (read as 0): " + ', '.join(f"{k} {c}" for k, c in sorted(missing.items())))
    if scan:
        yaw_edges, pitch_edge, where = pick_edges(scan, args)
        print(f"bin edges ({where}): --yaw-edges {yaw_edges[0]:g},{yaw_edges[1]:g} --pitch-edge {pitch_edge:g}")
        v5 = [A.encode(r['raw'], 'v5', yaw_edges, pitch_edge) for r in scan.values()]
        print(A.format_action_stats(A.action_stats(v5)))
    return 1 if problems else 0


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.check is not None:
        return run_check(args)
    if args.manifest_only:
        if not os.path.isdir(args.output):
            print(f"ERROR {args.output}: output folder not found", file=sys.stderr)
            return 2
        m = rebuild_manifest(args.output, None, args.val_fraction)
        if m is None:
            print(f"ERROR {args.output}: no npz files to build a manifest from", file=sys.stderr)
            return 1
        print(f"{os.path.join(args.output, 'manifest.json')}: {m['totals']['clips']} clips, "
              f"{m['totals']['frames']} frames")
        print(A.format_action_stats(m['stats']))
        return 0
    return run(args)


def run(args):
    from tqdm import tqdm
    t0 = time.time()
    shard_i, shard_n = args.shard
    try:
        sources, orphans = find_sources(args.input, args.layout)
    except (FileNotFoundError, ValueError) as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 2
    if not os.path.isfile(args.vqvae):
        print(f"ERROR {args.vqvae}: VQ-VAE checkpoint not found", file=sys.stderr)
        return 2
    all_stems = sorted({s.stem for s in sources} | {stem for stem, _ in orphans})
    if not all_stems:
        print(f"ERROR {args.input}: no clips found (layout {args.layout})", file=sys.stderr)
        return 2
    os.makedirs(args.output, exist_ok=True)
    mine = {stem for k, stem in enumerate(all_stems) if k % shard_n == shard_i}

    pool = None
    if args.workers > 0:
        import multiprocessing as mp
        pool = mp.get_context('spawn').Pool(args.workers)
    try:
        scan = first_pass(sources, args, pool)  # every clip, in every shard: all shards get the same edges
        yaw_edges, pitch_edge, where = pick_edges(scan, args)

        import torch
        from vqvae import load_vqvae
        device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
        sha1 = file_sha1(args.vqvae)
        model = load_vqvae(args.vqvae, device)
        H, W = FRAME_SIZE[1], FRAME_SIZE[0]
        grid = list(encode_frames(model, np.zeros((1, H, W, 3), np.uint8), 1, device).shape[1:])
        if model.codebook_size > 65536:
            raise SystemExit(f"{args.vqvae}: codebook of {model.codebook_size} codes does not fit uint16 tokens")
        settings = json.loads(json.dumps(dict(
            format_version=FORMAT_VERSION, layout=args.layout, action_encoding=args.action_encoding,
            action_names=list(A.ENCODINGS[args.action_encoding]), yaw_edges=list(yaw_edges), pitch_edge=pitch_edge,
            fps=_num(args.fps), source_fps=_num(args.source_fps), frame_size=list(FRAME_SIZE), token_grid=grid,
            vqvae_sha1=sha1, codebook_size=int(model.codebook_size),
            minerl_camera_clip_deg=MINERL_CAMERA_CLIP_DEG if args.layout == 'minerl' else None)))
        if args.latents:   # only when on, so datasets made without it stay current
            settings['latents'] = True
        if args.flow:
            settings['flow'] = True
        key = settings_key(settings)
        log(f"{args.input}: {len(all_stems)} clips, shard {shard_i}/{shard_n} has {len(mine)}; "
            f"{args.action_encoding} actions at {args.fps:g} fps; device {device}")
        log(f"bin edges ({where}), degrees per frame: --yaw-edges {yaw_edges[0]:g},{yaw_edges[1]:g} "
            f"--pitch-edge {pitch_edge:g}")

        # progress files of another shard layout describe an older run: this one supersedes them
        pdir = os.path.join(args.output, 'progress')
        if os.path.isdir(pdir):
            for f in os.listdir(pdir):
                if f.startswith('shard_') and not f.endswith(f'_of_{shard_n}.json'):
                    os.remove(os.path.join(pdir, f))

        failed = {}
        for stem, e in orphans:
            if stem in mine:
                failed[stem] = e
        for stem, r in scan.items():
            if stem in mine and isinstance(r, ClipError):
                failed[stem] = r
        for stem in sorted(failed):
            log(f"ERROR {failed[stem]}", sys.stderr)
        skipped, todo = [], []
        for src in sources:
            if src.stem not in mine or src.stem in failed:
                continue
            if npz_settings(os.path.join(args.output, src.stem + '.npz')) == settings:
                skipped.append(src.stem)
            else:
                todo.append(src)
        done = []

        def save_progress():
            write_json(progress_path(args.output, args.shard), dict(
                shard=f"{shard_i}/{shard_n}", settings_key=key, clips=len(mine), done=sorted(done),
                skipped=sorted(skipped), remaining=len(todo_stems - set(done) - set(failed)),
                failed=[dict(stem=s, file=e.path, problem=e.problem) for s, e in sorted(failed.items())],
                updated=time.strftime('%Y-%m-%dT%H:%M:%S')))

        todo_stems = {s.stem for s in todo}
        save_progress()
        n_frames = n_source = 0
        t_enc = 0.0
        jobs = [(src, settings, args.min_frames) for src in todo]
        bar = tqdm(total=len(jobs), desc=f'preprocess {shard_i}/{shard_n}', unit='clip', file=sys.stderr,
                   mininterval=1.0, dynamic_ncols=True)
        for res in _results(jobs, pool, max(1, args.workers) * PREFETCH_PER_WORKER):
            stem = res['stem']
            if 'error' in res:
                failed[stem] = res['error']
                log(f"ERROR {res['error']}", sys.stderr)
            else:
                t1 = time.time()
                tokens = encode_frames(model, res['frames'], args.batch, device, args.latents)
                tokens, latents = tokens if args.latents else (tokens, None)
                t_enc += time.time() - t1
                write_clip(os.path.join(args.output, stem + '.npz'), tokens, res, settings, latents)
                done.append(stem)
                n_frames += len(tokens)
                n_source += res['info']['source_frames']
            save_progress()
            bar.update()
            bar.set_postfix(fps=f"{n_frames / max(time.time() - t0, 1e-9):.1f}", failed=len(failed), refresh=False)
        bar.close()
    except BaseException:
        if pool is not None:
            pool.terminate()
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()

    errors = rebuild_errors(args.output, settings, shard_n)
    manifest = rebuild_manifest(args.output, settings, args.val_fraction)
    elapsed = time.time() - t0
    print(f"shard {shard_i}/{shard_n}: {len(mine)} clips: {len(done)} encoded, {len(skipped)} already done, "
          f"{len(failed)} failed" + (f" (see {os.path.join(args.output, 'errors.json')})" if failed else ''))
    if manifest is not None:
        t = manifest['totals']
        print(f"{os.path.join(args.output, 'manifest.json')}: {t['clips']} clips ({t['train_clips']} train, "
              f"{t['val_clips']} val), {t['frames']} frames; errors.json lists {len(errors)}")
        miss = manifest['stats'].get('missing_record_keys')
        if miss:
            print("records with missing keys (read as 0): " + ', '.join(f"{k} {c}" for k, c in sorted(miss.items())))
        print(A.format_action_stats(manifest['stats']))
    print(f"throughput: {n_frames} frames in {elapsed:.1f} s end to end = {n_frames / max(elapsed, 1e-9):.1f} frames/s "
          f"({n_source} source frames decoded; VQ-VAE encode {t_enc:.1f} s = "
          f"{n_frames / max(t_enc, 1e-9):.1f} frames/s on {device})")
    return 1 if failed else 0


def _results(jobs, pool, ahead):
    """Decoded clips in job order; with a pool, up to `ahead` clips are decoded ahead of the consumer."""
    if pool is None:
        for j in jobs:
            yield _decode_job(j)
        return
    from collections import deque
    pending = deque()
    it = iter(jobs)
    for j in it:
        pending.append(pool.apply_async(_decode_job, (j,)))
        if len(pending) >= ahead:
            break
    while pending:
        res = pending.popleft().get()
        nxt = next(it, None)
        if nxt is not None:
            pending.append(pool.apply_async(_decode_job, (nxt,)))
        yield res


if __name__ == '__main__':
    sys.exit(main())

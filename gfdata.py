"""Reading the GF-Minecraft (GameFactory) layout; shared by preprocess.py and the VQ-VAE trainer.

    <root>/metadata/<stem>.json   {"biome", "initial_weather", "start_time", "actions": {"0": {...}, ...}}
    <root>/video/<stem>.mp4       one frame per record, 16 FPS (GF: 640x360; blockworld: any size)

    stems = list_clips(root)                      # sorted stems with both files; orphans reported
    meta = load_metadata(path)                    # validated; raises ClipError(path, problem)
    meta = validate_metadata(obj, path)           # the same checks on an already parsed object
    arr = transitions(meta)                       # per transition t -> t+1: yaw_deg, pitch_deg, ws, ad, scs
    frames = read_frames(video_path)              # uint8 [F, 72, 128, 3] RGB, INTER_AREA resize
    n = frame_count(video_path, verify=False)     # CAP_PROP_FRAME_COUNT; verify=True decodes and counts
    split_of(stem)                                # 'train' | 'val', sha1 of the stem
    split_stems(stems)                            # (train, val); both non-empty when there are >= 2 clips

Alignment (FACTS §1): record "i" describes frame i-1 -> i; record "0" belongs to no transition, so the
action driving frame t -> t+1 is record str(t+1). Readers ignore unknown top-level keys (blockworld
adds `blockworld`).
"""
import hashlib
import json
import os
import sys

import numpy as np

FRAME_SIZE = (128, 72)  # (W, H) every frame is resized to
RECORD_KEYS = ('ws', 'ad', 'scs', 'pitch', 'yaw', 'pitch_delta', 'yaw_delta')
INT_KEYS = {'ws': (0, 1, 2), 'ad': (0, 1, 2), 'scs': (0, 1, 2, 3)}
DEG_PER_UNIT = 15.0  # GF deltas are in units of 15 degrees


class ClipError(Exception):
    """A problem with one clip's file; str() is one line naming the file and the problem."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = str(path), str(problem)

    def __reduce__(self):  # picklable across worker processes
        return (ClipError, (self.path, self.problem))


# ----------------------------------------------------------------------------- clips and splits

def scan_clips(root):
    """(stems having both metadata/<stem>.json and video/<stem>.mp4, sorted; orphans as a sorted list
    of ClipError, one per file whose partner is missing)."""
    mdir, vdir = os.path.join(root, 'metadata'), os.path.join(root, 'video')
    if not os.path.isdir(mdir) and not os.path.isdir(vdir):
        raise FileNotFoundError(f"{root}: not a GF-layout dataset (no metadata/ or video/ folder)")

    def stems(d, ext):
        if not os.path.isdir(d):
            return set()
        return {f[:-len(ext)] for f in os.listdir(d) if f.endswith(ext) and not f.startswith('.')}

    metas, videos = stems(mdir, '.json'), stems(vdir, '.mp4')
    orphans = [ClipError(os.path.join(mdir, s + '.json'), f"missing video ({os.path.join(vdir, s + '.mp4')} not found)")
               for s in metas - videos]
    orphans += [ClipError(os.path.join(vdir, s + '.mp4'), f"missing metadata ({os.path.join(mdir, s + '.json')} not found)")
                for s in videos - metas]
    return sorted(metas & videos), sorted(orphans, key=lambda e: e.path)


def list_clips(root, orphans=None):
    """Sorted stems having both files. Orphans (a file without its partner) are appended to the list
    `orphans` as ClipError when one is given, else printed to stderr, one line each."""
    stems, found = scan_clips(root)
    if orphans is not None:
        orphans.extend(found)
    else:
        for e in found:
            print(f"WARNING {e}", file=sys.stderr)
    return stems


def split_hash(stem):
    """A stable number in [0, 1) from the stem alone (sha1: identical on every machine and run)."""
    return int(hashlib.sha1(stem.encode('utf-8')).hexdigest()[:12], 16) / float(16 ** 12)


def split_of(stem, val_fraction=0.1):
    """'val' or 'train', from the stem's hash only (independent of which other clips exist)."""
    return 'val' if split_hash(stem) < val_fraction else 'train'


def split_stems(stems, val_fraction):
    """(train_stems, val_stems), sorted. Uses split_of; if that leaves one side empty while there are
    at least two clips and val_fraction > 0, the clip with the smallest hash goes to val (or the
    largest to train), so small datasets still get both splits, deterministically."""
    stems = sorted(stems)
    val = [s for s in stems if split_of(s, val_fraction) == 'val']
    val_set = set(val)
    train = [s for s in stems if s not in val_set]
    if len(stems) >= 2 and val_fraction > 0:
        if not val:
            first = min(stems, key=split_hash)
            val, train = [first], [s for s in stems if s != first]
        elif not train:
            last = max(stems, key=split_hash)
            train, val = [last], [s for s in stems if s != last]
    return train, val


# ----------------------------------------------------------------------------- metadata

def load_metadata(path):
    """Read and validate one GF metadata JSON.

    Errors (ClipError naming the file): unreadable file, invalid JSON, top level not an object,
    `actions` missing or not an object, record keys not exactly "0".."F-1", a record that is not an
    object, a value of the wrong type (bool, str, list, ...) or out of range (ws/ad not 0-2, scs not 0-3,
    non-finite angles). A MISSING key in a record (or a null value) is read as 0 and counted
    (FACTS §1: GF data_269 has no mouse deltas). Returns the parsed dict with every record completed,
    plus 'missing_keys': {key: number of records that lacked it} (only keys that were missing).
    """
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError as e:
        raise ClipError(path, f"cannot read metadata ({e.strerror or e})") from None
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ClipError(path, f"invalid JSON ({e})") from None
    return validate_metadata(meta, path)


def validate_metadata(meta, path='<metadata>'):
    """The checks and completion of load_metadata on an already parsed JSON object."""
    if not isinstance(meta, dict):
        raise ClipError(path, f"top level is a JSON {type(meta).__name__}, expected an object")
    if 'actions' not in meta:
        raise ClipError(path, "missing required key 'actions'")
    recs = meta['actions']
    if not isinstance(recs, dict):
        raise ClipError(path, f"'actions' is a JSON {type(recs).__name__}, expected an object keyed \"0\"..\"F-1\"")
    n = len(recs)
    if set(recs) != {str(i) for i in range(n)}:
        bad = sorted((k for k in recs if not (k.isdigit() and str(int(k)) == k and int(k) < n)), key=str)
        gap = next((i for i in range(n) if str(i) not in recs), None)
        raise ClipError(path, f"'actions' keys must be \"0\"..\"{n - 1}\""
                        + (f"; record \"{gap}\" is missing" if gap is not None else '')
                        + (f"; unexpected key {bad[0]!r}" if bad else ''))
    missing = {}
    out = {}
    for i in range(n):
        r = recs[str(i)]
        if not isinstance(r, dict):
            raise ClipError(path, f"actions[\"{i}\"] is a JSON {type(r).__name__}, expected an object")
        r = dict(r)
        for k in RECORD_KEYS:
            v = r.get(k)
            if v is None:
                missing[k] = missing.get(k, 0) + 1
                r[k] = 0 if k in INT_KEYS else 0.0
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ClipError(path, f"actions[\"{i}\"][\"{k}\"] = {v!r}: expected a number")
            if k in INT_KEYS:
                if v != int(v) or int(v) not in INT_KEYS[k]:
                    raise ClipError(path, f"actions[\"{i}\"][\"{k}\"] = {v!r}: expected one of {INT_KEYS[k]}")
                r[k] = int(v)
            elif not np.isfinite(v):
                raise ClipError(path, f"actions[\"{i}\"][\"{k}\"] = {v!r}: not a finite number")
        out[str(i)] = r
    meta = dict(meta)
    meta['actions'] = out
    meta['missing_keys'] = missing
    return meta


def transitions(meta):
    """Per-transition arrays of a validated metadata dict, length F-1: transition t (frame t -> t+1)
    comes from record str(t+1). Camera in degrees per frame (delta * 15); yaw > 0 turns right, pitch > 0
    looks down. Returns dict(yaw_deg, pitch_deg float64, ws, ad, scs int64)."""
    recs = meta['actions']
    n = len(recs)
    rs = [recs[str(i)] for i in range(1, n)]
    return dict(yaw_deg=np.array([r['yaw_delta'] for r in rs], np.float64) * DEG_PER_UNIT,
                pitch_deg=np.array([r['pitch_delta'] for r in rs], np.float64) * DEG_PER_UNIT,
                ws=np.array([r['ws'] for r in rs], np.int64),
                ad=np.array([r['ad'] for r in rs], np.int64),
                scs=np.array([r['scs'] for r in rs], np.int64))


# ----------------------------------------------------------------------------- video

def _open(video_path):
    import cv2
    if not os.path.isfile(video_path):
        raise ClipError(video_path, "missing video (file not found)")
    if os.path.getsize(video_path) == 0:
        raise ClipError(video_path, "unreadable video (empty file)")
    cap = cv2.VideoCapture(video_path)
    if not cap.isOpened():
        raise ClipError(video_path, "unreadable video (OpenCV cannot open it as a video)")
    return cap


def frame_count(video_path, verify=False):
    """Number of frames: the container's count (cheap, CAP_PROP_FRAME_COUNT); decoded and counted
    when verify=True or when the container does not say."""
    import cv2
    cap = _open(video_path)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if n > 0 and not verify:
            return n
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def read_frames(video_path, size=FRAME_SIZE, keep=None, return_count=False):
    """Decode the whole video once -> uint8 [F, H, W, 3] RGB at size=(W, H), resized with cv2.INTER_AREA
    (anti-aliased) when the source size differs. With `keep` (sorted frame indices) only those frames
    are converted and returned (all are still decoded, in order); an index past the end is an error.
    A video that opens but yields no frame raises ClipError. return_count=True returns (frames, the
    number of frames the video holds) and leaves a short video to the caller's count check."""
    import cv2
    W, H = size
    keep_set = None if keep is None else set(int(k) for k in keep)
    cap = _open(video_path)
    out = []
    i = 0
    try:
        while True:
            if keep_set is not None and i not in keep_set:
                if not cap.grab():
                    break
                i += 1
                continue
            ok, frame = cap.read()
            if not ok:
                break
            if frame.shape[1] != W or frame.shape[0] != H:
                frame = cv2.resize(frame, (W, H), interpolation=cv2.INTER_AREA)
            out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            i += 1
    finally:
        cap.release()
    if i == 0:
        raise ClipError(video_path, "unreadable video (no frame could be decoded)")
    if keep_set is not None and len(out) != len(keep_set) and not return_count:
        raise ClipError(video_path, f"video has {i} frames; frame {max(keep_set)} was needed")
    frames = np.stack(out) if out else np.zeros((0, H, W, 3), np.uint8)
    return (frames, i) if return_count else frames

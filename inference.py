"""inference.py: roll a trained world model out offline from real frames, under chosen actions.

    python inference.py --ckpt runs/demo/wm --context runs/demo/tokens/bw_seed_3.npz --actions recorded --out out/rec
    python inference.py --ckpt runs/demo/wm --context data/blockworld/video/bw_seed_3.mp4 \
        --actions forward:16,turn_left:8 --steps 48 --out out/fwd \
        --sampling sample --temperature 0.8 --top-k 50 --num-rollouts 4 --seed 1
    python inference.py --ckpt runs/demo/wm --context frame.png --actions session/metadata/live_x.json --out out/replay

Checkpoint: a file, or a run folder (its newest checkpoint). The VQ-VAE is the checkpoint's
train_config['VQVAE_CKPT'] unless --vqvae is given; actions are encoded with the encoding and bin
edges the model was trained with (ckpt['edges']), so offline rollouts, live play and training agree.

Context (required; FACTS §5: starting from random tokens was a bug):
  .npz     a preprocess.py clip: K frames from --start, the actions between them re-encoded from
           its raw_actions with the checkpoint's edges; the frames after them are the ground truth.
  video    decoded, resized to 128x72, VQ-encoded. A GF metadata JSON beside it (../metadata/<stem>.json
           or <stem>.json) gives the recorded actions; without one the context transitions count as idle.
  image    .png / .jpg: one context frame.
Actions:
  recorded                 the clip's own actions after the context (.npz, or a video with metadata)
  forward, turn_left, ...  a preset held for --steps, or a sequence forward:16,turn_left:8 (actions.PRESETS)
  FILE.json                GF per-frame records (a whole metadata JSON, or its `actions` object);
                           record i is frame i-1 -> i, so records "1".."N" drive the N steps.
Outputs in --out: rollout.mp4 (context frames framed in red, then the rollout; one panel per
rollout), rollout.png (contact sheet, one row per rollout), tokens.npy (R, N, 18, 32), context.npy,
actions.npy, and with --side-by-side (automatic for `recorded`) compare.mp4 / compare.png:
real frames (video context), VQ-decoded ground truth, then the rollouts.
"""
import argparse
import dataclasses
import json
import os
import sys
from contextlib import nullcontext
from typing import Optional

import numpy as np
import torch

import actions as A
import gfdata
from model_convGru import load_world_model
from rollout import SAMPLING_MODES, decode_tokens, rollout, set_rollout_options

# ---- defaults (flags override) ----
CONTEXT_FRAMES = 8       # K context frames fed before the rollout (the model attends to 8 past steps)
STEPS = 32               # rollout length for a preset without counts
SAMPLING = 'greedy'      # greedy | commit (a cell changes when its token is below p 0.5) | commit_sample | sample
TEMPERATURE = 1.0
TOP_K = 0                # 0: all codes
TOP_P = 1.0              # 1.0: no nucleus cut
SEED = 0                 # fixed by default: the same command gives the same rollout
NUM_ROLLOUTS = 1         # R rollouts run as one batch
UPSCALE = 4              # nearest-neighbour upscale of the video so 128x72 is watchable
FPS = 16                 # GF's rate
SHEET_COLUMNS = 8        # contact sheet: the last context frame + 7 rollout frames spread over time
GRID_COLUMNS = 4         # rollout.mp4 tiles R rollouts this many per row
COMPARE_ROLLOUTS = 3     # compare.mp4 shows at most this many rollouts beside the ground truth
DEVICE = 'auto'          # auto | cpu | cuda
VIDEO_EXTS = ('.mp4', '.avi', '.mkv', '.mov', '.webm')
IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp')
CONTEXT_BORDER = (230, 40, 40)  # red frame around context frames in the videos


# ----------------------------------------------------------------------------- loading

def pick_device(name=DEVICE):
    if name in (None, 'auto'):
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    return torch.device(name)


def resolve_checkpoint(path):
    """A checkpoint file, or a run folder -> its newest checkpoint."""
    from train import checkpoint_paths
    if os.path.isdir(path):
        paths = checkpoint_paths(path)
        if not paths:
            raise FileNotFoundError(f"{path}: no ckpt_*.pt checkpoints in this run folder")
        return paths[-1]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"world-model checkpoint not found: {path}")
    return path


def _find_file(path, near):
    """path as given, else relative to the repo, else next to `near` (a run folder moved elsewhere)."""
    here = os.path.dirname(os.path.abspath(__file__))
    for p in (path, os.path.join(here, path), os.path.join(os.path.dirname(os.path.abspath(near)), os.path.basename(path))):
        if os.path.isfile(p):
            return p
    return None


def load(ckpt, vqvae=None, device='cpu'):
    """(model, vq, edges, ckpt dict): the world model in eval mode, its VQ-VAE and its action edges."""
    from vqvae import load_vqvae
    device = pick_device(device)
    path = resolve_checkpoint(ckpt)
    model, ck = load_world_model(path, map_location=device, weights_only=False)  # holds python dicts
    model.eval()
    vq_path = vqvae or (ck.get('train_config') or {}).get('VQVAE_CKPT')
    if not vq_path:
        raise ValueError(f"{path} names no VQ-VAE (train_config['VQVAE_CKPT']); pass --vqvae")
    found = _find_file(vq_path, path)
    if found is None:
        raise FileNotFoundError(f"VQ-VAE checkpoint not found: {vq_path} (from {'--vqvae' if vqvae else path}); "
                                f"pass --vqvae")
    vq = load_vqvae(found, device)
    if vq.codebook_size != model.config.codebook_size:
        raise ValueError(f"VQ-VAE {found} has {vq.codebook_size} codes, the world model {model.config.codebook_size}")
    e = ck.get('edges')
    if e is None:
        print(f"warning: {path} stores no action edges; using the v5 defaults", file=sys.stderr)
        e = dict(encoding='v5', yaw=A.DEFAULT_YAW_EDGES, pitch=A.DEFAULT_PITCH_EDGE)
    edges = dict(encoding=e['encoding'], yaw=tuple(float(v) for v in e['yaw']), pitch=float(e['pitch']))
    if len(A.ENCODINGS[edges['encoding']]) != model.config.action_dim:
        raise ValueError(f"{path}: encoding {edges['encoding']} does not match action_dim {model.config.action_dim}")
    ck['path'] = path
    return model, vq, edges, ck


# ----------------------------------------------------------------------------- context

@dataclasses.dataclass
class Context:
    """K real frames to start from and what followed them in the source (when known).

    future_actions[n] drives frame K-1+n -> K+n (counted from the first context frame) and
    future_tokens[n] is frame K+n; real_frames holds the source frames from the first context frame on."""
    tokens: torch.Tensor                         # (K, H, W) long
    actions: torch.Tensor                        # (K-1, A) float
    kind: str                                    # npz | video | image
    path: str
    future_tokens: Optional[torch.Tensor] = None  # (M, H, W) long
    future_actions: Optional[np.ndarray] = None   # (M, A) float32, encoded with the checkpoint's edges
    real_frames: Optional[np.ndarray] = None      # uint8 (K + M, 72, 128, 3), video only


def gf_metadata_for(video):
    """The GF metadata JSON of a video: <root>/metadata/<stem>.json or <stem>.json beside it."""
    stem = os.path.splitext(os.path.basename(video))[0]
    folder = os.path.dirname(os.path.abspath(video))
    for p in (os.path.join(os.path.dirname(folder), 'metadata', stem + '.json'), os.path.join(folder, stem + '.json')):
        if os.path.isfile(p):
            return p
    return None


def encode_frames(vq, frames, batch=64):
    """uint8 (F, 72, 128, 3) RGB -> (F, 18, 32) long tokens."""
    dev = next(vq.parameters()).device
    out = []
    with torch.inference_mode():
        for i in range(0, len(frames), batch):
            x = torch.from_numpy(np.ascontiguousarray(frames[i:i + batch])).to(dev).permute(0, 3, 1, 2).float() / 255
            out.append(vq.encode(x).cpu())
    return torch.cat(out) if out else torch.zeros(0, 18, 32, dtype=torch.long)


def _no_context_message():
    return ("no context given: pass --context with a preprocessed clip (.npz), a video or an image; "
            "a rollout must start from real frames (FACTS §5: starting from random tokens was a bug)")


def load_context(path, vq, edges, start=0, frames=CONTEXT_FRAMES, future=None):
    """Context from an .npz clip, a video or an image (see the module docstring).

    start: first context frame; frames: K (cut to what the source holds); future: at most this many
    ground-truth frames after the context are VQ-encoded for a video (None: all)."""
    if not path:
        raise ValueError(_no_context_message())
    if not os.path.isfile(path):
        raise FileNotFoundError(f"context not found: {path}")
    ext = os.path.splitext(path)[1].lower()
    K = max(1, int(frames))
    zero = np.zeros((0, len(A.ENCODINGS[edges['encoding']])), np.float32)
    if ext == '.npz':
        with np.load(path) as z:
            tokens = z['tokens'].astype(np.int64)
            if 'raw_actions' in z.files:  # re-encode: the checkpoint's edges, whatever the clip was made with
                import preprocess
                acts = A.encode(preprocess.raw_dict(z['raw_actions']), edges['encoding'], edges['yaw'], edges['pitch'])
            else:
                acts = z['actions'].astype(np.float32)
        if not 0 <= start < len(tokens):
            raise ValueError(f"--start {start}: {path} has {len(tokens)} frames")
        K = min(K, len(tokens) - start)
        end = start + K
        return Context(torch.from_numpy(tokens[start:end]), torch.from_numpy(acts[start:end - 1]), 'npz', path,
                       future_tokens=torch.from_numpy(tokens[end:]), future_actions=acts[end - 1:])
    if ext in VIDEO_EXTS:
        real = gfdata.read_frames(path)
        if not 0 <= start < len(real):
            raise ValueError(f"--start {start}: {path} has {len(real)} frames")
        K = min(K, len(real) - start)
        end = start + K
        stop = len(real) if future is None else min(len(real), end + future)
        acts, meta = None, gf_metadata_for(path)
        if meta is not None:
            m = gfdata.load_metadata(meta)
            if len(m['actions']) == len(real):
                acts = A.encode(gfdata.transitions(m), edges['encoding'], edges['yaw'], edges['pitch'])
            else:
                print(f"warning: {meta} has {len(m['actions'])} records for {len(real)} frames; ignored", file=sys.stderr)
        if acts is None and K > 1:
            print(f"note: no GF metadata for {path}: the {K - 1} context transitions count as idle", file=sys.stderr)
        ctx_acts = acts[start:end - 1] if acts is not None else A.preset_actions('idle', K - 1, edges)[:K - 1]
        toks = encode_frames(vq, real[start:stop])
        return Context(toks[:K], torch.from_numpy(np.asarray(ctx_acts, np.float32).reshape(K - 1, -1)), 'video',
                       path, future_tokens=toks[K:], future_actions=None if acts is None else acts[end - 1:],
                       real_frames=real[start:stop])
    if ext in IMAGE_EXTS:
        import cv2
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"{path}: cannot read the image")
        W, H = gfdata.FRAME_SIZE
        if img.shape[:2] != (H, W):
            img = cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA)
        frame = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)[None]
        return Context(encode_frames(vq, frame), torch.from_numpy(zero), 'image', path, real_frames=frame)
    raise ValueError(f"{path}: unknown context type {ext!r} (expected .npz, a video {VIDEO_EXTS} or an image {IMAGE_EXTS})")


# ----------------------------------------------------------------------------- actions

def gf_records(obj, where='<actions>'):
    """A GF metadata dict (with 'actions') or the bare actions object -> validated records "0".."F-1"."""
    if isinstance(obj, dict) and 'actions' not in obj:
        obj = {'actions': obj}
    return gfdata.validate_metadata(obj, where)


def load_action_file(path, edges):
    """GF per-frame record JSON -> float32 [N, A]: records "1".."N" are the N transitions."""
    with open(path) as f:
        obj = json.load(f)
    meta = gf_records(obj, path)
    return A.encode(gfdata.transitions(meta), edges['encoding'], edges['yaw'], edges['pitch'])


def parse_actions(spec, edges, steps=None, context=None):
    """'recorded' | a preset or sequence | a JSON file -> float32 [N, A] encoded with `edges`.

    steps: the rollout length (None: all recorded / file actions, the counts of a sequence, or STEPS).
    Recorded and file actions longer than steps are cut; shorter ones are an error."""
    if spec == 'recorded':
        if context is None or context.future_actions is None:
            kind = 'no context' if context is None else f"a {context.kind} context" + (
                ' without GF metadata' if context.kind == 'video' else '')
            raise ValueError(f"--actions recorded needs an .npz context (or a video with GF metadata), got {kind}")
        acts, what = context.future_actions, f"{context.path} has {len(context.future_actions)} recorded actions after the context"
    elif spec.lower().endswith('.json') or os.path.isfile(spec):
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"action file not found: {spec}")
        acts = load_action_file(spec, edges)
        what = f"{spec} holds {len(acts)} transitions"
    else:
        counted = all(':' in p for p in spec.split(','))
        return A.preset_actions(spec, steps if steps or counted else STEPS, edges)
    if steps is None:
        steps = len(acts)
    if steps > len(acts) or steps < 1:
        raise ValueError(f"{steps} steps asked for, but {what}")
    return np.ascontiguousarray(acts[:steps], np.float32)


# ----------------------------------------------------------------------------- rollout

@torch.inference_mode()
def generate(model, context_tokens, context_actions, actions, sampling=SAMPLING, temperature=TEMPERATURE,
             top_k=TOP_K, top_p=TOP_P, num_rollouts=NUM_ROLLOUTS, seed=SEED, latent_snap=None):
    """R rollouts in one batch from one context. context_tokens (K, H, W), context_actions (K-1, A),
    actions (N, A) (or with a leading batch dim of 1 or R). Returns tokens (R, N, H, W) long on the CPU.
    With sampling='sample' draws come from one torch.Generator seeded with `seed` (None: unseeded)."""
    dev = next(model.parameters()).device
    R = int(num_rollouts)

    def batched(x, dims, dtype):
        x = torch.as_tensor(x).to(dev, dtype)
        if x.dim() == dims - 1:
            x = x[None]
        return x.expand(R, *x.shape[1:]) if x.shape[0] == 1 else x

    ctx = batched(context_tokens, 4, torch.long)
    acts = batched(actions, 3, torch.float32)
    cacts = batched(context_actions, 3, torch.float32)
    if acts.shape[-1] != model.config.action_dim:
        raise ValueError(f"actions have {acts.shape[-1]} dims, the model takes {model.config.action_dim}")
    gen = torch.Generator(dev).manual_seed(int(seed)) if seed is not None else None
    amp = torch.autocast('cuda', dtype=torch.bfloat16) if dev.type == 'cuda' else nullcontext()
    with amp:
        tokens, _ = rollout(model, ctx, cacts, acts, generator=gen, latent_snap=latent_snap,
                            sampling=dict(mode=sampling, temperature=temperature, top_k=top_k, top_p=top_p))
    return tokens.cpu()


def to_uint8(imgs):
    """(..., 3, H, W) float in [0, 1] -> (..., H, W, 3) uint8."""
    return (imgs.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).movedim(-3, -1).cpu().numpy()


@torch.inference_mode()
def decode_frames(vq, tokens):
    """(..., H, W) long tokens -> (..., 72, 128, 3) uint8 frames."""
    dev = next(vq.parameters()).device
    return to_uint8(decode_tokens(vq, torch.as_tensor(tokens).to(dev)))


# ----------------------------------------------------------------------------- outputs

def write_mp4(path, frames, fps=FPS):
    """H.264 through PyAV (blockworld.write_video, atomic); OpenCV's mp4v if PyAV fails. Returns the codec."""
    import blockworld
    try:
        blockworld.write_video(path, frames, fps)
        return 'h264'
    except Exception as e:  # e.g. a PyAV build without libx264
        import cv2
        print(f"warning: PyAV could not write {path} ({e}); falling back to OpenCV mp4v", file=sys.stderr)
        left = os.path.join(os.path.dirname(path) or '.', '.tmp_' + os.path.basename(path))  # write_video's temp
        if os.path.exists(left):
            os.remove(left)
        tmp = os.path.join(os.path.dirname(path) or '.', '.tmp_cv_' + os.path.basename(path))
        w = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*'mp4v'), fps, (frames.shape[2], frames.shape[1]))
        for f in frames:
            w.write(np.ascontiguousarray(f[..., ::-1]))
        w.release()
        os.replace(tmp, path)
        return 'mp4v'


def upscale(frames, s):
    return frames if s == 1 else frames.repeat(s, axis=-3).repeat(s, axis=-2)


def mark_context(frames, n, width=2):
    """A red border on the first n frames (the context) of (T, H, W, 3)."""
    out = frames.copy()
    for f in out[:n]:
        f[:width], f[-width:], f[:, :width], f[:, -width:] = CONTEXT_BORDER, CONTEXT_BORDER, CONTEXT_BORDER, CONTEXT_BORDER
    return out


def tile(panels, cols):
    """list of (T, H, W, 3) -> (T, rows*H, cols*W, 3), row-major, black where no panel."""
    T, H, W, C = panels[0].shape
    rows = -(-len(panels) // cols)
    out = np.zeros((T, rows * H, cols * W, C), np.uint8)
    for i, p in enumerate(panels):
        r, c = divmod(i, cols)
        out[:, r * H:(r + 1) * H, c * W:(c + 1) * W] = p
    return out


def pad_to(frames, T):
    """(M, H, W, 3) -> (T, H, W, 3): cut, or padded with black (the ground truth may end first)."""
    if len(frames) >= T:
        return frames[:T]
    return np.concatenate([frames, np.zeros((T - len(frames),) + frames.shape[1:], np.uint8)])


def sheet_columns(K, N, columns=SHEET_COLUMNS):
    """Indices into the (K + N) timeline: the last context frame, then rollout frames spread to the end."""
    gen = np.unique(np.linspace(K, K + N - 1, max(1, columns - 1)).round().astype(int))
    return np.concatenate([[K - 1], gen])


def save_sheet(path, rows_uint8):
    """rows of (C, H, W, 3) uint8 -> a PNG grid (train.save_png, 2x nearest)."""
    from train import save_png
    return save_png(path, [torch.from_numpy(r).permute(0, 3, 1, 2).float() / 255 for r in rows_uint8])


def write_outputs(out_dir, vq, context, tokens, actions, side_by_side=False, scale=UPSCALE, fps=FPS):
    """rollout.mp4/.png, tokens.npy, context.npy, actions.npy (+ compare.mp4/.png). Returns {name: path}."""
    os.makedirs(out_dir, exist_ok=True)
    R, N = tokens.shape[:2]
    K = len(context.tokens)
    ctx_frames = decode_frames(vq, context.tokens)                     # (K, 72, 128, 3)
    gen_frames = decode_frames(vq, tokens)                             # (R, N, 72, 128, 3)
    timeline = [np.concatenate([ctx_frames, gen_frames[r]]) for r in range(R)]  # (K + N, ...) each
    paths = {}
    np.save(os.path.join(out_dir, 'tokens.npy'), tokens.numpy().astype(np.uint16))
    np.save(os.path.join(out_dir, 'context.npy'), context.tokens.numpy().astype(np.uint16))
    np.save(os.path.join(out_dir, 'actions.npy'), np.asarray(actions, np.float32))
    paths['tokens'] = os.path.join(out_dir, 'tokens.npy')
    video = tile([mark_context(upscale(t, scale), K) for t in timeline], min(R, GRID_COLUMNS))
    paths['video'] = os.path.join(out_dir, 'rollout.mp4')
    paths['video_codec'] = write_mp4(paths['video'], video, fps)
    cols = sheet_columns(K, N)
    paths['sheet'] = save_sheet(os.path.join(out_dir, 'rollout.png'), [t[cols] for t in timeline])
    if side_by_side:
        if context.future_tokens is None or len(context.future_tokens) == 0:
            print(f"note: {context.path} has no frames after the context: no side-by-side", file=sys.stderr)
        else:
            gt = np.concatenate([ctx_frames, pad_to(decode_frames(vq, context.future_tokens[:N]), N)])
            panels = [gt] + timeline[:COMPARE_ROLLOUTS]
            if context.real_frames is not None and len(context.real_frames) > K:
                panels.insert(0, pad_to(context.real_frames, K + N))
            video = np.concatenate([mark_context(upscale(p, scale), K) for p in panels], axis=2)
            paths['compare_video'] = os.path.join(out_dir, 'compare.mp4')
            write_mp4(paths['compare_video'], video, fps)
            paths['compare_sheet'] = save_sheet(os.path.join(out_dir, 'compare.png'), [p[cols] for p in panels])
            paths['compare_panels'] = ('real | ' if len(panels) > len(timeline[:COMPARE_ROLLOUTS]) + 1 else '') + \
                'ground truth (VQ-decoded) | ' + ' | '.join(f'rollout {r}' for r in range(len(timeline[:COMPARE_ROLLOUTS])))
    return paths


# ----------------------------------------------------------------------------- CLI

def add_model_args(p, context_frames):
    """The checkpoint and context flags inference.py and live_inference.py share."""
    p.add_argument('--ckpt', required=True, help='world-model checkpoint, or a run folder (its newest checkpoint)')
    p.add_argument('--vqvae', default=None, help="VQ-VAE checkpoint (default: the checkpoint's train_config)")
    p.add_argument('--context', default=None, help='.npz clip, video or image to start from (required)')
    p.add_argument('--start', type=int, default=0, help='first context frame in the clip / video')
    p.add_argument('--context-frames', type=int, default=context_frames, help=f'K context frames (default {context_frames})')


def add_sampling_args(p, sampling, temperature, top_k, top_p, seed, help):
    """The sampling and runtime flags inference.py and live_inference.py share (each with its defaults)."""
    p.add_argument('--sampling', default=sampling, choices=SAMPLING_MODES, help=help)
    p.add_argument('--temperature', type=float, default=temperature)
    p.add_argument('--top-k', type=int, default=top_k)
    p.add_argument('--top-p', type=float, default=top_p)
    p.add_argument('--seed', type=int, default=seed)
    p.add_argument('--latent-snap', type=float, default=None,
                   help="latent models: move the fed-back latent this share of the way to its tokens' codes "
                        "(0-1; default: the model's own, as trained)")
    p.add_argument('--flow-round', type=int, choices=(0, 1), default=None,
                   help="latent models with a learned flow: 1 moves the fed-back latent of a walk by whole cells, "
                        "each cell's remainder carried to the next step; 0 interpolates (default: the model's own)")
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: leave)')


def rollout_note(model):
    """What the header line says of the rollout settings a model keeps in its config ('' for none)."""
    return '; walks moved by whole cells (flow_round)' if model.config.flow_round else ''


def start(args):
    """Shared start of main(): None to go on, or the exit code after printing the error."""
    if not args.context:
        print(f"ERROR {_no_context_message()}", file=sys.stderr)
        return 2
    if args.latent_snap is not None and not 0 <= args.latent_snap <= 1:
        print(f"ERROR --latent-snap {args.latent_snap}: expected a share in [0, 1]", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    return None


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split('\n\n', 1)[1])
    add_model_args(p, CONTEXT_FRAMES)
    p.add_argument('--actions', required=True, help='recorded | preset[:n][,preset:n...] | GF record JSON file')
    p.add_argument('--steps', type=int, default=None, help=f'rollout length (default: all recorded/file actions, '
                                                            f'or {STEPS} for a preset)')
    p.add_argument('--out', required=True, help='output folder')
    add_sampling_args(p, SAMPLING, TEMPERATURE, TOP_K, TOP_P, SEED, 'sampling of the next tokens')
    p.add_argument('--num-rollouts', type=int, default=NUM_ROLLOUTS, help='rollouts run as one batch')
    p.add_argument('--device', default=DEVICE, help='auto | cpu | cuda')
    p.add_argument('--side-by-side', action='store_true', help='also compare with the ground truth (auto for recorded)')
    p.add_argument('--upscale', type=int, default=UPSCALE, help='nearest-neighbour video upscale')
    p.add_argument('--fps', type=float, default=FPS)
    args = p.parse_args(argv)
    if args.num_rollouts < 1 or args.upscale < 1 or (args.steps is not None and args.steps < 1):
        p.error('--num-rollouts, --upscale and --steps must be >= 1')
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if start(args) is not None:
        return 2
    try:
        model, vq, edges, ck = load(args.ckpt, args.vqvae, args.device)
        set_rollout_options(model, ck['path'], flow_round=args.flow_round)
        actions = None if args.actions == 'recorded' else parse_actions(args.actions, edges, args.steps)
        context = load_context(args.context, vq, edges, args.start, args.context_frames,
                               future=None if actions is None else len(actions))  # ground truth to encode
        if actions is None:
            actions = parse_actions(args.actions, edges, args.steps, context)
    except (ValueError, FileNotFoundError, gfdata.ClipError) as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 2
    N, K = len(actions), len(context.tokens)
    print(f"{ck['path']} (step {ck.get('step', '?')}), {edges['encoding']} actions, yaw edges {edges['yaw']}, "
          f"pitch edge {edges['pitch']}; context {context.kind} {args.context}: {K} frames from {args.start}; "
          f"{N} steps of {args.actions!r}; {args.sampling}"
          + (f" T={args.temperature:g} top-k {args.top_k} top-p {args.top_p:g} seed {args.seed}" if args.sampling == 'sample' else '')
          + f"; {args.num_rollouts} rollout(s)" + rollout_note(model))
    import time
    t0 = time.perf_counter()
    tokens = generate(model, context.tokens, context.actions, actions, args.sampling, args.temperature, args.top_k,
                      args.top_p, args.num_rollouts, args.seed, args.latent_snap)
    dt = time.perf_counter() - t0
    print(f"rolled out {args.num_rollouts} x {N} frames in {dt:.2f} s ({args.num_rollouts * N / max(dt, 1e-9):.1f} frames/s)")
    paths = write_outputs(args.out, vq, context, tokens, actions, args.side_by_side or args.actions == 'recorded',
                          args.upscale, args.fps)
    print(f"video ({paths['video_codec']}, {K} context frames framed in red + {N} generated): {paths['video']}")
    print(f"contact sheet (a row per rollout): {paths['sheet']}")
    print(f"tokens {tuple(tokens.shape)}: {paths['tokens']} (context.npy, actions.npy beside it)")
    if 'compare_video' in paths:
        print(f"side by side ({paths['compare_panels']}): {paths['compare_video']} and {paths['compare_sheet']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())

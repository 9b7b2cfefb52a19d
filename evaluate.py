"""evaluate.py: how good is a world model, measured on held-out (val) clips.

    python evaluate.py --ckpt runs/demo/wm --data runs/demo/tokens --idm runs/demo/idm.pt
    python evaluate.py --ckpt CKPT_OR_RUN_DIR --data DIR [--idm IDM] [--raw DIR] [--vqvae CKPT] [--out DIR] [--quick]

--data is preprocess.py's token folder; --raw the GF-layout source clips (default: the video and
metadata paths preprocess recorded); the VQ-VAE comes from the checkpoint's train_config (or --vqvae).

What it measures (every figure also for the baselines, through the same code):
  teacher forcing   next-frame cross-entropy and token accuracy
  open loop         rollouts from 1 and from N context frames under the recorded actions: PSNR, SSIM,
                    LPIPS by horizon against the decoded ground truth and against the real frames; the
                    VQ-VAE reconstruction (real vs decoded GT) is the ceiling; unique codes per frame
  stability         long rollouts with no input (idle) and random inputs: frame-to-frame change and
                    unique codes over time, against the ground truth's typical values
  action following  an IDM (idm.py) reads the generated frame pairs of 8-step scripted actions; per
                    action and group accuracy / F1 beside two ceilings: the IDM on real held-out frames
                    and (blockworld) on the TRUE renders of the same commands from the same states
  counterfactuals   (blockworld clips) the true outcome of scripted sequences rendered by blockworld
                    from held-out states, against the model's rollout at horizons 1, 4, 8, 16, and the
                    action sensitivity: how far rollouts under different actions move apart, over how
                    far the true outcomes do (ignores actions: 0; perfect: 1)
Baselines: copy-last-frame (repeats the context frame) and the model driven by SHUFFLED actions
(permuted across samples and time). Output: <out>/eval.json (every figure and the settings),
<out>/index.html linking the PNG pages, and a summary table on stdout.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from atomicio import atomic_write
from rollout import CHANGE_THRESHOLD, DISPLAY_MODES, ROLLOUT_OPTIONS, SAMPLING_MODES, set_rollout_options

# ---- what to measure (flags override; --quick swaps in QUICK) ----
CTX_FRAMES = 4               # the "N context frames" setting (the other is 1)
HORIZONS = (16, 64)          # open-loop rollout lengths
PERCEPTUAL_STEPS = (1, 2, 4, 8, 16, 32, 64)  # open-loop steps given SSIM and LPIPS (costly on a CPU); PSNR: every step
OPEN_LOOP_SAMPLES = 32       # val windows per open-loop setting
TF_WINDOWS = 32              # teacher-forced windows...
TF_LEN = 16                  # ...of this many transitions
STABILITY_STEPS = 512        # long rollouts: drift to a still texture or to noise shows by here
STABILITY_SAMPLES = 4
STABILITY_BUCKETS = 16       # curves are stored as means over this many equal time buckets
FOLLOW_STEPS = 8             # action following: generated pairs per scripted action
CF_STEPS = 16                # counterfactual rollout length
CF_HORIZONS = (1, 4, 8, 16)
CF_STARTS = 8                # held-out start states (each gets every scripted action)
REAL_CEILING_PAIRS = 2048    # real held-out pairs for the IDM's real-frame ceiling...
REAL_CEILING_CLIPS = 16      # ...from at most this many val clips (spread evenly)
CACHE_CLIP_FRAMES = 400      # real frames of clips this short are decoded once and kept in memory
BATCH = 64                   # rollouts per model call
SAMPLING = 'greedy'          # rollout.sample_tokens: greedy | commit | commit_sample | sample
LATENT_SNAP = None           # latent models: share of the way the fed-back latent moves to its tokens' codes
                             # (rollout.snap_latent); None: the model's own (its config.latent_snap, as trained)
LATENT_SNAP_MOVING = None    # latent models: the snap after a moving transition (camera or a key); < 0: LATENT_SNAP's;
                             # None: the model's own (config.latent_snap_moving)
LATENT_CARRY = None          # latent models: share of what the snap took off carried to the next step while a move goes
                             # on (config.latent_carry); None: the model's own
FLOW_ROUND = None            # latent models with a learned flow: 1 moves the fed-back latent by the flow rounded to whole
                             # cells, the remainder carried (config.flow_round), 0 interpolates it; None: the model's own
FLOW_ROUND_SMOOTH = None     # ... a rounded walk's flow averaged over k x k cells first (odd k; -1: the map; 0: per cell;
                             # config.flow_round_smooth); None: the model's own
FLOW_ROUND_CAMERA = None     # ... and 1 moves a turn's or a look's latent rigidly by whole cells too (the flow's mean;
                             # config.flow_round_camera), 0 interpolates it; None: the model's own
FLOW_LOOK_OFF = None         # ... 1: a look is moved by the whole-row pitch warp alone, the flow zero (config.flow_look_off)
WARP_FILL = None             # 'zero' | 'edge': what fills the rows a pitch warp uncovers (config.warp_fill); None: own
FM_STEPS = None              # latent models with a flow-matching head (fm_width): Euler steps of each sample; 0: roll
                             # out the mean instead (the same weights as without the head); None: the model's own
FM_TEMP = None               # ... and the std of the noise a sample starts from (0: one deterministic output); None: own
FM_GATE = None               # ... 1: sample only on moving transitions (the mean on idle ones), 0: on every one; None: own
LATENT_REENCODE = False      # latent models: the fed-back latent goes through the VQ-VAE's decoder and encoder
DISPLAY = 'tokens'           # rollout.display_frames: what the model's frames show: tokens | soft | soft_changed | latent
TEMPERATURE = 1.0
TOP_K = 0
SEED = 0
THREADS = 0                  # torch CPU threads (0: torch's default); 1 on a CPU shared with other jobs
QUICK = dict(horizons=(4, 8), open_loop_samples=4, tf_windows=4, tf_len=8, stability_steps=24,
             stability_samples=2, cf_steps=8, cf_horizons=(1, 4, 8), cf_starts=2, real_ceiling_pairs=128)

ACTIONS = ('idle', 'turn_left', 'turn_right', 'look_up', 'look_down', 'forward', 'back', 'strafe_left',
           'strafe_right', 'jump')
SCRIPTS = {'turn_left': 'turn_left:15,idle', 'turn_right': 'turn_right:15,idle'}  # 90 deg at 6 deg/frame, then still
# the IDM groups that must be right for a pair to follow the action (idle: no camera move and no walking)
PRIMARY = {'idle': ('camera', 'ws', 'ad'), 'turn_left': ('yaw_dir',), 'turn_right': ('yaw_dir',),
           'look_up': ('pitch',), 'look_down': ('pitch',), 'forward': ('ws',), 'back': ('ws',),
           'strafe_left': ('ad',), 'strafe_right': ('ad',), 'jump': ('jump',)}
WEAK_CEILING = 0.5            # an action whose true renders the IDM reads less often than this is flagged
FOLLOW_GROUPS = ('yaw_dir', 'yaw', 'pitch', 'camera', 'ws', 'ad', 'jump')
GENS = ('model', 'copy_last', 'shuffled_actions')


# ============================================================================ pure metric functions
# Frames are float tensors [..., 3, H, W] in [0, 1] or uint8 arrays/tensors [..., H, W, 3].

def as_float(x):
    """Frames -> float tensor [..., 3, H, W] in [0, 1] (uint8 [..., H, W, 3] is converted)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if x.dtype == torch.uint8:
        return x.movedim(-1, -3).float() / 255
    return x.float()


def to_uint8(x):
    """float [..., 3, H, W] in [0, 1] -> uint8 numpy [..., H, W, 3]."""
    return (x.detach().float().clamp(0, 1) * 255 + 0.5).byte().movedim(-3, -1).cpu().numpy()


def psnr_by_horizon(pred, true):
    """[N, T] frames -> list of T mean PSNRs (dB; identical frames give perceptual.psnr's cap, 100)."""
    from perceptual import psnr
    p, t = as_float(pred), as_float(true)
    return [float(psnr(p[:, h], t[:, h]).mean()) for h in range(p.shape[1])]


def ssim_by_horizon(pred, true, steps=None):
    """[N, T] frames -> list of mean SSIMs at every step, or at the 1-based `steps` only."""
    from perceptual import ssim
    p, t = as_float(pred), as_float(true)
    at = range(p.shape[1]) if steps is None else [s - 1 for s in steps]
    return [float(ssim(p[:, h], t[:, h]).mean()) for h in at]


def lpips_by_horizon(lp, pred, true, batch=64, steps=None):
    """[N, T] frames -> list of mean LPIPS distances (identical frames: 0) at every step, or at the
    1-based `steps` only (AlexNet is the costly metric on a CPU)."""
    from perceptual import lpips_distance
    dev = next(lp.parameters()).device
    p, t = as_float(pred), as_float(true)
    out = []
    for h in (range(p.shape[1]) if steps is None else [s - 1 for s in steps]):
        d = [lpips_distance(lp, p[i:i + batch, h].to(dev), t[i:i + batch, h].to(dev)).cpu()
             for i in range(0, len(p), batch)]
        out.append(float(torch.cat(d).mean()))
    return out


def pairwise_spread(rollouts):
    """[S, A, T] frames (S starts, A actions) -> [T]: mean absolute pixel distance between the frames of
    two different actions from the same start, averaged over all action pairs and starts."""
    x = as_float(rollouts)
    S, A, T = x.shape[:3]
    tot = torch.zeros(T)
    for a in range(A):
        for b in range(a + 1, A):
            tot += (x[:, a] - x[:, b]).abs().flatten(2).mean(2).mean(0)
    return (tot / max(1, A * (A - 1) // 2)).numpy()


def aligned_spread(model_rollouts, true_rollouts, size=(9, 16)):
    """[T]: how much of the true difference between two actions' outcomes the model's difference reproduces,
    sum over starts and action pairs of <m_a - m_b, t_a - t_b> / sum of |t_a - t_b|^2, on frames area-downsampled
    to `size` (a content shift a few pixels off still counts). 1: apart the way the world is; 0: ignores the
    actions, or moves apart in unrelated ways (e.g. under shuffled actions); above 1: overshoots."""
    import torch.nn.functional as F
    def down(x):
        x = as_float(x)
        return F.adaptive_avg_pool2d(x.flatten(0, 2), size).reshape(*x.shape[:3], -1)
    m, t = down(model_rollouts), down(true_rollouts)
    A, T = m.shape[1], m.shape[2]
    num, den = torch.zeros(T, dtype=torch.float64), torch.zeros(T, dtype=torch.float64)
    for a in range(A):
        for b in range(a + 1, A):
            dm, dt = (m[:, a] - m[:, b]).double(), (t[:, a] - t[:, b]).double()
            num += (dm * dt).sum((0, 2))
            den += (dt * dt).sum((0, 2))
    return num.numpy(), den.numpy()


def action_sensitivity(model_rollouts, true_rollouts):
    """How far rollouts under different actions move apart, relative to how far the true outcomes do.
    Both [S, A, T] frames, same starts and actions. A model that ignores actions scores 0, one that
    reproduces the true outcomes 1 (more than 1: it moves apart more than the world does).
    Returns per_horizon and overall (ratio of the spreads summed over horizons), both spreads, and the
    'aligned' version (aligned_spread: only spread in the true direction counts, so a model driven by the
    wrong actions, which still spreads, scores ~0 there)."""
    m, t = pairwise_spread(model_rollouts), pairwise_spread(true_rollouts)
    per = [float(a / b) if b > 0 else None for a, b in zip(m, t)]
    num, den = aligned_spread(model_rollouts, true_rollouts)
    return dict(per_horizon=per, overall=float(m.sum() / t.sum()) if t.sum() > 0 else None,
                model_spread=[float(v) for v in m], true_spread=[float(v) for v in t],
                aligned_per_horizon=[float(a / b) if b > 0 else None for a, b in zip(num, den)],
                aligned_overall=float(num.sum() / den.sum()) if den.sum() > 0 else None)


def frame_change(frames):
    """[N, T] frames -> [T - 1]: mean absolute pixel difference between consecutive frames."""
    x = as_float(frames)
    return (x[:, 1:] - x[:, :-1]).abs().flatten(2).mean(2).mean(0).numpy()


def unique_codes_curve(tokens):
    """[N, T, h, w] tokens -> [T]: mean distinct codes per frame at each step."""
    from rollout import unique_codes_per_frame
    return np.array([float(unique_codes_per_frame(tokens[:, t])) for t in range(tokens.shape[1])])


def bucket_means(curve, buckets):
    """A long curve -> `buckets` means over equal consecutive time spans (fewer when it is shorter)."""
    curve = np.asarray(curve, np.float64)
    parts = np.array_split(curve, min(buckets, len(curve))) if len(curve) else []
    return [float(p.mean()) for p in parts]


def drift_summary(change, unique, gt_change, gt_unique, moving=False, tail=0.25):
    """Over the last `tail` of a long rollout: frame change and unique codes relative to the ground truth's
    typical values (recorded play, which nearly always moves). Verdicts: 'collapsed codes' (unique codes
    under half of GT's: a flat or still texture), 'noise' (change over 3x GT's), and with moving=True (random
    inputs) 'frozen' (change under a fifth of GT's: the inputs do nothing). Under idle inputs little change is
    right: blockworld's world stands still."""
    change, unique = np.asarray(change, np.float64), np.asarray(unique, np.float64)
    k_c, k_u = max(1, int(len(change) * tail)), max(1, int(len(unique) * tail))
    c_end, u_end = float(change[-k_c:].mean()), float(unique[-k_u:].mean())
    cr = c_end / gt_change if gt_change > 0 else None
    ur = u_end / gt_unique if gt_unique > 0 else None
    verdict = 'ok'
    if moving and cr is not None and cr < 0.2:
        verdict = 'frozen'
    if ur is not None and ur < 0.5:
        verdict = 'collapsed codes'
    if cr is not None and cr > 3:
        verdict = 'noise'
    return dict(change_end=c_end, unique_end=u_end, change_vs_gt=cr, unique_vs_gt=ur, verdict=verdict)


def tf_metrics(logits, target):
    """logits (B, T, K, h, w), target (B, T, h, w) -> cross-entropy and token accuracy."""
    import torch.nn.functional as F
    ce = F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(0, 1))
    return dict(ce=float(ce), token_acc=float((logits.argmax(2) == target).float().mean()))


def copy_last_token_acc(tokens):
    """tokens (B, T+1, h, w): share of cells where frame t+1 equals frame t (the copy-last 'prediction')."""
    return float((tokens[:, 1:] == tokens[:, :-1]).float().mean())


def change_calibration(logits, tokens, actions):
    """Does the model know *how much* of the frame changes, per kind of transition? logits (B, T, K, h, w),
    tokens (B, T+1, h, w), 15-D actions (B, T, 15). Per class (idle: camera still, no key; isolated
    movement: a key down, camera still; camera: the camera moves): transitions, the true share of cells
    whose token changes, the model's mean probability of a change (1 - p(the cell's current token)), and
    new_token_acc: on the cells that do change, how often the model's most likely *other* token is the
    new one (knowing *that* a cell changes is not knowing *what* it becomes).
    A model that ignores the keys gives idle and isolated movement the same predicted change."""
    import actions as A
    z = logits.float()
    cur = tokens[:, :-1, None].long()
    p_copy = z.log_softmax(2).gather(2, cur).squeeze(2).exp()
    changed = (tokens[:, 1:] != tokens[:, :-1]).float()
    other = z.scatter(2, cur, float('-inf')).argmax(2)
    hit = (other == tokens[:, 1:]).float()
    a = actions.reshape(-1, actions.shape[-1]).cpu().numpy()
    still, keys = A.camera_still(a), A.movement_keys_down(a)
    out = {}
    for name, m in (('idle', still & ~keys), ('isolated_movement', still & keys), ('camera', ~still)):
        m = torch.from_numpy(m)
        if m.any():
            ch = changed.flatten(0, 1)[m]
            out[name] = dict(n=int(m.sum()), true_change=float(ch.mean()),
                             predicted_change=float(1 - p_copy.flatten(0, 1)[m].mean()),
                             new_token_acc=float((hit.flatten(0, 1)[m] * ch).sum() / ch.sum().clamp(min=1)))
    return out


def isolated_action(tgt):
    """Per transition, the scripted action it is an isolated instance of ('' when none or combined).
    tgt: idm.targets() dict."""
    cam_still = (tgt['yaw_dir'] == 1) & (tgt['pitch'] == 1)
    no_keys = (tgt['ws'] == 0) & (tgt['ad'] == 0)
    no_scs = (tgt['jump'] == 0) & (tgt['sprint'] == 0) & (tgt['sneak'] == 0)
    yaw_only = (tgt['pitch'] == 1) & no_keys & no_scs
    pitch_only = (tgt['yaw_dir'] == 1) & no_keys & no_scs
    ws_only = cam_still & (tgt['ad'] == 0) & no_scs
    ad_only = cam_still & (tgt['ws'] == 0) & no_scs
    rules = [('idle', cam_still & no_keys & no_scs), ('turn_left', yaw_only & (tgt['yaw_dir'] == 0)),
             ('turn_right', yaw_only & (tgt['yaw_dir'] == 2)), ('look_up', pitch_only & (tgt['pitch'] == 0)),
             ('look_down', pitch_only & (tgt['pitch'] == 2)), ('forward', ws_only & (tgt['ws'] == 1)),
             ('back', ws_only & (tgt['ws'] == 2)), ('strafe_left', ad_only & (tgt['ad'] == 1)),
             ('strafe_right', ad_only & (tgt['ad'] == 2)),
             ('jump', cam_still & no_keys & (tgt['jump'] == 1))]
    out = np.full(len(tgt['ws']), '', dtype=object)
    for name, m in rules:
        out[m & (out == '')] = name
    return out


def idm_following(pred, target, names, primary=PRIMARY, groups=FOLLOW_GROUPS):
    """IDM predictions on generated pairs vs the commanded actions.
    pred, target: {group: int array [P]}; names: the scripted action of each pair [P].
    per_action[name]: acc = share of pairs whose primary groups are all right, plus each group's accuracy and,
    per primary group, read_as: the share of pairs the IDM reads as each class (is a missed walk back read as
    standing still, or as a walk forward?);
    groups: accuracy / macro F1 / balanced accuracy over all pairs (idm.score); overall: mean per-action acc.
    A model that ignores actions gives the same predictions whatever the command: balanced accuracy at or
    below chance (1 / commanded classes)."""
    from idm import score
    names = np.asarray(names, dtype=object)
    per = {}
    for n in [a for a in ACTIONS if a in set(names)] + sorted(set(names) - set(ACTIONS) - {''}):
        m = names == n
        ok = np.all([np.asarray(pred[g])[m] == np.asarray(target[g])[m] for g in primary[n]], 0)
        per[n] = dict(acc=float(ok.mean()), primary=list(primary[n]), n=int(m.sum()),
                      groups={g: float(np.mean(np.asarray(pred[g])[m] == np.asarray(target[g])[m])) for g in groups},
                      read_as={g: read_shares(np.asarray(pred[g])[m], g) for g in primary[n]})
    keep = names != ''
    sc = score({g: np.asarray(pred[g])[keep] for g in groups}, {g: np.asarray(target[g])[keep] for g in groups},
               list(groups)) if keep.any() else {}
    return dict(per_action=per, groups=sc, overall=float(np.mean([v['acc'] for v in per.values()])) if per else None)


READ_CLASSES = {'ws': ('none', 'W', 'S'), 'ad': ('none', 'A', 'D'), 'jump': ('no', 'jump'),
                'yaw_dir': ('left', 'none', 'right'), 'pitch': ('up', 'level', 'down'),
                'camera': ('still', 'left', 'right', 'up', 'down', 'up_left', 'up_right', 'down_left', 'down_right')}


def read_shares(pred, group):
    """{class name: share of the predictions} for one IDM group (classes by index where unnamed)."""
    pred = np.asarray(pred)
    names = READ_CLASSES.get(group) or tuple(str(c) for c in range(int(pred.max(initial=0)) + 1))
    return {c: float(np.mean(pred == i)) if len(pred) else 0.0 for i, c in enumerate(names)}


def following_ratio(model, ceiling):
    """Per action and overall: the model's following accuracy over the ceiling's (idm_following outputs)."""
    out = {}
    for n, v in model['per_action'].items():
        c = ceiling['per_action'].get(n, {}).get('acc')
        out[n] = float(v['acc'] / c) if c else None
    mo, co = model.get('overall'), ceiling.get('overall')
    common = [n for n in model['per_action'] if ceiling['per_action'].get(n, {}).get('acc')]
    overall = float(np.mean([model['per_action'][n]['acc'] for n in common]) /
                    np.mean([ceiling['per_action'][n]['acc'] for n in common])) if common else None
    return dict(per_action=out, overall=overall, model_overall=mo, ceiling_overall=co)


def weak_ceiling(ceiling, floor=WEAK_CEILING):
    """Actions whose true outcome the IDM reads right in fewer than `floor` of the pairs (but some):
    their following ratios say more about the IDM than about the model."""
    return [n for n, v in ceiling['per_action'].items() if v.get('acc') and v['acc'] < floor]


def shuffle_actions(actions, generator):
    """(B, N, A) actions permuted across samples and time (the shuffled-actions baseline's input)."""
    flat = actions.reshape(-1, actions.shape[-1])
    perm = torch.randperm(len(flat), generator=generator).to(flat.device)
    return flat[perm].view_as(actions)


# ============================================================================ generators
# A generator maps (context tokens (B, T, h, w), context actions (B, T-1, A), actions (B, N, A)) to
# tokens (B, N, h, w), or to (tokens, the frames shown (B, N, 3, H, W)) when those are not the decoded
# tokens. The model, copy-last and the shuffled-actions model all go through the same code.

class ModelGen:
    def __init__(self, model, sampling, seed=SEED, vq=None, display='tokens', latent_snap=None, reencode=None,
                 latent_snap_moving=None):
        self.model, self.sampling, self.latent_snap, self.reencode = model, sampling, latent_snap, reencode
        self.latent_snap_moving = latent_snap_moving
        self.vq, self.display = (vq, display) if display != 'tokens' else (None, display)
        dev = next(model.parameters()).device
        self.gen = torch.Generator(dev).manual_seed(seed)

    def __call__(self, ctx_tok, ctx_act, acts, ctx_lat=None):
        from rollout import rollout
        out = rollout(self.model, ctx_tok, ctx_act, acts, sampling=self.sampling, generator=self.gen, vq=self.vq,
                      display=self.display, context_latents=ctx_lat, latent_snap=self.latent_snap,
                      latent_reencode=self.reencode, latent_snap_moving=self.latent_snap_moving)
        return (out[0], out[2]) if self.vq is not None else out[0]


class CopyLastGen:
    """Repeats the last context frame: the 'nothing happens' baseline."""

    def __call__(self, ctx_tok, ctx_act, acts, ctx_lat=None):
        return ctx_tok[:, -1:].expand(-1, acts.shape[1], -1, -1).clone()


class ShuffledGen:
    """The model driven by the actions permuted across samples and time: what it does without the right input."""

    def __init__(self, inner, seed=SEED):
        self.inner, self.gen = inner, torch.Generator().manual_seed(seed + 1)

    def __call__(self, ctx_tok, ctx_act, acts, ctx_lat=None):
        return self.inner(ctx_tok, ctx_act, shuffle_actions(acts, self.gen), ctx_lat)


def generate(gen, ctx_tok, ctx_act, acts, device, batch=BATCH, ctx_lat=None):
    """Run a generator in batches -> (tokens (B, N, h, w), frames (B, N, 3, H, W) or None: the decoded tokens).
    ctx_lat: the context frames' latents (B, T, D, h, w) or None (Clips.latent_windows)."""
    lat = lambda i: None if ctx_lat is None else ctx_lat[i:i + batch].to(device, torch.float32)
    outs = [gen(ctx_tok[i:i + batch].to(device), ctx_act[i:i + batch].to(device), acts[i:i + batch].to(device),
                lat(i)) for i in range(0, len(ctx_tok), batch)]
    if isinstance(outs[0], tuple):
        return torch.cat([o[0].cpu() for o in outs]), torch.cat([o[1].cpu() for o in outs])
    return torch.cat([o.cpu() for o in outs]), None


def shown(vq, tokens, frames, device):
    """The frames a generator shows: its own frames when it gave them, else the decoded tokens."""
    return frames if frames is not None else decode(vq, tokens, device)


def decode(vq, tokens, device, batch=64):
    """tokens (..., h, w) -> float frames (..., 3, H, W) on the CPU. Identical grids are decoded once
    (copy-last repeats one frame; a frozen rollout repeats itself)."""
    from rollout import decode_tokens
    lead = tokens.shape[:-2]
    flat = tokens.reshape(-1, *tokens.shape[-2:])
    uniq, inv = torch.unique(flat.flatten(1), dim=0, return_inverse=True)
    uniq = uniq.view(-1, *flat.shape[1:])
    imgs = torch.cat([decode_tokens(vq, uniq[i:i + batch].to(device)).cpu() for i in range(0, len(uniq), batch)])
    return imgs[inv].view(*lead, *imgs.shape[1:])


# ============================================================================ data access

class Clips:
    """Val clips of a token dataset: token windows (TokenCache), real frames and metadata (GF source)."""

    def __init__(self, data_dir, raw_dir=None, split='val', latents=True):
        from tokendata import TokenCache
        self.data_dir, self.raw_dir, self.use_latents = data_dir, raw_dir, latents
        self.cache = TokenCache(data_dir)
        self.split = split if any(c['split'] == split for c in self.cache.clips) else 'train'
        self.by_start = sorted(self.cache.clips, key=lambda c: c['start'])
        self._npz, self._frames, self._meta = {}, {}, {}

    def clip_of(self, row):
        """(clip dict, local frame index) of a cache row."""
        for c in self.by_start:
            if c['start'] <= row < c['start'] + c['length']:
                return c, row - c['start']
        raise IndexError(row)

    def npz(self, c):
        if c['stem'] not in self._npz:
            with np.load(os.path.join(self.data_dir, c['file'])) as z:
                self._npz[c['stem']] = dict(frame_index=z['frame_index'], raw=z['raw_actions'],
                                            info=json.loads(str(z['info'])))
        return self._npz[c['stem']]

    def paths(self, c):
        info = self.npz(c)['info']
        if self.raw_dir:
            return (os.path.join(self.raw_dir, 'video', c['stem'] + '.mp4'),
                    os.path.join(self.raw_dir, 'metadata', c['stem'] + '.json'))
        return info.get('video', ''), info.get('metadata', '')

    def real(self, c, idx=None):
        """uint8 [K, 72, 128, 3] real frames at the clip's kept frames (or at local frames idx), None when the
        video is missing. Short clips are decoded once and kept; long ones (GF: 2,000 frames) are decoded per
        call and only the frames asked for are kept."""
        import gfdata
        video = self.paths(c)[0]
        if not video or not os.path.isfile(video):
            return None
        fi = self.npz(c)['frame_index']
        if len(fi) <= CACHE_CLIP_FRAMES:
            if c['stem'] not in self._frames:
                uniq = np.unique(fi)
                self._frames[c['stem']] = gfdata.read_frames(video, keep=uniq)[np.searchsorted(uniq, fi)]
            fr = self._frames[c['stem']]
            return fr if idx is None else fr[np.asarray(idx)]
        want = fi if idx is None else fi[np.asarray(idx)]
        uniq = np.unique(want)
        return gfdata.read_frames(video, keep=uniq)[np.searchsorted(uniq, want)]

    def meta(self, c):
        import gfdata
        if c['stem'] not in self._meta:
            path = self.paths(c)[1]
            self._meta[c['stem']] = gfdata.load_metadata(path) if path and os.path.isfile(path) else None
        return self._meta[c['stem']]

    def starts(self, frames, n):
        """Up to n window start rows of `frames` frames inside val clips, spread evenly."""
        s = self.cache.window_starts(self.split, frames)
        if len(s) == 0:
            return s
        return np.unique(s[np.linspace(0, len(s) - 1, min(n, len(s))).astype(int)])

    def windows(self, rows, frames):
        tok, act = zip(*(self.cache.window(int(r), frames) for r in rows))
        return torch.stack(tok), torch.stack(act)

    def latent_windows(self, rows, frames):
        """The windows' float16 latents (B, frames, D, h, w), or None when the dataset has none (or they are
        not wanted: a token model)."""
        if not (self.use_latents and self.cache.latent_dim):
            return None
        return torch.stack([self.cache.latent_window(int(r), frames) for r in rows])

    def real_window(self, row, frames):
        c, t = self.clip_of(int(row))
        return self.real(c, np.arange(t, t + frames))


def replay_state(world, meta, t):
    """The blockworld PlayerState at frame t of a recorded clip (blockworld.replay_clip's state updates,
    without rendering the frames before t)."""
    import blockworld as bw
    state = bw.PlayerState(**meta['blockworld']['start_state'])
    recs = meta['actions']
    for i in range(1, t + 1):
        r = recs[str(i)]
        state = state.copy()
        state.yaw, state.pitch = r['yaw'], r['pitch']  # absolute angles, as replay_clip does
        state = world.move(state, bw.Action(ws=r['ws'], ad=r['ad'], scs=r['scs']))
    return state


def world_frames_per_step(fps):
    """Blockworld frames per step of data tokenized at `fps` (preprocess --fps), or None when the
    world's rate is not a whole multiple of it."""
    import blockworld as bw
    k = bw.FPS / fps if fps else 0
    return int(round(k)) if k >= 1 and abs(k - round(k)) < 1e-6 else None


def at_step(records, k):
    """Per-frame transition dicts -> one per step of k frames, aggregated as preprocess --fps does."""
    if k == 1:
        return records
    import actions as A
    agg = A.aggregate({n: np.array([r[n] for r in records]) for n in A.RAW_ACTION_NAMES},
                      np.arange(0, len(records) + 1, k))
    return [{n: agg[n][i].item() for n in A.RAW_ACTION_NAMES} for i in range(len(records) // k)]


def true_rollout(world, state, records, frame_index=0, width=128, height=72):
    """Render the start state and the states after each transition record: uint8 [1 + N, H, W, 3]."""
    import blockworld as bw
    out = [world.render(state, width, height, frame_index=frame_index)]
    for k, r in enumerate(records):
        state = world.step(state, bw.Action(ws=r['ws'], ad=r['ad'], scs=r['scs'], yaw_deg=r['yaw_deg'],
                                            pitch_deg=r['pitch_deg']))
        out.append(world.render(state, width, height, frame_index=frame_index + k + 1))
    return np.stack(out)


# ============================================================================ the evaluations

def eval_teacher_forced(model, clips, n, T, device, seed=SEED):
    rows = clips.starts(T + 1, n)
    if len(rows) == 0:
        return dict(skipped=f"no {clips.split} clip has {T + 1} frames")
    tok, act = clips.windows(rows, T + 1)
    tok, act = tok.to(device), act.to(device)
    lat = clips.latent_windows(rows, T) if model.config.latent_dim else None
    kw = {} if lat is None else dict(latents=lat.to(device, torch.float32))   # a latent model reads the latents
    out = dict(windows=int(len(rows)), transitions=T)
    # each window starts from its clip's key hold counts, as in training (key_hold_bins; else a plain fresh state)
    held = torch.from_numpy(clips.cache.held_before[rows]) if model.config.key_hold_bins else None
    kw['state'] = model.init_state(len(rows), device, held=held)
    kw['sample'] = False   # the mean's distance logits are the model's distribution over codes (fm_width: not a draw)
    flow_kw = dict(return_flow=True) if model.config.flow_warp else {}
    logits, _, top, *flow = model(tok[:, :T], act[:, :T], return_hidden=True, **kw, **flow_kw)
    out['model'] = tf_metrics(logits, tok[:, 1:])
    if act.shape[-1] == 15:
        out['change_calibration'] = change_calibration(logits, tok, act[:, :T])
    shuffled = shuffle_actions(act[:, :T], torch.Generator().manual_seed(seed + 2))
    logits, _ = model(tok[:, :T], shuffled, **kw)
    out['shuffled_actions'] = tf_metrics(logits, tok[:, 1:])
    out['copy_last'] = dict(token_acc=copy_last_token_acc(tok))
    # "action echo" (FACTS §5): do the actions help predict the next frame (CE gain over shuffled
    # actions), or are they only readable back from the hidden state by the model's IDM head?
    out['action_ce_gain'] = out['shuffled_actions']['ce'] - out['model']['ce']
    if act.shape[-1] == 15:   # the same, one action group shuffled at a time: which groups reach the prediction
        out['action_ce_gain_by_group'] = {}
        for name, sl in (('camera', slice(0, 8)), ('movement_keys', slice(8, 15))):
            mixed = act[:, :T].clone()
            mixed[..., sl] = shuffled[..., sl]
            logits, _ = model(tok[:, :T], mixed, **kw)
            out['action_ce_gain_by_group'][name] = tf_metrics(logits, tok[:, 1:])['ce'] - out['model']['ce']
    if model.config.use_idm and model.config.action_dim == 15:
        out['idm_head'] = idm_head_accuracy(model, top, act[:, :T])
    if flow and act.shape[-1] == 15:
        out['flow'] = flow_by_action(flow[0].flatten(0, 1), act[:, :T])
        if clips.cache.has_flow:   # the pictures' own motion on the same transitions (preprocess.py --flow)
            true = torch.stack([clips.cache.flow_window(int(r), T + 1) for r in rows])[:, :, :2]
            out['flow_true'] = flow_by_action(true.flatten(0, 1), act[:, :T])
    return out


def key_classes(actions_v5):
    """v5 actions (N, 15) -> {class: bool mask}: 'idle' (camera still, no key), 'camera' (it moves), and
    each of forward / strafe_left / back / strafe_right / jump alone with the camera still."""
    import actions as A
    a = np.asarray(actions_v5) > 0.5
    still, keys = A.camera_still(a), a[:, 8:15]
    classes = {'idle': still & ~keys.any(1), 'camera': ~still}
    for i, name in enumerate(('forward', 'strafe_left', 'back', 'strafe_right', 'jump')):
        classes[name] = still & keys[:, i] & (keys.sum(1) == 1)
    return classes


def flow_by_action(flow, act):
    """A flow_warp model's learned flow on teacher-forced windows, per kind of transition (camera still with
    no key or one key alone; camera moving): mean dx, dy (cells a step; + = right, down), mean |flow|, and
    the outward part (the flow along the direction away from the screen centre: > 0 content spreads from
    the centre, as walking forward shows it; < 0 walking back). flow (B*T, 2, H, W), act (B, T, 15)."""
    f = flow.float()
    return {name: flow_summary(f[torch.from_numpy(m).to(f.device)])
            for name, m in key_classes(act.reshape(-1, act.shape[-1]).cpu().numpy()).items() if m.any()}


def flow_summary(g, w=None):
    """Flows (N, 2, H, W) in cells -> n, mean dx, dy, |flow| and the outward part (along the direction away from
    the screen centre); with w (N, H, W), each cell's weight in the means, and their mean as `weight`."""
    H, W = g.shape[-2:]
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing='ij')
    away = torch.stack([xs * (W - 1) / 2, ys * (H - 1) / 2]).to(g.device)          # cells from the centre
    away = away / away.norm(dim=0).clamp(min=1e-6)
    mean = (lambda x: x.mean()) if w is None else (lambda x: (x * w).sum() / w.sum().clamp(min=1e-6))   # noqa: E731
    out = dict(n=int(len(g)), dx=float(mean(g[:, 0])), dy=float(mean(g[:, 1])),
               abs=float(mean(g.norm(dim=1))), outward=float(mean((g * away).sum(1))))
    return out if w is None else dict(out, weight=float(w.mean()))


def rollout_motion(frames, names, k, grid):
    """How far the pictures of each scripted action's rollouts move: the optical flow (opticalflow.cell_flow, at
    the token grid, in cells) of the first k steps of every start, summarised as flow_summary does over the cells
    with a measurable motion (weighted by their share of textured, consistent pixels: a blurred picture has fewer,
    and Farneback calls a flat one still; `weight` says how many), for each generator's frames and the true
    renders alike. frames {gen: uint8 [S, A, 1 + steps, H, W, 3]}. A walk back whose rollout moves a tenth of the
    true renders' is a walk the IDM reads as standing still."""
    import opticalflow
    out = {}
    for gen, f in frames.items():
        out[gen] = {}
        for j, a in enumerate(names):
            cf = np.concatenate([opticalflow.cell_flow(f[s, j, :k + 1], grid) for s in range(len(f))])
            cf = torch.from_numpy(cf.astype(np.float32))
            out[gen][a] = flow_summary(cf[:, :2], cf[:, 2])
    return out


def scripted_flow(model, clips, ctx, n, edges, device, names=('forward', 'back', 'strafe_left', 'strafe_right', 'jump')):
    """A flow_warp model's flow one step from the scripted start states (the counterfactuals' ctx-frame contexts)
    under each walking key alone, as flow_by_action summarises it: does the model move the picture one way for W
    and the other for S, or the same way for any key?"""
    import actions as A
    rows = clips.starts(ctx, n)
    if len(rows) == 0:
        return {}
    tok, act = clips.windows(rows, ctx)
    lat = clips.latent_windows(rows, ctx)
    held = torch.from_numpy(clips.cache.held_before[rows]) if model.config.key_hold_bins else None
    out = {}
    for name in names:
        a1 = torch.from_numpy(A.encode_records(A.preset_records(SCRIPTS.get(name, name), 1), edges))[0]
        a = torch.cat([act[:, :ctx - 1], a1.expand(len(rows), 1, -1)], 1).to(device)
        flow = model(tok.to(device), a, state=model.init_state(len(rows), device, held=held), return_flow=True,
                     latents=None if lat is None else lat.to(device, torch.float32), sample=False)[2]
        by_class = flow_by_action(flow[:, -1], a[:, -1:])   # one class: the key alone, the camera still
        if by_class:
            out[name] = next(iter(by_class.values()))
    return out


def idm_head_accuracy(model, top, act):
    """The model's own IDM head on consecutive top maps (span 1) vs the recorded actions: yaw bin,
    pitch bin and key accuracy, and the same for a head that always says the most common answer."""
    lg = model.idm(top[:, :-1].flatten(0, 1), top[:, 1:].flatten(0, 1), 1).float()
    a = act[:, 1:].flatten(0, 1).float()
    out = {}
    for name, sl in (('yaw', slice(0, 5)), ('pitch', slice(5, 8))):
        t = a[:, sl].argmax(1)
        out[name] = float((lg[:, sl].argmax(1) == t).float().mean())
        out[name + '_majority'] = float(torch.bincount(t).max() / len(t))
    keys = a[:, 8:12] > 0.5
    out['wasd'] = float(((lg[:, 8:12] > 0) == keys).float().mean())
    out['wasd_majority'] = float(torch.maximum(keys.float().mean(0), 1 - keys.float().mean(0)).mean())
    return out


def eval_open_loop(gens, vq, lp, clips, ctx, H, n, device, batch):
    """Rollouts of H steps after ctx context frames under the recorded actions, scored per step."""
    H_used = H
    rows = clips.starts(ctx + H, n)
    while len(rows) == 0 and H_used > 1:  # clips too short for H: the longest horizon that fits
        H_used //= 2
        rows = clips.starts(ctx + H_used, n)
    if len(rows) == 0:
        return dict(skipped=f"no {clips.split} clip has {ctx + 1} frames")
    tok, act = clips.windows(rows, ctx + H_used)
    truth = tok[:, ctx:]
    gt = decode(vq, truth, device)
    reals = [clips.real_window(r, ctx + H_used) for r in rows]
    real = None if any(r is None for r in reals) else as_float(np.stack(reals)[:, ctx:])
    ls = [h for h in PERCEPTUAL_STEPS if h <= H_used]
    out = dict(context=ctx, horizon=H_used, requested_horizon=H, samples=int(len(rows)),
               steps=list(range(1, H_used + 1)), perceptual_steps=ls,
               gt_unique_codes=unique_codes_curve(truth).tolist())
    if real is not None:
        out['vq_ceiling'] = dict(psnr=psnr_by_horizon(gt, real), ssim=ssim_by_horizon(gt, real, ls),
                                 lpips=lpips_by_horizon(lp, gt, real, steps=ls))
    samples = {}
    ctx_lat = clips.latent_windows(rows, ctx)   # read once for every generator
    for name, gen in gens.items():
        pred_tok, pred = generate(gen, tok[:, :ctx], act[:, :ctx - 1], act[:, ctx - 1:ctx - 1 + H_used], device, batch,
                                  ctx_lat)
        pred = shown(vq, pred_tok, pred, device)
        r = dict(vs_decoded=dict(psnr=psnr_by_horizon(pred, gt), ssim=ssim_by_horizon(pred, gt, ls),
                                 lpips=lpips_by_horizon(lp, pred, gt, steps=ls)),
                 unique_codes=unique_codes_curve(pred_tok).tolist())
        if real is not None:
            r['vs_real'] = dict(psnr=psnr_by_horizon(pred, real), ssim=ssim_by_horizon(pred, real, ls),
                                lpips=lpips_by_horizon(lp, pred, real, steps=ls))
        out[name] = r
        samples[name] = to_uint8(pred[0])
    samples['gt_decoded'] = to_uint8(gt[0])
    if real is not None:
        samples['real'] = to_uint8(real[0])
    out['summary'] = open_loop_summary(out)
    return out, samples


def open_loop_summary(r, points=(1, 4, 8, 16, 32, 64)):
    """PSNR / SSIM / LPIPS at a few horizons and averaged over the rollout, per generator and reference."""
    H = r['horizon']
    out = {}
    for name in GENS + ('vq_ceiling',):
        if name not in r:
            continue
        refs = {'vs_real': r[name]} if name == 'vq_ceiling' else {k: r[name][k] for k in ('vs_decoded', 'vs_real')
                                                                   if k in r[name]}
        for ref, m in refs.items():
            for metric, curve in m.items():
                at = r['steps'] if metric == 'psnr' else r['perceptual_steps']
                for h in points:
                    if h in at:
                        out[f"{name}/{ref}/{metric}@{h}"] = curve[at.index(h)]
                out[f"{name}/{ref}/{metric}_mean"] = float(np.mean(curve))  # SSIM, LPIPS: over their steps
    return out


def random_records(steps, rng):
    """A random input sequence: scripted presets held 4-16 frames each (actions.preset_records)."""
    import actions as A
    parts, n = [], 0
    while n < steps:
        k = int(rng.integers(4, 17))
        parts.append(f"{rng.choice(ACTIONS)}:{k}")
        n += k
    return A.preset_records(','.join(parts), steps)


def eval_stability(gens, vq, clips, ctx, L, n, edges, device, batch, buckets, seed=SEED):
    import actions as A
    rows = clips.starts(ctx, n)
    if len(rows) == 0:
        return dict(skipped=f"no {clips.split} clip has {ctx} frames"), {}
    tok, act = clips.windows(rows, ctx)
    ctx_lat = clips.latent_windows(rows, ctx)
    rng = np.random.default_rng(seed)
    # the ground truth's typical values over val clips: consecutive decoded frames and unique codes
    gt_rows = clips.starts(2, 256)
    gt_tok, _ = clips.windows(gt_rows, 2)
    gt_img = decode(vq, gt_tok, device)
    gt = dict(frame_change=float(frame_change(gt_img).mean()), unique_codes=float(unique_codes_curve(gt_tok).mean()),
              pairs=int(len(gt_rows)))
    reals = [clips.real_window(r, 2) for r in gt_rows]
    if all(r is not None and len(r) == 2 for r in reals):
        gt['real_frame_change'] = float(frame_change(np.stack(reals)).mean())
    out = dict(steps=L, samples=int(len(rows)), context=ctx, buckets=buckets, gt=gt)
    inputs = {'idle': torch.from_numpy(A.preset_actions('idle', L, edges=edges))[None].expand(len(rows), -1, -1),
              'random': torch.stack([torch.from_numpy(A.encode_records(random_records(L, rng), edges))
                                     for _ in rows])}
    frames = {}
    for mode, acts in inputs.items():
        out[mode] = {}
        for name in ('model', 'copy_last'):
            pred_tok, pred = generate(gens[name], tok, act[:, :ctx - 1], acts, device, batch, ctx_lat)
            pred = shown(vq, pred_tok, pred, device)
            change = frame_change(torch.cat([decode(vq, tok[:, -1:], device), pred], 1))  # from the context frame on
            unique = unique_codes_curve(pred_tok)
            out[mode][name] = dict(frame_change=bucket_means(change, buckets),
                                   unique_codes=bucket_means(unique, buckets),
                                   **drift_summary(change, unique, gt['frame_change'], gt['unique_codes'],
                                                   moving=mode == 'random'))
            if name == 'model':
                idx = sorted({0, min(7, L - 1), min(63, L - 1), L // 2, L - 1})
                frames[mode] = (idx, to_uint8(pred[0, idx]))
    return out, frames


def eval_scripted(gens, vq, lp, idm, clips, ctx, steps, horizons, follow_steps, n_starts, edges, device, batch,
                  real_pairs=REAL_CEILING_PAIRS):
    """Counterfactual fidelity, action sensitivity and IDM action following from held-out states."""
    import actions as A
    import blockworld as bw
    res, notes = {}, []
    rows = clips.starts(ctx, n_starts)
    if len(rows) == 0:
        return dict(skipped=f"no {clips.split} clip has {ctx} frames"), {}
    S, names = len(rows), list(ACTIONS)
    with open(os.path.join(clips.data_dir, 'manifest.json')) as f:
        fps = json.load(f).get('fps')
    k_frames = world_frames_per_step(fps)
    # the scripts at the world's frame rate, and as the model sees them (a step of k_frames world frames)
    world_records = [A.preset_records(SCRIPTS.get(a, a), steps * (k_frames or 1)) for a in names]
    records = [at_step(r, k_frames or 1) for r in world_records]
    acts = torch.stack([torch.from_numpy(A.encode_records(r, edges)) for r in records])     # [A, steps, adim]
    tok, act = clips.windows(rows, ctx)
    ctx_tok = tok.repeat_interleave(len(names), 0)
    ctx_act = act[:, :ctx - 1].repeat_interleave(len(names), 0)
    ctx_lat = clips.latent_windows(rows, ctx)
    ctx_lat = None if ctx_lat is None else ctx_lat.repeat_interleave(len(names), 0)
    drive = acts.repeat(S, 1, 1)
    start_img = decode(vq, tok[:, -1], device)                                               # [S, 3, H, W]
    frames = {}
    for name, gen in gens.items():
        pred = shown(vq, *generate(gen, ctx_tok, ctx_act, drive, device, batch, ctx_lat), device)   # [S*A, steps, ...]
        pred = pred.view(S, len(names), steps, *pred.shape[2:])
        first = start_img[:, None, None].expand(-1, len(names), -1, -1, -1, -1)
        frames[name] = to_uint8(torch.cat([first, pred], 2))                                 # [S, A, 1+steps, H, W, 3]

    # the true outcomes (blockworld clips at the world's frame rate or a whole fraction of it)
    metas = [clips.meta(clips.clip_of(int(r + ctx - 1))[0]) for r in rows]
    truth = None
    if all(m is not None and 'blockworld' in m for m in metas) and k_frames:
        truth = np.zeros_like(frames['model'])
        worlds = {}
        for i, (r, m) in enumerate(zip(rows, metas)):
            c, t = clips.clip_of(int(r + ctx - 1))
            key = json.dumps([m['blockworld']['seed'], m['biome'], m['start_time'], m['initial_weather']])
            if key not in worlds:
                worlds[key] = bw.World(m['blockworld']['seed'], m['biome'], m['start_time'], m['initial_weather'])
            src_t = int(clips.npz(c)['frame_index'][t])
            state = replay_state(worlds[key], m, src_t)
            for j, rec in enumerate(world_records):
                truth[i, j] = true_rollout(worlds[key], state, rec, src_t)[::k_frames]
        frames['true'] = truth
    else:
        notes.append('counterfactual fidelity and the true-render ceiling need blockworld clips (metadata with a '
                     f'`blockworld` key) tokenized at {bw.FPS} fps or a whole fraction of it; skipped')
    res['frame_step'] = k_frames or 1    # world frames per model step: horizons and pairs are in model steps
    res['starts'] = [dict(stem=clips.clip_of(int(r + ctx - 1))[0]['stem'],
                          frame=int(clips.clip_of(int(r + ctx - 1))[1])) for r in rows]
    res['actions'] = names

    if truth is not None:
        hz = [h for h in horizons if h <= steps]
        cf = dict(horizons=hz, per_action={})
        true_h = truth[:, :, hz]                       # [S, A, len(hz)]
        vq_rt = to_uint8(decode(vq, vq_encode(vq, true_h.reshape(-1, *true_h.shape[-3:]), device), device))
        vq_rt = vq_rt.reshape(true_h.shape)
        for j, a in enumerate(names):
            d = {}
            for name in list(gens) + ['vq_ceiling']:
                p = vq_rt[:, j] if name == 'vq_ceiling' else frames[name][:, j][:, hz]
                d[name] = dict(psnr=psnr_by_horizon(p, true_h[:, j]), lpips=lpips_by_horizon(lp, p, true_h[:, j]))
            cf['per_action'][a] = d
        for group, members in (('moving', [a for a in names if a != 'idle']), ('idle', ['idle'])):
            cf[group] = {name: {m: list(np.mean([cf['per_action'][a][name][m] for a in members], 0))
                                for m in ('psnr', 'lpips')} for name in list(gens) + ['vq_ceiling']}
        cf['sensitivity'] = {name: action_sensitivity(frames[name][:, :, hz], true_h) for name in gens}
        cf['sensitivity']['horizons'] = hz
        res['counterfactual'] = cf

    k = min(follow_steps, steps)   # the steps whose pairs the IDM reads and whose motion is measured
    if idm is not None:
        import idm as I
        tgt_one = [I.targets_from_records(r[:k], idm.edges) for r in records]                  # per action, [k]
        tgt = {g: np.tile(np.concatenate([t[g] for t in tgt_one]), S) for g in tgt_one[0]}
        pair_names = np.tile(np.repeat(names, k), S)
        fol = dict(steps=k, starts=S)
        for name in list(gens) + (['true'] if truth is not None else []):
            f = frames[name]
            pred = I.predict(idm, f[:, :, :k].reshape(-1, *f.shape[-3:]), f[:, :, 1:k + 1].reshape(-1, *f.shape[-3:]))
            fol['ceiling_true_render' if name == 'true' else name] = idm_following(pred, tgt, pair_names)
        ceil = fol.get('ceiling_true_render')
        fol['ceiling_real'] = real_ceiling(idm, clips, real_pairs)
        ref = ceil or fol['ceiling_real']
        if ref and ref.get('per_action'):
            fol['ratio'] = {name: following_ratio(fol[name], ref) for name in gens}
            fol['ratio']['ceiling'] = 'ceiling_true_render' if ceil else 'ceiling_real'
            fol['weak_ceiling'] = weak = weak_ceiling(ref)
            if weak:
                notes.append(f"the IDM reads the true outcome of {', '.join(weak)} in under {WEAK_CEILING:.0%} of pairs: "
                             "those ratios (and the overall) are unreliable; an IDM trained on pairs this far apart "
                             "is needed")
        res['following'] = fol
    else:
        notes.append('action following needs --idm (train one with idm.py); skipped')
    res['motion'] = rollout_motion(frames, names, k, clips.cache.grid)
    res['notes'] = notes
    return res, frames


def real_ceiling(idm, clips, max_pairs, max_clips=REAL_CEILING_CLIPS):
    """The IDM on real held-out frame pairs with their recorded actions: by group, and per scripted action
    over the transitions that are isolated instances of it."""
    import idm as I
    val = [c for c in clips.cache.clips if c['split'] == clips.split and c['length'] >= 2]
    if not val:
        return None
    val = [val[i] for i in np.unique(np.linspace(0, len(val) - 1, min(max_clips, len(val))).astype(int))]
    per_clip = max(1, max_pairs // len(val))
    a, b, raw = [], [], []
    for c in val:
        t = np.unique(np.linspace(0, c['length'] - 2, min(per_clip, c['length'] - 1)).astype(int))
        fr = clips.real(c, np.concatenate([t, t + 1]))
        if fr is None:
            return None
        a.append(fr[:len(t)])
        b.append(fr[len(t):])
        raw.append(clips.npz(c)['raw'][t])
    a, b, raw = np.concatenate(a), np.concatenate(b), np.concatenate(raw)
    tgt = I.targets(raw[:, 0], raw[:, 1], raw[:, 2], raw[:, 3], raw[:, 4], idm.edges)
    pred = I.predict(idm, a, b)
    out = idm_following(pred, tgt, isolated_action(tgt))
    out['all_pairs'] = I.score(pred, tgt)
    out['pairs'] = int(len(a))
    return out


@torch.no_grad()
def vq_encode(vq, frames_uint8, device, batch=64):
    out = []
    for i in range(0, len(frames_uint8), batch):
        x = as_float(frames_uint8[i:i + batch]).to(device)
        out.append(vq.encode(x).cpu())
    return torch.cat(out)


# ============================================================================ report

COLORS = {'model': (200, 90, 30), 'copy_last': (120, 120, 120), 'shuffled_actions': (30, 140, 240),
          'vq_ceiling': (60, 170, 60), 'gt': (0, 0, 0), 'true': (0, 0, 0), 'ceiling_true_render': (60, 170, 60),
          'ceiling_real': (150, 60, 150)}  # BGR


def line_plot(title, xs, series, size=(420, 260), hlines=None):
    """A small cv2 line chart: series {name: ys} over xs, optional horizontal reference lines {name: y}."""
    import cv2
    W, H = size
    L, R, T, B = 48, 10, 22, 28
    img = np.full((H, W, 3), 255, np.uint8)
    vals = [v for ys in series.values() for v in ys if v is not None and np.isfinite(v)]
    vals += [v for v in (hlines or {}).values() if v is not None and np.isfinite(v)]
    cv2.putText(img, title, (L, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    if not vals or not len(xs):
        return img
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    px = lambda x: int(L + (x - x0) / (x1 - x0) * (W - L - R))
    py = lambda y: int(H - B - (y - lo) / (hi - lo) * (H - T - B))
    cv2.rectangle(img, (L, T), (W - R, H - B), (0, 0, 0), 1)
    for k in range(5):
        y = lo + (hi - lo) * k / 4
        cv2.putText(img, f"{y:.3g}", (2, py(y) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.32, (0, 0, 0), 1, cv2.LINE_AA)
    for x in sorted(set([x0, x1] + [xs[len(xs) // 2]])):
        cv2.putText(img, f"{x:g}", (px(x) - 6, H - B + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.32, (0, 0, 0), 1, cv2.LINE_AA)
    ly = T + 12
    for name, y in (hlines or {}).items():
        if y is None or not np.isfinite(y):
            continue
        c = COLORS.get(name, (0, 0, 0))
        for xx in range(L, W - R, 8):
            cv2.line(img, (xx, py(y)), (min(xx + 4, W - R), py(y)), c, 1)
        cv2.putText(img, name, (W - R - 110, ly), cv2.FONT_HERSHEY_SIMPLEX, 0.32, c, 1, cv2.LINE_AA)
        ly += 11
    for name in series:
        cv2.putText(img, name, (W - R - 110, ly), cv2.FONT_HERSHEY_SIMPLEX, 0.32, COLORS.get(name, (0, 0, 0)), 1,
                    cv2.LINE_AA)
        ly += 11
    for name, ys in reversed(list(series.items())):  # the first series (the model) drawn last, on top
        c = COLORS.get(name, (0, 0, 0))
        pts = [(px(x), py(y)) for x, y in zip(xs, ys) if y is not None and np.isfinite(y)]
        if len(pts) > 1:
            cv2.polylines(img, [np.array(pts, np.int32)], False, c, 2, cv2.LINE_AA)
        for p in pts if len(pts) < 20 else []:
            cv2.circle(img, p, 2, c, -1)
    return img


def bar_plot(title, labels, series, size=(640, 260)):
    """Grouped bars: series {name: values per label} in [0, 1]."""
    import cv2
    W, H = size
    L, R, T, B = 30, 10, 22, 40
    img = np.full((H, W, 3), 255, np.uint8)
    cv2.putText(img, title, (L, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(img, (L, T), (W - R, H - B), (0, 0, 0), 1)
    n, k = len(labels), max(1, len(series))
    gw = (W - L - R) / max(1, n)
    bw = max(1, int(gw * 0.8 / k))
    for i, lab in enumerate(labels):
        for j, (name, vals) in enumerate(series.items()):
            v = vals[i]
            if v is None:
                continue
            x = int(L + i * gw + gw * 0.1 + j * bw)
            y = int(H - B - min(1.0, max(0.0, v)) * (H - T - B))
            cv2.rectangle(img, (x, y), (x + bw - 1, H - B), COLORS.get(name, (0, 0, 0)), -1)
        cv2.putText(img, lab[:11], (int(L + i * gw + 2), H - B + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 0, 0), 1,
                    cv2.LINE_AA)
    for j, name in enumerate(series):
        cv2.putText(img, name, (L + 4 + j * 150, H - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.35, COLORS.get(name, (0, 0, 0)),
                    1, cv2.LINE_AA)
    for y in (0.0, 0.5, 1.0):
        cv2.putText(img, f"{y:g}", (4, int(H - B - y * (H - T - B)) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.32, (0, 0, 0), 1)
    return img


def grid(rows, labels, col_labels=None, label_w=110):
    """rows: list of lists of uint8 RGB frames -> one BGR image with a label column (and a header)."""
    import cv2
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    head = 16 if col_labels else 0
    img = np.full((head + h * len(rows), label_w + w * ncol, 3), 255, np.uint8)
    for i, (r, lab) in enumerate(zip(rows, labels)):
        for j, f in enumerate(r):
            img[head + i * h:head + (i + 1) * h, label_w + j * w:label_w + (j + 1) * w] = f[..., ::-1]
        cv2.putText(img, lab, (3, head + i * h + h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for j, lab in enumerate(col_labels or []):
        cv2.putText(img, lab, (label_w + j * w + 3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def stack_pages(imgs, cols=2):
    """Tile chart images (same size) into one page."""
    h, w = imgs[0].shape[:2]
    rows = []
    for i in range(0, len(imgs), cols):
        r = imgs[i:i + cols] + [np.full_like(imgs[0], 255)] * (cols - len(imgs[i:i + cols]))
        rows.append(np.concatenate(r, 1))
    return np.concatenate(rows, 0)


def write_png(path, img_bgr):
    import cv2
    tmp = os.path.join(os.path.dirname(path), '.tmp_' + os.path.basename(path))
    cv2.imwrite(tmp, img_bgr)
    os.replace(tmp, path)
    return os.path.basename(path)


def step_label(h, frame_step=1):
    """Column label of model step h: with a step of several world frames, the frames too."""
    return f"t+{h}" if frame_step == 1 else f"t+{h} ({h * frame_step} fr)"


def write_report(out_dir, res, ol_frames, stab_frames, scripted_frames):
    """PNG pages and index.html in out_dir. Returns the list of PNG file names."""
    pngs = []
    # metric-by-horizon plots of the open-loop rollouts
    charts = []
    for key, r in res.get('open_loop', {}).items():
        if 'skipped' in r:
            continue
        xs = r['steps']
        for ref in ('vs_decoded', 'vs_real'):
            for metric in ('psnr', 'ssim', 'lpips'):
                if ref not in r['model']:
                    continue
                series = {g: r[g][ref][metric] for g in GENS if g in r}
                if ref == 'vs_real' and 'vq_ceiling' in r:
                    series['vq_ceiling'] = r['vq_ceiling'][metric]
                charts.append(line_plot(f"{key} {metric} {ref}", xs if metric == 'psnr' else r['perceptual_steps'],
                                        series))
        charts.append(line_plot(f"{key} unique codes per frame", xs,
                                {**{g: r[g]['unique_codes'] for g in GENS if g in r}, 'gt': r['gt_unique_codes']}))
    if charts:
        pngs.append(write_png(os.path.join(out_dir, 'open_loop_metrics.png'), stack_pages(charts, 3)))
    for key, fr in ol_frames.items():
        n = fr['model'].shape[0]
        idx = sorted({0, min(3, n - 1), min(7, n - 1), min(15, n - 1), min(31, n - 1), n - 1})
        names = [k for k in ('real', 'gt_decoded', 'model', 'copy_last', 'shuffled_actions') if k in fr]
        pngs.append(write_png(os.path.join(out_dir, f'open_loop_{key}.png'), grid(
            [[fr[k][i] for i in idx] for k in names], names, [f"t+{i + 1}" for i in idx])))
    # stability
    st = res.get('stability', {})
    if 'idle' in st:
        charts = []
        for mode in ('idle', 'random'):
            xs = list(range(1, len(st[mode]['model']['frame_change']) + 1))
            charts.append(line_plot(f"{mode}: frame change ({len(xs)} buckets over {st['steps']} steps)", xs,
                                    {g: st[mode][g]['frame_change'] for g in ('model', 'copy_last')},
                                    hlines={'gt': st['gt']['frame_change']}))
            charts.append(line_plot(f"{mode}: unique codes per frame ({len(xs)} buckets)", xs,
                                    {g: st[mode][g]['unique_codes'] for g in ('model', 'copy_last')},
                                    hlines={'gt': st['gt']['unique_codes']}))
        pngs.append(write_png(os.path.join(out_dir, 'stability_metrics.png'), stack_pages(charts, 2)))
        if stab_frames:
            modes = list(stab_frames)
            idx = stab_frames[modes[0]][0]
            pngs.append(write_png(os.path.join(out_dir, 'stability_frames.png'), grid(
                [list(stab_frames[m][1]) for m in modes], modes, [f"t+{i + 1}" for i in idx])))
    # counterfactuals: a contact sheet per scripted action, and the metric plots
    sc = res.get('scripted', {})
    cf = sc.get('counterfactual')
    if scripted_frames:
        steps = scripted_frames['model'].shape[2] - 1
        hz = cf['horizons'] if cf else [h for h in (1, 4, 8, 16) if h <= steps]
        rows_of = [k for k in ('true', 'model', 'copy_last', 'shuffled_actions') if k in scripted_frames]
        for j, a in enumerate(sc['actions']):
            rows, labels = [], []
            for s in range(min(2, scripted_frames['model'].shape[0])):
                for k in rows_of:
                    f = scripted_frames[k][s, j]
                    rows.append([f[0]] + [f[h] for h in hz])
                    labels.append(f"{k} #{s}")
            pngs.append(write_png(os.path.join(out_dir, f'counterfactual_{a}.png'),
                                  grid(rows, labels, ['start'] + [step_label(h, sc.get('frame_step', 1)) for h in hz])))
    if cf:
        charts = []
        for grp in ('moving', 'idle'):
            for m in ('psnr', 'lpips'):
                charts.append(line_plot(f"counterfactual {grp}: {m} vs true render", cf['horizons'],
                                        {g: cf[grp][g][m] for g in list(GENS) + ['vq_ceiling'] if g in cf[grp]}))
        charts.append(line_plot("action sensitivity (model spread / true spread)", cf['horizons'],
                                {g: cf['sensitivity'][g]['per_horizon'] for g in GENS if g in cf['sensitivity']},
                                hlines={'true': 1.0}))
        charts.append(line_plot("aligned action sensitivity", cf['horizons'],
                                {g: cf['sensitivity'][g]['aligned_per_horizon'] for g in GENS
                                 if g in cf['sensitivity']}, hlines={'true': 1.0}))
        pngs.append(write_png(os.path.join(out_dir, 'counterfactual_metrics.png'), stack_pages(charts, 2)))
    fol = sc.get('following')
    if fol:
        labels = list(ACTIONS)
        series = {}
        for g in ('model', 'shuffled_actions', 'copy_last', 'ceiling_true_render', 'ceiling_real'):
            if fol.get(g) and fol[g].get('per_action') is not None:
                series[g] = [fol[g]['per_action'].get(a, {}).get('acc') for a in labels]
        pngs.append(write_png(os.path.join(out_dir, 'action_following.png'),
                              bar_plot('IDM action following: share of pairs read as the commanded action', labels,
                                       series, size=(900, 280))))
    write_html(out_dir, res, pngs)
    return pngs


def write_html(out_dir, res, pngs):
    import html
    rows = ''.join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in summary_rows(res))
    imgs = ''.join(f"<h3>{html.escape(p)}</h3><img src='{html.escape(p)}' style='max-width:100%'>" for p in pngs)
    s = res['settings']
    page = (f"<html><head><meta charset='utf-8'><title>Ochre eval</title></head><body>"
            f"<h1>Ochre evaluation</h1><p>{html.escape(str(s.get('checkpoint')))} (step {s.get('step')}), "
            f"data {html.escape(str(s.get('data')))}, split {s.get('split')}, quick={s.get('quick')}</p>"
            f"<p><a href='eval.json'>eval.json</a> holds every figure.</p>"
            f"<table border=1 cellpadding=3>{rows}</table>{imgs}</body></html>")
    atomic_write(os.path.join(out_dir, 'index.html'), lambda f: f.write(page), mode='w')


def _f(v, fmt='{:.3f}'):
    return '-' if v is None else fmt.format(v)


def summary_rows(res):
    """(label, text) rows of the headline figures, for stdout and the HTML page."""
    out = []
    tf = res.get('teacher_forced', {})
    if 'model' in tf:
        out.append(('teacher-forced CE / token acc',
                    f"model {tf['model']['ce']:.3f} / {tf['model']['token_acc']:.3f}   shuffled "
                    f"{tf['shuffled_actions']['ce']:.3f} / {tf['shuffled_actions']['token_acc']:.3f}   copy-last acc "
                    f"{tf['copy_last']['token_acc']:.3f}"))
        if 'idm_head' in tf:
            h = tf['idm_head']
            g = tf.get('action_ce_gain_by_group', {})
            out.append(("action echo: CE gain from actions / IDM head acc", f"{tf['action_ce_gain']:+.4f} nats "
                        f"(camera {g.get('camera', float('nan')):+.4f}, keys {g.get('movement_keys', float('nan')):+.4f})   "
                        f"yaw {h['yaw']:.2f} (majority {h['yaw_majority']:.2f})  pitch {h['pitch']:.2f} "
                        f"({h['pitch_majority']:.2f})  WASD {h['wasd']:.2f} ({h['wasd_majority']:.2f})"))
        if tf.get('change_calibration'):
            out.append(("cells that change: true / predicted", '   '.join(
                f"{k.replace('_', ' ')} {v['true_change']:.2f} / {v['predicted_change']:.2f}"
                + (f" (new token right {v['new_token_acc']:.2f})" if 'new_token_acc' in v else '')
                for k, v in tf['change_calibration'].items())))
        if tf.get('flow'):
            for key, name in (('flow', 'learned'), ('flow_true', 'optical')):
                if tf.get(key):
                    out.append((f"{name} flow, cells a step: |flow| / outward / dx", '   '.join(
                        f"{k.replace('_', ' ')} {v['abs']:.2f} / {v['outward']:+.2f} / {v['dx']:+.2f}"
                        for k, v in tf[key].items())))
    for key, r in res.get('open_loop', {}).items():
        if 'summary' not in r:
            continue
        s, H = r['summary'], r['horizon']
        hs = [h for h in (1, 16, 64) if h <= H] or [H]
        for ref in ('vs_decoded', 'vs_real'):
            if f"model/{ref}/psnr@{hs[0]}" not in s:
                continue
            txt = '   '.join(f"{g} " + '/'.join(_f(s.get(f"{g}/{ref}/psnr@{h}"), '{:.1f}') for h in hs)
                           for g in GENS)
            if ref == 'vs_real' and 'vq_ceiling/vs_real/psnr@1' in s:
                txt += f"   VQ ceiling {s['vq_ceiling/vs_real/psnr_mean']:.1f}"
            out.append((f"{key} PSNR {ref} @{'/'.join(map(str, hs))}", txt))
            out.append((f"{key} LPIPS {ref} @{'/'.join(map(str, hs))}", '   '.join(
                f"{g} " + '/'.join(_f(s.get(f"{g}/{ref}/lpips@{h}")) for h in hs) for g in GENS)))
        out.append((f"{key} unique codes (last step)", f"model {r['model']['unique_codes'][-1]:.0f}   "
                                                        f"gt {r['gt_unique_codes'][-1]:.0f}"))
    st = res.get('stability', {})
    for mode in ('idle', 'random'):
        if mode in st:
            m = st[mode]['model']
            out.append((f"stability {mode} ({st['steps']} steps), end", f"frame change {m['change_end']:.4f} "
                        f"(gt {st['gt']['frame_change']:.4f})  unique codes {m['unique_end']:.0f} "
                        f"(gt {st['gt']['unique_codes']:.0f})  -> {m['verdict']}"))
    sc = res.get('scripted', {})
    cf = sc.get('counterfactual')
    if cf:
        hz = cf['horizons']
        for grp in ('moving', 'idle'):
            out.append((f"counterfactual {grp} PSNR @{'/'.join(map(str, hz))}", '   '.join(
                f"{g} " + '/'.join(f"{v:.1f}" for v in cf[grp][g]['psnr']) for g in list(GENS) + ['vq_ceiling'])))
        out.append(("action sensitivity: spread / aligned", '   '.join(
            f"{g} {_f(cf['sensitivity'][g]['overall'])} / {_f(cf['sensitivity'][g]['aligned_overall'])}"
            for g in GENS)))
    fol = sc.get('following')
    if fol:
        parts = [f"{g} {_f(fol[g]['overall'])}" for g in GENS + ('ceiling_true_render', 'ceiling_real')
                 if fol.get(g) and fol[g].get('overall') is not None]
        out.append((f"IDM following ({fol['steps']} steps)", '   '.join(parts)))
        if 'ratio' in fol:
            out.append((f"following / {fol['ratio']['ceiling']}", '   '.join(
                f"{g} {_f(fol['ratio'][g]['overall'])}" for g in GENS)))
            out.append(("model / ceiling per action", '  '.join(
                f"{a} {_f(v, '{:.2f}')}" for a, v in fol['ratio']['model']['per_action'].items())))
    return out


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.floating, float)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    return o


# ============================================================================ main

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--ckpt', required=True, help='world-model checkpoint or run folder (newest checkpoint)')
    p.add_argument('--data', default=None, help="token data (preprocess.py output); default: the checkpoint's DATA_DIR")
    p.add_argument('--raw', default=None, help='GF-layout source clips; default: the paths preprocess recorded')
    p.add_argument('--vqvae', default=None, help="default: the checkpoint's VQVAE_CKPT")
    p.add_argument('--idm', default=None, help='IDM checkpoint (idm.py) for action following')
    p.add_argument('--out', default=None, help='output folder (default: <run folder>/eval)')
    p.add_argument('--quick', action='store_true', help='small numbers everywhere (smoke test, CI)')
    p.add_argument('--device', default='auto')
    p.add_argument('--threads', type=int, default=THREADS, help="torch CPU threads (0: torch's default)")
    ints = dict(ctx_frames=CTX_FRAMES, open_loop_samples=OPEN_LOOP_SAMPLES, tf_windows=TF_WINDOWS, tf_len=TF_LEN,
                stability_steps=STABILITY_STEPS, stability_samples=STABILITY_SAMPLES,
                stability_buckets=STABILITY_BUCKETS, follow_steps=FOLLOW_STEPS, cf_steps=CF_STEPS,
                cf_starts=CF_STARTS, real_ceiling_pairs=REAL_CEILING_PAIRS, batch=BATCH, top_k=TOP_K, seed=SEED)
    for k in ints:
        p.add_argument('--' + k.replace('_', '-'), type=int, default=None)
    tup = lambda s: tuple(int(v) for v in s.split(','))
    p.add_argument('--horizons', type=tup, default=None)
    p.add_argument('--cf-horizons', type=tup, default=None)
    p.add_argument('--sampling', default=SAMPLING, choices=SAMPLING_MODES)
    p.add_argument('--temperature', type=float, default=TEMPERATURE)
    p.add_argument('--display', default=DISPLAY, choices=DISPLAY_MODES,
                   help="the model's frames: decoded tokens, or the soft decode (everywhere / on changed cells)")
    p.add_argument('--latent-snap', type=float, default=LATENT_SNAP,
                   help="latent models: move the fed-back latent this share of the way to its tokens' codes (0-1; "
                        "default: the model's own)")
    p.add_argument('--latent-snap-moving', type=float, default=LATENT_SNAP_MOVING,
                   help="latent models: the snap after a transition that turns the camera or holds a movement key "
                        "(0-1; < 0: --latent-snap's; default: the model's own)")
    p.add_argument('--latent-carry', type=float, default=LATENT_CARRY,
                   help="latent models: share (0-1) of what the snap took off that is added to the next prediction "
                        "while a move goes on (default: the model's own, config.latent_carry)")
    p.add_argument('--flow-round', type=int, choices=(0, 1), default=FLOW_ROUND,
                   help="latent models with a learned flow: 1 moves the fed-back latent by whole cells, each cell's "
                        "sub-cell remainder carried to the next step; 0 interpolates (default: the model's own)")
    p.add_argument('--flow-round-smooth', type=int, default=FLOW_ROUND_SMOOTH,
                   help="with --flow-round 1: average a walk's flow over k x k cells before rounding it (odd k; -1: "
                        "the whole map; 0: per cell; default: the model's own)")
    p.add_argument('--warp-fill', choices=('zero', 'edge'), default=WARP_FILL,
                   help="what fills the rows a pitch warp uncovers: zero (flat) or the border row repeated "
                        "(default: the model's own, config.warp_fill)")
    p.add_argument('--flow-round-camera', type=int, choices=(0, 1), default=FLOW_ROUND_CAMERA,
                   help="with --flow-round 1: a turn's or a look's flow too, its mean over the map rounded to whole "
                        "cells (a rigid move, the remainder carried; default: the model's own)")
    p.add_argument('--flow-look-off', type=int, choices=(0, 1), default=FLOW_LOOK_OFF,
                   help="latent models with a learned flow: 1 zeroes the flow on a look, moved by the whole-row pitch "
                        "warp alone (default: the model's own)")
    p.add_argument('--fm-steps', type=int, default=FM_STEPS,
                   help="models with a flow-matching head: Euler steps of each sampled latent; 0: the mean "
                        "(default: the model's own)")
    p.add_argument('--fm-temp', type=float, default=FM_TEMP,
                   help="models with a flow-matching head: std of the noise a sample starts from (default: the model's own)")
    p.add_argument('--fm-gate', type=int, choices=(0, 1), default=FM_GATE,
                   help="models with a flow-matching head: 1 samples only where the camera turns or a key is down "
                        "(default: the model's own)")
    p.add_argument('--latent-reencode', action='store_true', default=LATENT_REENCODE,
                   help="latent models: send the fed-back latent through the VQ-VAE's decoder and encoder")
    p.add_argument('--change-threshold', type=float, default=CHANGE_THRESHOLD,
                   help="'commit': change a cell when its current token's probability is below this")
    args = p.parse_args(argv)
    defaults = dict(ints, horizons=HORIZONS, cf_horizons=CF_HORIZONS)
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, QUICK.get(k, v) if args.quick else v)
    return args


@torch.inference_mode()
def run(args):
    import actions as A
    from model_convGru import load_world_model
    from perceptual import build_lpips
    from vqvae import load_vqvae
    t0 = time.time()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(('cuda' if torch.cuda.is_available() else 'cpu') if args.device == 'auto' else args.device)
    from inference import resolve_checkpoint
    try:
        ckpt_path = resolve_checkpoint(args.ckpt)
    except FileNotFoundError as e:
        raise SystemExit(str(e))
    model, ck = load_world_model(ckpt_path, map_location=device, weights_only=False)
    model.eval()
    tc = ck.get('train_config') or {}
    data = args.data or tc.get('DATA_DIR')
    vq_path = args.vqvae or tc.get('VQVAE_CKPT')
    if not data or not os.path.isfile(os.path.join(data, 'manifest.json')):
        raise SystemExit(f"token data not found ({data}); pass --data")
    if not vq_path or not os.path.isfile(vq_path):
        raise SystemExit(f"VQ-VAE checkpoint not found ({vq_path}); pass --vqvae")
    with open(os.path.join(data, 'manifest.json')) as f:
        manifest = json.load(f)
    edges = ck.get('edges') or A.edges_from_manifest(manifest)
    out_dir = args.out or os.path.join(os.path.dirname(os.path.abspath(ckpt_path)), 'eval')
    os.makedirs(out_dir, exist_ok=True)
    vq = load_vqvae(vq_path, device)
    lp = build_lpips(device)
    clips = Clips(data, args.raw, latents=bool(model.config.latent_dim))
    if model.config.latent_dim and not clips.cache.latent_dim:
        print(f"WARNING {data} has no latents (preprocess.py --latents): the latent model's contexts enter as "
              f"their tokens' code vectors, which it was not trained on", file=sys.stderr)
    if clips.cache.action_dim != model.config.action_dim:
        raise SystemExit(f"{data}: {clips.cache.action_dim}-D actions, the model takes {model.config.action_dim}-D")
    idm = None
    if args.idm:
        from idm import load_idm
        idm = load_idm(args.idm, device)
    sampling = dict(mode=args.sampling, temperature=args.temperature, top_k=args.top_k)
    if args.sampling == 'commit':
        sampling['change_threshold'] = args.change_threshold
    if args.latent_snap is not None and not 0 <= args.latent_snap <= 1:
        raise SystemExit(f"--latent-snap {args.latent_snap}: expected a share in [0, 1]")
    if args.latent_snap_moving is not None and args.latent_snap_moving > 1:
        raise SystemExit(f"--latent-snap-moving {args.latent_snap_moving}: expected a share in [0, 1] (< 0: --latent-snap's)")
    try:
        set_rollout_options(model, ckpt_path, **{n: getattr(args, n) for n in ROLLOUT_OPTIONS})
    except ValueError as e:
        raise SystemExit(str(e))
    mgen = ModelGen(model, sampling, args.seed, vq, args.display, args.latent_snap,
                    vq if args.latent_reencode else None, args.latent_snap_moving)
    gens = {'model': mgen, 'copy_last': CopyLastGen(), 'shuffled_actions': ShuffledGen(mgen, args.seed)}
    settings = dict(checkpoint=os.path.abspath(ckpt_path), step=ck.get('step'), data=os.path.abspath(data),
                    raw=args.raw or 'video and metadata paths recorded by preprocess.py',
                    vqvae=os.path.abspath(vq_path), idm=args.idm and os.path.abspath(args.idm),
                    idm_edges=idm and dict(yaw=list(idm.edges['yaw']), pitch=idm.edges['pitch']),
                    edges=dict(edges), device=str(device), split=clips.split, quick=args.quick,
                    sampling=sampling, display=args.display, model_config=model.config.to_dict(),
                    **{k: v for k, v in vars(args).items() if k not in ('ckpt', 'data', 'raw', 'vqvae', 'idm', 'out',
                                                                       'quick', 'device', 'sampling', 'temperature', 'change_threshold', 'display',
                                                                       'top_k', 'threads')})
    res = dict(settings=settings)
    if clips.split != 'val':
        print(f"WARNING {data}: no val clip; evaluating on the train split (figures are not held-out)")

    def step(name):
        print(f"[{time.time() - t0:6.1f}s] {name}", flush=True)

    step('teacher forcing')
    res['teacher_forced'] = eval_teacher_forced(model, clips, args.tf_windows, args.tf_len, device, args.seed)
    step('open-loop rollouts')
    res['open_loop'], ol_frames = {}, {}
    for ctx in sorted({1, args.ctx_frames}):
        r = eval_open_loop(gens, vq, lp, clips, ctx, max(args.horizons), args.open_loop_samples, device, args.batch)
        if isinstance(r, tuple):
            res['open_loop'][f'ctx{ctx}'], ol_frames[f'ctx{ctx}'] = r
        else:
            res['open_loop'][f'ctx{ctx}'] = r
    step('stability')
    res['stability'], stab_frames = eval_stability(gens, vq, clips, args.ctx_frames, args.stability_steps,
                                                   args.stability_samples, edges, device, args.batch,
                                                   args.stability_buckets, args.seed)
    step('scripted actions: counterfactuals and action following')
    res['scripted'], sc_frames = eval_scripted(gens, vq, lp, idm, clips, args.ctx_frames, args.cf_steps,
                                               args.cf_horizons, args.follow_steps, args.cf_starts, edges, device,
                                               args.batch, args.real_ceiling_pairs)
    if model.config.flow_warp and 'skipped' not in res['scripted']:
        res['scripted']['flow_first_step'] = scripted_flow(model, clips, args.ctx_frames, args.cf_starts, edges, device)
    step('report')
    pngs = write_report(out_dir, _jsonable(res), ol_frames, stab_frames, sc_frames)
    res['report'] = dict(html='index.html', pngs=pngs)
    res['settings']['seconds'] = round(time.time() - t0, 1)
    res = _jsonable(res)
    atomic_write(os.path.join(out_dir, 'eval.json'), lambda f: f.write(json.dumps(res, indent=1)), mode='w')
    rows = summary_rows(res)
    w = max(len(k) for k, _ in rows) if rows else 0
    print(f"\n{'=' * 20} {ckpt_path} (step {ck.get('step')}) on {data} [{clips.split}] {'=' * 20}")
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    print(f"\n{os.path.join(out_dir, 'eval.json')}\n{os.path.join(out_dir, 'index.html')} "
          f"({len(pngs)} PNG pages) in {time.time() - t0:.0f} s")
    return res


def main(argv=None):
    return run(parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == '__main__':
    main()

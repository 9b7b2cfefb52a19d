"""train.py: the v6.2 autoregressive-curriculum training of the ConvGRU-FiLM world model.

    python train.py config/demo_cpu.py --BATCH_SIZE=8
    torchrun --nproc_per_node=4 train.py config/gf_v62.py          # DDP, same script

Each step takes a window of SEQ_LEN teacher-forced transitions followed by ar_len
autoregressive ones fed with the model's own (detached) predictions. Losses: cross-entropy
(TF and AR, AR up-weighted), a Gumbel-softmax semantic loss in codebook space, LPIPS through a
soft decode of the frozen VQ-VAE decoder on frames drawn at random each step, the IDM loss
over variable spans, and an early entropy bonus. ar_len follows a curriculum braked by the
AR/TF LPIPS ratio and gated by unique codes. Every mechanism has a constant below.
"""
import json
import math
import os
import random
import signal
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# ---- data ----
DATA_DIR = 'preprocessedv4'          # preprocess.py output: manifest.json + <stem>.npz
VQVAE_CKPT = 'checkpoints/vqvae.pt'  # frozen tokenizer: decodes targets, soft-decodes predictions for LPIPS
OUT_DIR = 'checkpoints/ochre-v6.2'   # the run folder: checkpoints, metrics.jsonl, images/
SEQ_LEN = 16                 # teacher-forced transitions per window (the AR steps come after them)
BATCH_SIZE = 20              # per process
NUM_WORKERS = 2              # DataLoader workers per process
BALANCE_ACTIONS = 0.0        # window sampling: 0 uniform; 1 weighted by the inverse frequency of each
                             # transition's action combination (mean over the window); between: weight ** this
ISOLATED_MOVES = 0.0         # share of windows drawn in proportion to their share of isolated-movement transitions
                             # (a key down, camera still: actions.isolated_movement); the rest as above. 0 = off
TIME_REVERSE = 0.0           # share of the drawn windows without jump or sprint that are played backwards (frames
                             # reversed, actions mirrored: W <-> S, A <-> D, turns and looks the other way): every
                             # walk forward is also a walk back. Exact for a still world; rain, mobs and water would
                             # then run backwards too. 0 = off
# ---- model ----
MODEL_PRESET = 'v6.2'        # model_convGru.PRESETS: 'v6.2' (~92M) or 'demo' (~3.6M)
MODEL_OVERRIDES = {}         # WorldModelConfig fields, e.g. {'camera_warp': 'hidden'}
WARP_CALIBRATE = False       # True: the camera warp moves content by the train clips' mean motion per yaw/pitch
                             # bin (fractional cells, summed in the state: warp_accumulate) instead of whole
                             # cells per frame; blockworld's slow turns move 0.4 cells a frame, not 1
WARP_FILL = 'zero'           # what fills the rows the pitch warp uncovers: 'zero' (flat) or 'edge' (the border row
                             # repeated: a look down's new ground rows start from the last one; model warp_fill)
WARP_VFOV_DEG = 70.0         # the recordings' vertical field of view (Minecraft's default), for WARP_CALIBRATE
LATENTS = False              # the model reads and predicts the VQ-VAE's continuous pre-quantization latents
                             # (latent_dim = the VQ-VAE's code size; needs data from preprocess.py --latents):
                             # a token cannot say where inside its cell a texture sits, the latent can
LATENT_WEIGHT = 1.0          # MSE of the predicted latent (per-channel standardised) against the true one
LATENT_NOISE = 0.0           # std (per-channel standard units) of Gaussian noise on the teacher-forced input
                             # latents: a rollout reads its own imperfect latents, never the true ones
LATENT_AR_GRAD = False       # the AR tail's fed-back latents keep their gradient (backprop through the model's
                             # own predictions): a regression rolled out contracts to the mean unless the loss
                             # of later steps can reach the steps that caused it
LATENT_SNAP = 0.0            # the AR tail (and every rollout of the model: it is saved in its config) feeds back
                             # its latent moved this share of the way to the decoded tokens' codes (rollout.snap_latent)
LATENT_SNAP_MOVING = -1.0    # >= 0: the snap after a transition that moves (camera or a key), < 0: LATENT_SNAP. A
                             # snap drops the sub-cell position a move left; 0 at evaluation only ran off
                             # (experiments z3r_..._mov0), trained with 0 it holds the tail's 8 steps (z5)
LATENT_SNAP_TAIL = -1.0      # >= 0: the training tail's snap instead of LATENT_SNAP, which stays the checkpoint's, for its
                             # rollouts and live play (z3g trained at 0.5 and rolled out at 1 met 10 target columns)
LATENT_CARRY = 0.0           # share of what each snap took off that the tail (and every rollout: model latent_carry)
                             # adds to the next prediction while a move goes on: a motion of part of a cell a step
                             # adds up until the codes flip instead of being taken back by every snap
LATENT_FLOW = 0.0            # > 0: a learned per-cell flow (at most this many cells a step) moves the input latent
                             # before the head's correction (model flow_warp): a walk moves near things more than
                             # far ones, by less than a cell a frame, which a regression head can only blur
LATENT_FLOW_WEIGHT = 0.0     # > 0: the flow also learns on its own: MSE between the blurred input latent moved by the
                             # flow and the blurred next latent (teacher-forced steps). Through the whole prediction
                             # the correction can explain a motion the flow should; the blur widens the basin a
                             # sub-cell texture gives the warp's gradient
LATENT_FLOW_TARGET = 0.0     # > 0: the flow also learns the pictures' own motion on walking transitions (a key down,
                             # the camera still; teacher-forced steps): this weight times the squared distance, per
                             # cell weighted by its reliability, to the optical flow of preprocess.py --flow. From
                             # the latents alone the flow drew a walk back in by 0.02-0.04 cells a step, a tenth of
                             # the pictures' motion (experiments item 44). Squared, not L1: L1 pulls each cell to
                             # its median motion, and where the model cannot tell near from far that is none
LATENT_FLOW_GATE = False     # the flow is zero when the camera is still and no movement key is down (model flow_gate)
LATENT_FLOW_KEYS = False     # a learned field per movement key added to the flow while it is down (model flow_keys)
LATENT_FLOW_KEY_HOLD = False  # ... and one per key and frames held (needs KEY_HOLD_BINS; model flow_key_hold): a held
                             # jump rises for ~4 frames, then falls; one field per key learns the mean, none
LATENT_FLOW_KEY_HOLD_POOL = False  # ... each of those one shift for the whole map, not a field per cell (model
                             # flow_key_hold_pool): a per-cell field learned zj's bounce at a sixth of its size
LATENT_FLOW_WALK_KEYS = False  # a walk (key down, camera still) is moved by the keys' fields alone, taught only by
                             # LATENT_FLOW_TARGET (model flow_walk_keys): the latent losses shrink a walk's flow
LATENT_FLOW_WALK_FIT = False  # ... those fields set at the start to the data's own mean walk per cell and frozen
                             # (opticalflow.fit_walk_fields: the stored optical flow regressed on the keys; needs
                             # preprocess.py --flow, not LATENT_FLOW_TARGET): zm's learned fields reached 60-75% of
                             # that fit in 60 minutes, and its weights with the fit followed best (zm_fit_fields);
                             # trained so, W and S rise and the look down falls (11 columns against 12, item 48)
LATENT_FLOW_KEYS_WALK_ONLY = False  # ... and a turn's or look's flow is the head's alone, without the keys' fields
                             # (model flow_keys_walk_only): with the fitted fields the look down fell (item 48);
                             # kept off looks it fell further (zo, one seed, item 49): not the cause
LATENT_FLOW_LOOK_OFF = False  # the flow is zero on a look: the whole-row pitch warp alone moves it (model flow_look_off;
                             # trained so, zp lost 4 columns to zk20: the head took the look back and the walks fell)
LATENT_LOOK_REST_WEIGHT = 1.0  # < 1: on a look (and in the AR tail from its first look on) the latent and CE losses
                             # weigh the cells the pitch warp did not uncover this much, the rows it uncovered 1.
                             # The whole-row warp moves a 0.67-row look a row, so the true next frame teaches the
                             # head to take back a third of it (zp); 0 teaches it only to draw the entering rows.
                             # Trained so (zq, item 51) the looks moved a row a frame, drawn in as plain ground or
                             # sky, under copy-last, and the walks fell as zp's (9 columns against zk20's 12)
LATENT_FLOW_HIDDEN = False   # the flow also moves the hidden maps after each step (model flow_hidden): the state
                             # keeps where a texture went when the fed-back latent is snapped to codes
LATENT_FLOW_MODE = 'bilinear'  # how the flow samples between cells (model flow_mode): 'bicubic' blurs less per
                             # step, yet its rollouts followed worse (experiments z4)
LATENT_FLOW_ROUND = False    # the tail (and every rollout: model flow_round) moves the fed-back latent by the flow
                             # rounded to whole cells while a key is down and the camera still, each cell's sub-cell
                             # remainder kept for the next step: the walk survives the snap and nothing is resampled
                             # (teacher forcing keeps the bilinear flow)
LATENT_FLOW_ROUND_TAIL = True  # ... in the training tail too; False: the tail interpolates (trained as without it) and
                             # only the checkpoint's rollouts and live play round (z3r / z3g: trained interpolated, rolled
                             # out rounded, the best; trained rounded, zr2, lost)
LATENT_FLOW_ROUND_SMOOTH = 0  # ... a walk's flow averaged over a k x k box of cells before it is rounded (odd k; -1:
                             # the whole map, a rigid shift), so neighbouring cells round alike and do not tear
LATENT_FM = 0                # > 0: a flow-matching head of this width learns the distribution of the next latent
                             # around the head's mean (model fm_width), and rollouts feed back mean + a sample: the
                             # mean of what can come next is a smear where content moves by part of a cell
LATENT_FM_WEIGHT = 1.0       # its loss (model_convGru.flow_matching_loss), on...
LATENT_FM_FRAMES = 4         # ...this many transitions a window (half from the AR tail when there is one)
LATENT_FM_STEPS = 8          # a rollout's sample: Euler steps (model fm_steps; evaluate.py --fm-steps overrides)...
LATENT_FM_TEMP = 1.0         # ...from Gaussian noise of this std (model fm_temp; evaluate.py --fm-temp)
LATENT_FM_GATE = False       # rollouts sample only where the camera turns or a key is down, the mean elsewhere (model
                             # fm_gate; evaluate.py --fm-gate): an idle world's uncertainty is not randomness
KEY_HOLD_BINS = 0            # > 0: the model counts how many frames each key has been held and its movement FiLM
                             # reads the count in this many bins (model key_hold_bins): a held jump rises, then falls,
                             # so the key alone says neither; each window starts from its clip's count
# ---- optimisation ----
MAX_STEPS = 100_000
LR = 3e-5
MIN_LR = 3e-6                # cosine floor
WARMUP_STEPS = 1000          # linear LR warmup
WEIGHT_DECAY = 0.01
BETA1, BETA2 = 0.9, 0.95
GRAD_CLIP = 1.0
FILM_LR_MULT = 10.0          # FiLM gradients ran 13-33x weaker than the dynamics' (v4.7.3-v4.7.4)
# ---- AR curriculum ----
AR_CURRICULUM = True         # False: teacher forcing only
AR_WARMUP_STEPS = 2000       # teacher forcing only before this step
AR_MIN_LEN = 10              # ar_len after warmup never goes below this (v4.9: short AR lets shortcuts win)
AR_MAX_LEN = 20
AR_BRAKE = True              # shrink ar_len while AR LPIPS runs away from TF LPIPS
AR_BRAKE_UPPER = 2.5         # EMA(AR LPIPS / TF LPIPS) above this: ar_len - 1
AR_BRAKE_LOWER = 1.6         # below this (and not collapsed): ar_len + 1
AR_RATIO_EMA = 0.9           # smoothing of the ratio, updated every LOG_STEPS
UNIQUE_CODES_GATE = 0.5      # ar_len grows only while predictions use >= this share of GT's unique codes
AR_FEEDBACK = 'argmax'       # how AR inputs are chosen from the previous logits: argmax | sample | topk | commit
                             # (commit: rollout's commit decoding, the one that shows the keys' motion)
AR_FEEDBACK_TOPK = 8         # for 'topk': sample among the k most likely codes
AR_LOSS_WEIGHT = 2.5
# ---- losses ----
LABEL_SMOOTHING = 0.0
CHANGE_WEIGHT = 0.0          # extra CE weight on cells whose next token differs from the current one: most
                             # cells just persist, so plain CE is won by copying and motion is a rounding error
SEMANTIC_WEIGHT = 1.0        # Gumbel-softmax (hard) codebook-embedding MSE
SEMANTIC_FRAMES = 4          # frames per window given the semantic loss, drawn at random each step
GUMBEL_TAU_START = 1.0
GUMBEL_TAU_END = 0.3         # v6.2: a higher floor, slower hardening
GUMBEL_TAU_STEPS = 30_000
LPIPS_WEIGHT = 3.0
LPIPS_FRAMES = 4             # frames per window given LPIPS, drawn at random EVERY step (v4.6.4's fixed period flashed)
LPIPS_MOVE_BOOST = 4.0       # LPIPS multiplier for frames with a movement key down...
LPIPS_BOOST_RAMP_STEPS = 5000  # ...ramped in from 1 over this many steps
IDM_WEIGHT = 1.0
IDM_MAX_SPAN = 5             # IDM spans k drawn from 1..IDM_MAX_SPAN
CORRUPT_MAX = 0.05           # teacher-forcing token corruption: share of input tokens replaced at random...
CORRUPT_RAMP_STEPS = 5000    # ...ramped in from 0
ENTROPY_WEIGHT = 0.01        # entropy bonus (anti-collapse), fading to 0...
ENTROPY_STEPS = 5000         # ...over this many steps
# ---- runtime ----
DEVICE = 'auto'              # auto | cpu | cuda | cuda:1
DTYPE = 'bf16'               # autocast dtype: bf16 | fp16 | fp32 (CPU: bf16 where it has native bf16, else fp32)
COMPILE = False              # torch.compile the model
CPU_THREADS = 0              # torch CPU threads; 0: torch's default. 1 is faster on a busy 2-core box (OpenMP thrashes)
SEED = 1337
LOG_STEPS = 10
IMAGE_LOG_STEPS = 500
EVAL_STEPS = 500
EVAL_WINDOWS = 16            # val windows per evaluation
CKPT_STEPS = 1000
KEEP_LAST = 3                # rolling checkpoints kept (milestones are kept forever)
MILESTONE_STEPS = 10_000
RESUME = 'auto'              # 'auto': newest checkpoint in OUT_DIR; '': start fresh; or a checkpoint path
STOP_AFTER = 0               # leave after this many steps in this invocation (checkpointed); 0: run to MAX_STEPS
TIME_LIMIT_MIN = 0.0            # leave (checkpointed) after this wall time; 0: no limit
MAX_BAD_STEPS = 5            # consecutive non-finite losses before the run stops
WANDB_PROJECT = 'ochre'
WANDB_RUN_NAME = ''
PEAK_TFLOPS = 0.0            # accelerator peak for MFU; 0: looked up from the GPU name (unknown: no MFU)
# ---- end of config ----

import actions as A  # noqa: E402
from configurator import apply_config, format_config  # noqa: E402
from model_convGru import (FLOW_REACH, MOVEMENT_KEYS, PRESETS, V5_ACTION_DIM, WorldModelConvFiLM,  # noqa: E402
                           flow_matching_loss, idm_loss, load_world_model, looking_actions, save_world_model,
                           walking_actions)
from rollout import (amp_dtype, autocast, carry_out, decode_tokens, next_tokens, rollout, snap_latent,  # noqa: E402
                     unique_codes_per_frame)
from tokendata import TokenCache, WindowDataset  # noqa: E402

PEAKS = {'H100': 989e12, 'H200': 989e12, 'A100': 312e12, 'L40S': 362e12, 'RTX 4090': 165e12,
         'A10': 125e12, 'V100': 125e12, 'P100': 18.7e12, 'T4': 65e12}  # dense bf16/fp16 tensor FLOP/s


# ------------------------------------------------------------------ schedules and the curriculum
def lr_at(step, base, warmup, total, floor):
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (base - floor) * (1 + math.cos(math.pi * p))


def ramp(step, steps):
    return 1.0 if steps <= 0 else min(1.0, step / steps)


class ARCurriculum:
    """ar_len: 0 during warmup, then AR_MIN_LEN, moved by the LPIPS-ratio brake and the unique-codes gate."""

    def __init__(self, enabled, warmup, min_len, max_len, brake, upper, lower, gate, ema):
        self.enabled, self.warmup, self.min_len, self.max_len = enabled, warmup, min_len, max_len
        self.brake, self.upper, self.lower, self.gate, self.ema = brake, upper, lower, gate, ema
        self.ar_len, self.ratio, self.moves = 0, None, {'up': 0, 'down': 0, 'hold': 0}

    def update(self, step, lpips_tf=None, lpips_ar=None, unique_pred=None, unique_gt=None):
        """Call every LOG_STEPS with the means since the last call; returns the new ar_len."""
        if not self.enabled or step < self.warmup:
            self.ar_len = 0
            return self.ar_len
        if self.ar_len < self.min_len:
            self.ar_len = self.min_len
            return self.ar_len
        if lpips_tf is not None and lpips_ar is not None and lpips_tf > 0:
            r = lpips_ar / lpips_tf
            self.ratio = r if self.ratio is None else self.ema * self.ratio + (1 - self.ema) * r
        collapsed = unique_pred is not None and unique_gt and unique_pred < self.gate * unique_gt
        move = 'hold'
        if self.brake and self.ratio is not None and self.ratio > self.upper:
            move = 'down'
        elif (not self.brake or (self.ratio is not None and self.ratio < self.lower)) and not collapsed:
            move = 'up'
        self.ar_len = int(np.clip(self.ar_len + {'up': 1, 'down': -1, 'hold': 0}[move], self.min_len, self.max_len))
        self.moves[move] += 1
        return self.ar_len

    def state_dict(self):
        return dict(ar_len=self.ar_len, ratio=self.ratio, moves=dict(self.moves))

    def load_state_dict(self, d):
        self.ar_len, self.ratio, self.moves = d['ar_len'], d['ratio'], dict(d['moves'])


# ------------------------------------------------------------------ the loss of one window
def make_knobs(c, step, diagnostics=True):
    """What WindowLoss needs at `step`, from a resolved config dict `c` (schedules applied)."""
    return dict(corrupt=c['CORRUPT_MAX'] * ramp(step, c['CORRUPT_RAMP_STEPS']), feedback=c['AR_FEEDBACK'],
                topk=c['AR_FEEDBACK_TOPK'], label_smoothing=c['LABEL_SMOOTHING'],
                change_weight=c['CHANGE_WEIGHT'], ar_weight=c['AR_LOSS_WEIGHT'],
                semantic_weight=c['SEMANTIC_WEIGHT'], semantic_frames=c['SEMANTIC_FRAMES'],
                lpips_weight=c['LPIPS_WEIGHT'], lpips_frames=c['LPIPS_FRAMES'],
                move_boost=1 + (c['LPIPS_MOVE_BOOST'] - 1) * ramp(step, c['LPIPS_BOOST_RAMP_STEPS']),
                idm_weight=c['IDM_WEIGHT'], idm_span=c['IDM_MAX_SPAN'], latent_weight=c['LATENT_WEIGHT'],
                latent_noise=c['LATENT_NOISE'], latent_ar_grad=c['LATENT_AR_GRAD'], flow_weight=c['LATENT_FLOW_WEIGHT'],
                flow_target=c['LATENT_FLOW_TARGET'], look_rest=c['LATENT_LOOK_REST_WEIGHT'],
                flow_round_tail=c['LATENT_FLOW_ROUND_TAIL'], snap_tail=c['LATENT_SNAP_TAIL'],
                fm_weight=c['LATENT_FM_WEIGHT'], fm_frames=c['LATENT_FM_FRAMES'],
                entropy_weight=c['ENTROPY_WEIGHT'] * max(0.0, 1 - step / max(1, c['ENTROPY_STEPS'])),
                tau=c['GUMBEL_TAU_START'] + (c['GUMBEL_TAU_END'] - c['GUMBEL_TAU_START']) * ramp(step, c['GUMBEL_TAU_STEPS']),
                diagnostics=diagnostics)


def look_loss_weights(model, tokens, actions, tf_len, rest):
    """(B, T, H, W) tokens and (B, T, 15) actions of a window whose first tf_len steps are teacher-forced -> (B, T, H,
    W) per-cell loss weights (LATENT_LOOK_REST_WEIGHT): on a look (the pitch moves) and, in the autoregressive tail, on
    every step after a look at or since the last teacher-forced step (the fed-back latent carries the look's
    overshoot), the cells the camera warp did not uncover (copy_source's mask) weigh `rest`, the others 1."""
    look = looking_actions(actions).int()
    tail = look[:, max(tf_len - 1, 0):].cummax(1).values[:, 1 if tf_len else 0:]   # a look at or before each step
    affected = torch.cat([look[:, :tf_len], tail], 1).bool()
    kept = model.copy_source(tokens, actions)[1] > 0.5
    return torch.where(affected[..., None, None] & kept, torch.tensor(float(rest), device=actions.device),
                       torch.tensor(1.0, device=actions.device))


def window_positions(n, tf_len, T, device):
    """n of a window's T transitions drawn at random this step, half from the AR tail (after tf_len) when
    there is one: the losses too costly for every transition (LPIPS, the semantic loss, flow matching) see both."""
    if T > tf_len:
        n_ar = min(max(1, n // 2), T - tf_len)
        return torch.cat([torch.randperm(tf_len, device=device)[:n - n_ar],
                          tf_len + torch.randperm(T - tf_len, device=device)[:n_ar]])
    return torch.randperm(T, device=device)[:n]


def corrupt_tokens(tokens, p, codebook_size):
    """Replace a share p of tokens by random codes (weakens the copy-z_t shortcut, v6.2)."""
    if p <= 0:
        return tokens
    mask = torch.rand(tokens.shape, device=tokens.device) < p
    return torch.where(mask, torch.randint_like(tokens, codebook_size), tokens)


def gumbel_softmax(logits, tau, dim):
    """Soft Gumbel-softmax sample. Noise as -log(-log(U)): ~2x faster on a CPU than torch's
    exponential_-based F.gumbel_softmax, which was the costliest single op of a demo step."""
    u = torch.rand_like(logits, dtype=torch.float32).clamp_(1e-9, 1 - 1e-9)
    return ((logits.float() - torch.log(-torch.log(u))) / tau).softmax(dim)


def feedback_tokens(logits, mode, topk):
    """AR input from the previous prediction; always detached (v4.9's BPTT through samples exploded)."""
    logits = logits.detach()
    if mode == 'argmax':
        return logits.argmax(1)
    B, K, H, W = logits.shape
    z = logits.float().permute(0, 2, 3, 1).reshape(-1, K)
    if mode == 'topk':
        v, i = z.topk(topk, -1)
        return i.gather(-1, torch.multinomial(v.softmax(-1), 1)).view(B, H, W)
    if mode == 'sample':
        return torch.multinomial(z.softmax(-1), 1).view(B, H, W)
    raise ValueError(f"AR_FEEDBACK={mode!r}: expected argmax | sample | topk | commit")


class WindowLoss(torch.nn.Module):
    """The whole per-window computation as one module, so DDP sees one forward per step."""

    def __init__(self, model, vq, lpips_net):
        super().__init__()
        self.model = model
        self.frozen = (vq, lpips_net)  # a tuple hides them from .parameters() / DDP

    def forward(self, tokens, actions, ar_len, knobs, latents=None, held=None, flow_target=None):
        vq, lp = self.frozen
        model = self.model
        cfg = model.config
        B, T = actions.shape[:2]
        state = None if held is None else model.init_state(B, tokens.device, held=held)   # the keys' counts so far
        tf_len = T - ar_len
        target = tokens[:, 1:T + 1]
        look_w = (look_loss_weights(model, tokens[:, :T], actions, tf_len, knobs['look_rest'])
                  if knobs.get('look_rest', 1.0) != 1.0 else None)
        inp = corrupt_tokens(tokens[:, :tf_len], knobs['corrupt'], cfg.codebook_size)
        lat_kw = {}
        if cfg.latent_dim:
            lat_in = latents[:, :tf_len]
            if knobs['latent_noise'] > 0:
                lat_in = lat_in + knobs['latent_noise'] * model.latent_std[:, None, None] * torch.randn_like(lat_in)
            lat_kw = dict(latents=lat_in, return_latent=True)
        flow_loss = cfg.flow_warp > 0 and knobs['flow_weight'] > 0
        flow_sup = cfg.flow_warp > 0 and knobs.get('flow_target', 0) > 0 and flow_target is not None
        logits, state, top, *pred_lat = model(inp, actions[:, :tf_len], state, return_hidden=True, **lat_kw,
                                              **(dict(return_flow=True) if flow_loss or flow_sup else {}))
        if flow_loss or flow_sup:
            moved, flow = pred_lat.pop(), pred_lat.pop()
        if flow_loss:   # the flow alone: the (camera-warped) input moved by it against the next latent, blurred
            nxt = model.normalise_latent(latents[:, 1:tf_len + 1]).flatten(0, 1)
            flow_mse = (flow_blur(moved.flatten(0, 1)) - flow_blur(nxt)).pow(2).mean()
        if flow_sup:   # flow_walk_keys: a walk's flow is the keys' fields, taught here alone
            if cfg.flow_walk_keys:
                flow = model.walk_flow(actions[:, :tf_len])
            flow_err = flow_target_error(flow, flow_target[:, :tf_len], actions[:, :tf_len], cfg.flow_warp)
        all_logits, tops = [logits], [top]
        prev, cur = logits[:, -1], inp[:, -1]
        for t in range(tf_len, T):  # autoregressive tail: inputs are the model's own predictions
            if knobs['feedback'] == 'commit':   # the step that made `prev` took `cur` and action t-1
                fb = next_tokens(model, prev.detach(), cur, actions[:, t - 1], dict(mode='commit'))
            else:
                fb = feedback_tokens(prev, knobs['feedback'], knobs['topk'])
            # a latent model reads its own last latent (detached like the tokens, unless LATENT_AR_GRAD)
            lat_t = None
            if cfg.latent_dim:
                lat_t = state.latent if knobs['latent_ar_grad'] else state.latent.detach()
                snap = cfg.latent_snap if knobs.get('snap_tail', -1) < 0 else knobs['snap_tail']
                snapped = snap_latent(model, lat_t, fb, snap, action=actions[:, t - 1])
                # LATENT_FLOW_ROUND_TAIL=False: the tail starts no remainder, so it interpolates
                state = carry_out(model, state, lat_t, snapped, actions[:, t - 1],
                                  flow_round=cfg.flow_round and knobs.get('flow_round_tail', True))
                lat_t = snapped
            prev, state, top_t = model.step(fb, actions[:, t], state, return_hidden=True, latent_t=lat_t)
            cur = fb
            all_logits.append(prev[:, None])
            tops.append(top_t[:, None])
            if cfg.latent_dim:
                pred_lat.append(state.latent[:, None])
        logits = torch.cat(all_logits, 1).float()  # (B, T, K, H, W)
        top = torch.cat(tops, 1)
        out = {}
        if cfg.latent_dim:   # regression of the next latent, in per-channel standard units
            pred_lat = torch.cat(pred_lat, 1)                                            # (B, T, D, H, W)
            err = (model.normalise_latent(pred_lat) - model.normalise_latent(latents[:, 1:T + 1])).pow(2)
            out['latent_mse'] = (err.mean() if look_w is None else
                                 (err * look_w[:, :, None]).sum() / (look_w.sum() * err.shape[2]).clamp_min(1e-6))
            loss_latent = knobs['latent_weight'] * out['latent_mse']
            if flow_loss:
                out['flow_mse'] = flow_mse
                loss_latent = loss_latent + knobs['flow_weight'] * flow_mse
            if flow_sup:
                out['flow_target_mse'] = flow_err
                loss_latent = loss_latent + knobs['flow_target'] * flow_err
            if cfg.fm_width and knobs['fm_weight'] > 0:   # the distribution around the mean, on a few transitions
                pos = window_positions(min(knobs['fm_frames'], T), tf_len, T, tokens.device)
                sel = lambda z: model.normalise_latent(z[:, pos].flatten(0, 1))        # noqa: E731
                out['fm'] = flow_matching_loss(model.fm_head, sel(latents[:, 1:T + 1]), top[:, pos].flatten(0, 1),
                                               sel(pred_lat))
                loss_latent = loss_latent + knobs['fm_weight'] * out['fm']

        # cross-entropy, TF and AR parts separately; one log-softmax serves CE, entropy and diagnostics
        logp = logits.log_softmax(2)
        eps = knobs['label_smoothing']
        nll = -logp.gather(2, target[:, :, None]).squeeze(2)
        ce = nll if not eps else (1 - eps) * nll - eps * logp.mean(2)                   # (B, T, H, W)
        if knobs['change_weight'] > 0:   # up-weight the cells that change (vs the true current frame)
            w = 1 + knobs['change_weight'] * (target != tokens[:, :T]).float()
            ce = (ce * w).sum((2, 3)) / w.sum((2, 3))
        elif look_w is None:
            ce = ce.mean((2, 3))                                                        # (B, T)
        # with look_w (LATENT_LOOK_REST_WEIGHT, never with CHANGE_WEIGHT) the cells' weights in the TF and AR means
        part = lambda s: (ce[:, s].mean() if look_w is None else                     # noqa: E731
                          (ce[:, s] * look_w[:, s]).sum() / look_w[:, s].sum().clamp_min(1e-6))
        out['ce_tf'] = part(slice(0, tf_len))
        out['ce_ar'] = part(slice(tf_len, T)) if ar_len else ce.new_zeros(())
        loss = out['ce_tf'] + (knobs['ar_weight'] * out['ce_ar'] if ar_len else 0)
        if cfg.latent_dim:
            loss = loss + loss_latent

        # Gumbel-softmax losses on frames drawn at random EVERY step (v4.6.4's fixed period made the
        # model sharp on every 5th frame only), half TF half AR when there is an AR tail. One noise
        # draw serves both: its hard sample for the semantic loss, its soft sample for LPIPS.
        n_sem = knobs['semantic_frames'] if knobs['semantic_weight'] > 0 else 0
        n_lp = knobs['lpips_frames'] if knobs['lpips_weight'] > 0 else 0
        n = min(max(n_sem, n_lp), T)
        if n:
            pos = window_positions(n, tf_len, T, tokens.device)
            soft = gumbel_softmax(logits[:, pos], knobs['tau'], dim=2)       # (B, n, K, H, W)
            code_vecs = vq.quantizer.embed.float()                               # (K, D)
        if n_sem:
            sel = pos[:n_sem]
            s_ = soft[:, :n_sem]
            hard = F.one_hot(s_.argmax(2), s_.shape[2]).movedim(-1, 2).to(s_.dtype) - s_.detach() + s_
            emb = torch.einsum('bnkhw,kd->bnhwd', hard, code_vecs)
            out['semantic'] = F.mse_loss(emb, code_vecs[target[:, sel]])
            loss = loss + knobs['semantic_weight'] * out['semantic']
        if n_lp:
            sel = pos[:n_lp]
            if cfg.latent_dim:   # what the model shows: its latent decoded, against the true latent decoded
                pred_rgb = vq.decoder(pred_lat[:, sel].flatten(0, 1))
                with torch.no_grad():
                    tgt_rgb = vq.decoder(latents[:, 1:T + 1][:, sel].flatten(0, 1).float())
            else:
                pred_rgb = vq.decode_soft(soft[:, :n_lp].flatten(0, 1))
                with torch.no_grad():  # targets decoded once, without grad
                    tgt_rgb = vq.decode_code(target[:, sel].flatten(0, 1))
            d = lp(pred_rgb * 2 - 1, tgt_rgb * 2 - 1).view(B, len(sel))
            moving = (actions[:, sel, A.KEYS_SLICE].abs().sum(-1) > 0).float()
            w = 1 + (knobs['move_boost'] - 1) * moving
            out['lpips'] = (d * w).sum() / w.sum()
            is_ar = sel >= tf_len
            out['lpips_tf'] = d[:, ~is_ar].mean().detach()
            out['lpips_ar'] = d[:, is_ar].mean().detach() if is_ar.any() else d.new_zeros(())
            out['movement_active'] = moving.mean()
            loss = loss + knobs['lpips_weight'] * out['lpips']

        # inverse dynamics over a random span k: (h_{t-k}, h_t) -> actions t-k+1 .. t
        if knobs['idm_weight'] > 0 and cfg.use_idm:
            k = int(torch.randint(1, min(knobs['idm_span'], T - 1) + 1, ()).item())
            t = int(torch.randint(k, T, ()).item())
            logits_idm = model.idm(top[:, t - k], top[:, t], k)
            out['idm'], parts = idm_loss(logits_idm, actions[:, t - k + 1:t + 1])
            loss = loss + knobs['idm_weight'] * out['idm']

        # entropy bonus (early training only) and diagnostics (on logging steps only)
        if knobs['entropy_weight'] > 0:
            ent = -(logp.exp() * logp).sum(2).mean()
            loss = loss - knobs['entropy_weight'] * ent
            out['entropy'] = ent.detach()
        if knobs['diagnostics']:
            with torch.no_grad():
                if 'entropy' not in out:
                    out['entropy'] = -(logp.exp() * logp).sum(2).mean()
                pred = logits.argmax(2)
                out['confidence'] = logp.max(2).values.exp().mean()
                out['token_acc_tf'] = (pred[:, :tf_len] == target[:, :tf_len]).float().mean()
                if ar_len:
                    out['token_acc_ar'] = (pred[:, tf_len:] == target[:, tf_len:]).float().mean()
                out['unique_pred'] = unique_codes_per_frame(pred[:, -max(1, ar_len):])
                out['unique_gt'] = unique_codes_per_frame(target[:, -max(1, ar_len):])
        out['loss'] = loss
        return loss, out, logits.detach()


# ------------------------------------------------------------------ checkpoints
def checkpoint_paths(out_dir):
    """Checkpoints of a run folder, oldest first."""
    if not os.path.isdir(out_dir):
        return []
    names = [f for f in os.listdir(out_dir) if f.startswith('ckpt_') and f.endswith('.pt')]
    return [os.path.join(out_dir, f) for f in sorted(names, key=lambda f: int(f[5:-3].split('_')[0]))]


def save_checkpoint(out_dir, model, optimizer, scaler, step, curriculum, cfg, extra):
    milestone = MILESTONE_STEPS and step % MILESTONE_STEPS == 0
    path = os.path.join(out_dir, f"ckpt_{step:07d}{'_milestone' if milestone else ''}.pt")
    save_world_model(path, model, extra=dict(
        step=step, optimizer=optimizer.state_dict(), scaler=scaler.state_dict() if scaler else None,
        curriculum=curriculum.state_dict(), train_config=cfg, rng=rng_state(), **extra))
    rolling = [p for p in checkpoint_paths(out_dir) if '_milestone' not in p]
    for old in rolling[:-KEEP_LAST]:
        os.remove(old)
    return path


def rng_state():
    return dict(torch=torch.get_rng_state(), python=list(random.getstate()[1]),
                numpy=np.random.get_state()[1].tolist(),
                cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])


def set_rng_state(s):
    torch.set_rng_state(s['torch'])
    random.setstate((3, tuple(s['python']), None))
    np.random.set_state(('MT19937', np.array(s['numpy'], dtype=np.uint32), 624, 0, 0.0))
    if s['cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s['cuda'])


# ------------------------------------------------------------------ data
class StepBatchSampler(torch.utils.data.Sampler):
    """Batch of step s = a function of (seed, rank, s) alone, so a resumed run sees the same data.
    p: optional sampling probabilities of the n windows (action balancing); None = uniform."""

    def __init__(self, n, batch, seed, rank, start_step, max_steps, p=None):
        self.n, self.batch, self.seed, self.rank, self.start, self.max = n, batch, seed, rank, start_step, max_steps
        self.p = p

    def __iter__(self):
        for s in range(self.start, self.max):
            rng = np.random.default_rng([self.seed, self.rank, s])
            idx = rng.integers(0, self.n, self.batch) if self.p is None else rng.choice(self.n, self.batch, p=self.p)
            yield idx.tolist()

    def __len__(self):
        return max(0, self.max - self.start)


def window_means(per_transition, starts, frames):
    """Mean of a per-transition value over each window's frames - 1 transitions (start rows given)."""
    cs = np.concatenate([[0.0], np.cumsum(per_transition, dtype=np.float64)])
    starts = np.asarray(starts)
    return (cs[starts + frames - 1] - cs[starts]) / (frames - 1)


def train_camera_degrees(data_dir, manifest):
    """The train clips' recorded camera change per transition (yaw, pitch degrees per frame), from the raw
    actions preprocess keeps in each npz (the encoded actions only hold their bins)."""
    names = manifest.get('raw_action_names', [])
    if 'yaw_deg' not in names or 'pitch_deg' not in names:
        raise ValueError(f"{os.path.join(data_dir, 'manifest.json')}: raw_action_names {names} has no yaw_deg / "
                         "pitch_deg; WARP_CALIBRATE needs them (re-run preprocess.py)")
    iy, ip = names.index('yaw_deg'), names.index('pitch_deg')
    rows = []
    for c in manifest['clips']:
        if c['split'] == 'train':
            with np.load(os.path.join(data_dir, c['file'])) as z:
                rows.append(z['raw_actions'][:, [iy, ip]])
    if not rows:
        raise ValueError(f"{data_dir}: no train clips to calibrate the camera warp on")
    deg = np.concatenate(rows).astype(np.float64)
    return deg[:, 0], deg[:, 1]


def flow_target_error(flow, target, actions, flow_warp):
    """LATENT_FLOW_TARGET: the learned flow (B, T, 2, H, W) against the optical flow target (B, T, 3, H, W: dx, dy in
    cells, reliability) on walking transitions (a movement key down, the camera still: there the learned flow is the
    whole motion; a turn's is a residual beside the camera shift): mean squared error per cell and component,
    weighted by reliability. The target is clipped inside the flow's reach (flow_warp * tanh). 0, still in the
    graph, without a walk."""
    target = target.float()
    w = target[:, :, 2:] * walking_actions(actions)[..., None, None, None].float()      # (B, T, 1, H, W)
    lim = FLOW_REACH * flow_warp
    err = (flow.float() - target[:, :, :2].clamp(-lim, lim)).pow(2) * w
    return err.sum() / (2 * w.sum()).clamp(min=1.0)


def flow_blur(z):
    """The blur LATENT_FLOW_WEIGHT's loss compares through: a 3x3 box twice. A warp's gradient on a block
    texture points anywhere past a fraction of a cell; blurred, the basin is wider, and a warp no longer
    pays for blurring what does not move."""
    return F.avg_pool2d(F.avg_pool2d(z, 3, 1, 1, count_include_pad=False), 3, 1, 1, count_include_pad=False)


def model_overrides(c, vq):
    """The WorldModelConfig fields config c's own constants set on top of MODEL_OVERRIDES: WARP_FILL, KEY_HOLD_BINS
    (when > 0) and the LATENT* ones (none without LATENTS)."""
    out = dict(warp_fill=c['WARP_FILL'])
    if c['KEY_HOLD_BINS']:
        out['key_hold_bins'] = c['KEY_HOLD_BINS']
    if c['LATENTS']:
        out.update(latent_dim=vq.embedding_dim, latent_snap=c['LATENT_SNAP'],
                   latent_snap_moving=c['LATENT_SNAP_MOVING'], latent_carry=c['LATENT_CARRY'],
                   flow_warp=c['LATENT_FLOW'], flow_hidden=c['LATENT_FLOW_HIDDEN'], flow_gate=c['LATENT_FLOW_GATE'],
                   flow_keys=c['LATENT_FLOW_KEYS'], flow_key_hold=c['LATENT_FLOW_KEY_HOLD'],
                   flow_key_hold_pool=c['LATENT_FLOW_KEY_HOLD_POOL'], flow_walk_keys=c['LATENT_FLOW_WALK_KEYS'],
                   flow_keys_walk_only=c['LATENT_FLOW_KEYS_WALK_ONLY'], flow_look_off=c['LATENT_FLOW_LOOK_OFF'],
                   flow_mode=c['LATENT_FLOW_MODE'], flow_round=c['LATENT_FLOW_ROUND'],
                   flow_round_smooth=c['LATENT_FLOW_ROUND_SMOOTH'], fm_width=c['LATENT_FM'],
                   fm_steps=c['LATENT_FM_STEPS'], fm_temp=c['LATENT_FM_TEMP'], fm_gate=c['LATENT_FM_GATE'])
    return out


def latent_statistics(cache, starts, max_frames=2048):
    """Per-channel mean and std (D,) of the latents of up to max_frames train frames, spread evenly."""
    rows = np.unique(starts[np.linspace(0, len(starts) - 1, min(max_frames, len(starts))).astype(int)])
    z = torch.from_numpy(np.array(cache.latents[rows])).float()                  # (N, D, H, W)
    return z.mean((0, 2, 3)), z.std((0, 2, 3))


def window_probabilities(cache, starts, frames, power, isolated_share=0.0):
    """Sampling probabilities of windows (start rows, `frames` frames each), or None for uniform.
    BALANCE_ACTIONS=power: proportional to (mean balance weight of the window's transitions) ** power.
    ISOLATED_MOVES=isolated_share: that share of the draws goes to windows in proportion to how many
    of their transitions are isolated movement (actions.isolated_movement), the rest as before."""
    if not power and not isolated_share:
        return None
    if cache.action_dim != 15:
        raise ValueError(f"BALANCE_ACTIONS / ISOLATED_MOVES need the 15-D v5 action layout; {cache.dir} has "
                         f"{cache.action_dim}-D actions")
    n = len(starts)
    p = window_means(A.balance_weights(cache.actions), starts, frames) ** power if power else np.ones(n)
    p = p / p.sum()
    if isolated_share:
        iso = window_means(A.isolated_movement(cache.actions), starts, frames)
        if iso.sum() == 0:
            raise ValueError(f"ISOLATED_MOVES={isolated_share}: no training window of {cache.dir} has a movement "
                             "key down with the camera still")
        p = (1 - isolated_share) * p + isolated_share * iso / iso.sum()
    return p


def time_reverse(tokens, actions, latents, share):
    """TIME_REVERSE: play `share` of the batch's reversible windows (actions.time_reversible on every transition)
    backwards. tokens (B, F, H, W), actions (B, F - 1, 15) with action t driving frame t -> t + 1, latents
    (B, F, D, H, W) or None. Frame t of a reversed window is frame F - 1 - t; its action t is the mirror
    (actions.V5_TIME_REVERSED) of the one that drove frame F - 2 - t -> F - 1 - t."""
    if not share:
        return tokens, actions, latents
    ok = A.time_reversible(actions).all(1)
    flip = ok & (torch.rand(len(ok)).to(ok.device) < share)
    perm = torch.tensor(A.V5_TIME_REVERSED, device=actions.device)

    def pick(x, rev):
        return torch.where(flip.view(-1, *[1] * (x.dim() - 1)), rev, x)
    tokens = pick(tokens, tokens.flip(1))
    actions = pick(actions, actions.flip(1)[..., perm])
    latents = pick(latents, latents.flip(1)) if latents is not None else None
    return tokens, actions, latents


# ------------------------------------------------------------------ images
def save_png(path, rows):
    """rows: list of (N, 3, H, W) float tensors in [0, 1] -> one PNG grid (row per entry)."""
    import cv2
    grid = torch.cat([torch.cat(list(r.clamp(0, 1)), dim=2) for r in rows], dim=1)
    img = (grid.permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    img = cv2.resize(img, (img.shape[1] * 2, img.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    tmp = path + '.tmp.png'
    cv2.imwrite(tmp, img[..., ::-1])
    os.replace(tmp, path)
    return path


def action_rollout_sheet(model, vq, tokens, edges, steps=30, show=6):
    """30-step rollouts from one frame under turn left / turn right / forward / idle."""
    names = ('turn_left', 'turn_right', 'forward', 'idle')
    acts = torch.stack([torch.from_numpy(A.preset_actions(n, steps, edges=edges)) for n in names]).to(tokens.device)
    ctx = tokens[:1, :1].expand(len(names), 1, *tokens.shape[-2:])
    gen, _ = rollout(model, ctx, acts[:, :0], acts)
    idx = torch.linspace(0, steps - 1, show).long()
    return [decode_tokens(vq, gen[i, idx]) for i in range(len(names))], names


# ------------------------------------------------------------------ validation
@torch.no_grad()
def validate(model, vq, cache, edges, device, windows, seq_len, amp):
    """TF cross-entropy / token accuracy, AR accuracy and PSNR at 1/5/10, action response at 1/5/10."""
    from perceptual import psnr
    was_training = model.training
    model.eval()
    horizon, ctx_len = 10, 4
    frames = max(seq_len + 1, ctx_len + horizon)
    starts = cache.window_starts('val', frames)
    if len(starts) == 0:
        starts = cache.window_starts('train', frames)  # tiny datasets: better than nothing, logged as such
    pick = starts[np.linspace(0, len(starts) - 1, min(windows, len(starts))).astype(int)]
    tok, act = zip(*(cache.window(int(s), frames) for s in pick))
    tok, act = torch.stack(tok).to(device), torch.stack(act).to(device)
    lat = (torch.stack([cache.latent_window(int(s), frames) for s in pick]).to(device).float()
           if model.config.latent_dim else None)
    # the keys' hold counts the windows start with (key_hold_bins; else a plain fresh state)
    start = model.init_state(len(pick), device, held=(torch.from_numpy(cache.held_before[pick])
                                                      if model.config.key_hold_bins else None))
    m = {}
    with amp:
        logits, _ = model(tok[:, :seq_len], act[:, :seq_len], start, latents=None if lat is None else lat[:, :seq_len],
                          sample=False)   # the CE of the mean's distance logits; the rollouts below sample (fm_width)
    m['val/ce_tf'] = F.cross_entropy(logits.flatten(0, 1).float(), tok[:, 1:seq_len + 1].flatten(0, 1)).item()
    m['val/token_acc_tf'] = (logits.argmax(2) == tok[:, 1:seq_len + 1]).float().mean().item()
    with amp:
        gen, _ = rollout(model, tok[:, :ctx_len], act[:, :ctx_len - 1], act[:, ctx_len - 1:], steps=horizon,
                         state=start, context_latents=None if lat is None else lat[:, :ctx_len])
    truth = tok[:, ctx_len:ctx_len + horizon]
    for h in (1, 5, 10):
        m[f'val/ar_token_acc_{h}'] = (gen[:, h - 1] == truth[:, h - 1]).float().mean().item()
        m[f'val/ar_psnr_{h}'] = psnr(decode_tokens(vq, gen[:, h - 1]), decode_tokens(vq, truth[:, h - 1])).mean().item()
    # action response: how far rollouts under different actions move from the idle rollout
    names = ('turn_left', 'turn_right', 'forward', 'idle')
    n = min(4, len(tok))
    outs = {}
    for name in names:
        a = torch.from_numpy(A.preset_actions(name, horizon, edges=edges)).to(device)
        with amp:
            outs[name], _ = rollout(model, tok[:n, :ctx_len], act[:n, :ctx_len - 1], a.expand(n, -1, -1),
                                    context_latents=None if lat is None else lat[:n, :ctx_len])
    for h in (1, 5, 10):
        idle = decode_tokens(vq, outs['idle'][:, h - 1])
        diffs = [(decode_tokens(vq, outs[k][:, h - 1]) - idle).abs().mean().item() for k in names[:-1]]
        m[f'val/action_response_{h}'] = float(np.mean(diffs))
    model.train(was_training)
    return m


# ------------------------------------------------------------------ main
def main(argv):
    g = globals()
    cfg = apply_config(g, argv)
    import torch.distributed as dist
    ddp = int(os.environ.get('WORLD_SIZE', '1')) > 1
    rank, local_rank, world = 0, 0, 1
    if DEVICE == 'auto':
        device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    else:
        device = torch.device(DEVICE)
    if ddp:
        rank, local_rank, world = int(os.environ['RANK']), int(os.environ['LOCAL_RANK']), int(os.environ['WORLD_SIZE'])
        if device.type == 'cuda':
            device = torch.device('cuda', local_rank)
            torch.cuda.set_device(device)
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    master = rank == 0
    log = print if master else (lambda *a, **k: None)
    log(format_config(cfg))
    if CPU_THREADS:
        torch.set_num_threads(CPU_THREADS)
    torch.manual_seed(SEED + rank)
    random.seed(SEED + rank)
    np.random.seed(SEED + rank)
    if device.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    amp = autocast(device, DTYPE)
    scaler = torch.amp.GradScaler('cuda') if amp_dtype(device, DTYPE) == torch.float16 else None

    # data
    cache = TokenCache(DATA_DIR) if master or not ddp else None
    if ddp:
        dist.barrier()  # rank 0 builds the cache once
        cache = cache or TokenCache(DATA_DIR)
    frames = SEQ_LEN + (AR_MAX_LEN if AR_CURRICULUM else 0) + 1
    train_set = WindowDataset(cache, 'train', frames, latents=LATENTS, held=KEY_HOLD_BINS > 0,
                              flow=LATENT_FLOW_TARGET > 0)
    window_p = window_probabilities(cache, train_set.starts, frames, BALANCE_ACTIONS, ISOLATED_MOVES)
    if TIME_REVERSE:
        if cache.action_dim != 15:
            raise ValueError(f"TIME_REVERSE needs the 15-D v5 action layout; {cache.dir} has {cache.action_dim}-D")
        if KEY_HOLD_BINS:   # how long a key has been held does not run backwards with the frames
            raise ValueError("TIME_REVERSE with KEY_HOLD_BINS is not supported")
        if LATENT_FLOW_TARGET:   # nor does the flow target (it would have to be reversed and re-measured)
            raise ValueError("TIME_REVERSE with LATENT_FLOW_TARGET is not supported")
        whole = window_means(~A.time_reversible(cache.actions), train_set.starts, frames) == 0
        log(f"TIME_REVERSE={TIME_REVERSE}: {whole.mean():.0%} "
            f"of the train windows have no jump or sprint and can be played backwards")
    if LATENT_FLOW_WALK_KEYS and not (LATENT_FLOW_TARGET or LATENT_FLOW_WALK_FIT):
        raise ValueError("LATENT_FLOW_WALK_KEYS: the keys' fields that move a walk learn from LATENT_FLOW_TARGET alone: "
                         "it needs LATENT_FLOW_TARGET > 0 (or the fields fitted: LATENT_FLOW_WALK_FIT)")
    if LATENT_FLOW_WALK_FIT and not LATENT_FLOW_WALK_KEYS:
        raise ValueError("LATENT_FLOW_WALK_FIT fits the fields that move a walk: it needs LATENT_FLOW_WALK_KEYS")
    if LATENT_FLOW_TARGET and not LATENT_FLOW:
        raise ValueError(f"LATENT_FLOW_TARGET={LATENT_FLOW_TARGET} teaches the learned flow: it needs LATENT_FLOW > 0")
    with open(os.path.join(DATA_DIR, 'manifest.json')) as f:
        manifest = json.load(f)
    edges = A.edges_from_manifest(manifest)

    # models
    from vqvae import load_vqvae
    from perceptual import build_lpips
    vq = load_vqvae(VQVAE_CKPT, device)
    for p in vq.parameters():
        p.requires_grad_(False)
    lp = build_lpips(device) if LPIPS_WEIGHT > 0 else None
    overrides = dict(MODEL_OVERRIDES)
    overrides.setdefault('codebook_size', vq.codebook_size)
    overrides.setdefault('action_dim', cache.action_dim)
    if IDM_WEIGHT == 0:
        overrides['use_idm'] = False  # no dead parameters for DDP to wait on
    if LATENTS:
        if cache.latent_dim != vq.embedding_dim:
            raise ValueError(f"LATENTS: {DATA_DIR} has latents of {cache.latent_dim} channels, the VQ-VAE's codes "
                             f"{vq.embedding_dim} (run preprocess.py --latents with {VQVAE_CKPT})")
    elif (LATENT_FLOW or LATENT_FLOW_HIDDEN or LATENT_FLOW_GATE or LATENT_FLOW_KEYS or LATENT_FLOW_KEY_HOLD
          or LATENT_FLOW_KEY_HOLD_POOL or LATENT_FLOW_WALK_KEYS or LATENT_FLOW_KEYS_WALK_ONLY or LATENT_FLOW_LOOK_OFF
          or LATENT_FLOW_ROUND or LATENT_FLOW_ROUND_SMOOTH):
        raise ValueError("LATENT_FLOW* move the input latent: they need LATENTS=True")
    elif LATENT_FM:
        raise ValueError(f"LATENT_FM={LATENT_FM} samples the next latent: it needs LATENTS=True")
    elif LATENT_CARRY:
        raise ValueError(f"LATENT_CARRY={LATENT_CARRY} carries what the latent snap took off: it needs LATENTS=True")
    if LATENT_FM and LATENT_FM_WEIGHT <= 0:   # the head learns from its loss alone (and DDP waits on every parameter)
        raise ValueError(f"LATENT_FM={LATENT_FM} with LATENT_FM_WEIGHT={LATENT_FM_WEIGHT}: the head would never learn")
    overrides.update(model_overrides(cfg, vq))
    if vq.codebook_size != overrides['codebook_size']:
        raise ValueError(f"MODEL_OVERRIDES codebook_size {overrides['codebook_size']} != VQ-VAE's {vq.codebook_size}")
    if WARP_CALIBRATE:
        yaw_deg, pitch_deg = train_camera_degrees(DATA_DIR, manifest)
        overrides['warp_yaw_shift'], overrides['warp_pitch_shift'] = A.camera_warp_shifts(
            yaw_deg, pitch_deg, edges, cache.grid[0], WARP_VFOV_DEG)
        overrides['warp_accumulate'] = True
        log(f"camera warp calibrated on {len(yaw_deg)} train transitions (cells per frame): "
            f"yaw bins {overrides['warp_yaw_shift']}, pitch bins {overrides['warp_pitch_shift']}")
    mcfg = PRESETS[MODEL_PRESET](**overrides)
    if AR_FEEDBACK == 'commit' and mcfg.warp_accumulate:  # the AR tail does not track the warp offset per step
        raise ValueError("AR_FEEDBACK='commit' with an accumulated camera warp (WARP_CALIBRATE) is not supported")
    if LATENT_LOOK_REST_WEIGHT != 1.0 and (not LATENTS or LATENT_LOOK_REST_WEIGHT < 0 or CHANGE_WEIGHT > 0
                                           or mcfg.camera_warp != 'input' or mcfg.action_dim != V5_ACTION_DIM):
        raise ValueError(f"LATENT_LOOK_REST_WEIGHT={LATENT_LOOK_REST_WEIGHT} weighs a look's cells by the rows the "
                         f"input camera warp uncovers: it needs LATENTS=True, the 15-D action layout, "
                         f"camera_warp='input', CHANGE_WEIGHT=0 and a weight >= 0")
    model = WorldModelConvFiLM(mcfg).to(device)
    if LATENTS:   # the code vectors and the training latents' per-channel statistics (resume reloads them)
        mean, std = latent_statistics(cache, train_set.starts)
        model.set_latent_space(vq.quantizer.embed.float(), mean.to(device), std.to(device))
    if LATENT_FLOW_WALK_FIT:   # fixed from the start (resume reloads the same values)
        from opticalflow import fit_walk_fields
        fields, n_walks = fit_walk_fields(cache, MOVEMENT_KEYS)
        model.set_key_fields(fields)
        model.key_flow.requires_grad_(False)
        size = ' '.join(f'{v:.3f}' for v in np.hypot(fields[:, 0], fields[:, 1]).mean((1, 2)))
        log(f"LATENT_FLOW_WALK_FIT: the keys' fields fitted to the optical flow of {n_walks} train walks and frozen "
            f"(mean |flow| of W A S D jump: {size} cells a step)")

    # optimiser: FiLM gets its own learning-rate multiplier
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]   # not the frozen ones
    film = [p for n, p in params if n.startswith('film')]
    flat = lambda n, p: p.dim() < 2 or n in ('key_flow', 'key_hold_flow')   # biases, norms, the keys' flow fields:
                                                                           # no decay
    decay = [p for n, p in params if not n.startswith('film') and not flat(n, p)]
    no_decay = [p for n, p in params if not n.startswith('film') and flat(n, p)]
    groups = [dict(params=decay, weight_decay=WEIGHT_DECAY, lr_mult=1.0),
              dict(params=no_decay, weight_decay=0.0, lr_mult=1.0),
              dict(params=film, weight_decay=WEIGHT_DECAY, lr_mult=FILM_LR_MULT)]
    optimizer = torch.optim.AdamW([g_ for g_ in groups if g_['params']], lr=LR, betas=(BETA1, BETA2),
                                  fused=device.type == 'cuda')
    curriculum = ARCurriculum(AR_CURRICULUM, AR_WARMUP_STEPS, AR_MIN_LEN, AR_MAX_LEN, AR_BRAKE,
                              AR_BRAKE_UPPER, AR_BRAKE_LOWER, UNIQUE_CODES_GATE, AR_RATIO_EMA)

    # resume
    step, wandb_id = 0, None
    os.makedirs(OUT_DIR, exist_ok=True)
    resume_path = (checkpoint_paths(OUT_DIR) or [None])[-1] if RESUME == 'auto' else (RESUME or None)
    if resume_path:
        _, ck = load_world_model(resume_path, map_location=device, weights_only=False)
        model.load_state_dict(ck['model'])
        optimizer.load_state_dict(ck['optimizer'])
        if scaler and ck.get('scaler'):
            scaler.load_state_dict(ck['scaler'])
        curriculum.load_state_dict(ck['curriculum'])
        step, wandb_id = ck['step'], ck.get('wandb_id')
        set_rng_state(ck['rng'])  # rank 0's; other ranks branch off it so their noise differs
        if rank:
            torch.manual_seed(SEED + rank + 1_000_003 * step)
        log(f"resumed from {resume_path} at step {step}")

    wrapped = WindowLoss(model, vq, lp)
    run_model = wrapped
    if COMPILE:
        run_model = torch.compile(wrapped)
    if ddp:
        run_model = torch.nn.parallel.DistributedDataParallel(
            run_model, device_ids=[local_rank] if device.type == 'cuda' else None)

    loader = torch.utils.data.DataLoader(
        train_set, batch_sampler=StepBatchSampler(len(train_set), BATCH_SIZE, SEED, rank, step, MAX_STEPS, window_p),
        num_workers=NUM_WORKERS, pin_memory=device.type == 'cuda', persistent_workers=False,
        generator=torch.Generator().manual_seed(SEED))  # its own generator: the global RNG stays reproducible

    # logging
    run = None
    metrics_path = os.path.join(OUT_DIR, 'metrics.jsonl')
    img_dir = os.path.join(OUT_DIR, 'images')
    if master:
        os.makedirs(img_dir, exist_ok=True)
        run = open_wandb(cfg, mcfg, wandb_id)
        wandb_id = run.id if run is not None and hasattr(run, 'id') else None
        log(f"model {MODEL_PRESET}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; "
            f"{len(train_set)} train windows of {frames} frames; device {device}; world {world}")

    stop = {'signal': None}

    def on_signal(signum, _frame):
        stop['signal'] = signum  # finish the step, checkpoint, leave
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    peak = PEAK_TFLOPS * 1e12 or (next((v for k, v in PEAKS.items() if k in torch.cuda.get_device_name(device)), 0)
                                  if device.type == 'cuda' else 0)
    flops_fwd = model.flops_per_step(BATCH_SIZE)
    t_start, started_at = time.time(), step
    sums, n_sum, bad, t_last = {}, 0, 0, time.time()
    timing = dict(data=0.0, forward=0.0, backward=0.0, optimizer=0.0)
    model.train()
    fp_start = fingerprint(model)
    data_iter = iter(loader)

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    def all_mean(d):
        if not ddp:
            return d
        keys = sorted(d)
        t = torch.tensor([float(d[k]) for k in keys], device=device)
        dist.all_reduce(t)
        return dict(zip(keys, (t / world).tolist()))

    last_ckpt = None
    while step < MAX_STEPS:
        t0 = time.time()
        try:
            tokens, actions, *rest = next(data_iter)
        except StopIteration:
            break
        latents = rest[0] if LATENTS else None
        flow_t = rest[int(LATENTS)] if LATENT_FLOW_TARGET else None
        held = rest[-1].to(device) if KEY_HOLD_BINS else None
        tokens, actions, latents = time_reverse(tokens, actions, latents, TIME_REVERSE)  # whole windows, on the host
        tokens, actions = tokens.to(device, non_blocking=True), actions.to(device, non_blocking=True)
        ar_len = curriculum.ar_len
        T = SEQ_LEN + ar_len
        tokens, actions = tokens[:, :T + 1], actions[:, :T]
        latents = latents[:, :T + 1].to(device, non_blocking=True).float() if latents is not None else None
        flow_t = flow_t[:, :T].to(device, non_blocking=True) if flow_t is not None else None
        timed = step % LOG_STEPS == 0
        if timed:
            sync()
        t1 = time.time()
        for grp in optimizer.param_groups:
            grp['lr'] = lr_at(step, LR, WARMUP_STEPS, MAX_STEPS, MIN_LR) * grp['lr_mult']
        knobs = make_knobs(cfg, step, diagnostics=(step + 1) % LOG_STEPS == 0 or step + 1 == MAX_STEPS)
        with amp:
            loss, out, logits = run_model(tokens, actions, ar_len, knobs, latents, held, flow_t)
        if timed:
            sync()
        t2 = time.time()
        finite = torch.isfinite(loss.detach())
        if ddp:
            finite = finite.float()
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if not bool(finite):
            bad += 1
            log(f"step {step}: non-finite loss ({loss.item()}), update skipped ({bad}/{MAX_BAD_STEPS})")
            write_metrics(metrics_path, run, step, {'train/nonfinite_loss': 1.0}) if master else None
            optimizer.zero_grad(set_to_none=True)
            if bad >= MAX_BAD_STEPS:
                log(f"{MAX_BAD_STEPS} non-finite losses in a row: stopping; last good checkpoint: {last_ckpt}")
                break
            step += 1
            continue
        bad = 0
        (scaler.scale(loss) if scaler else loss).backward()
        if timed:
            sync()
        t3 = time.time()
        if scaler:
            scaler.unscale_(optimizer)
        film_norm = grad_norm([p for n, p in model.named_parameters() if n.startswith('film')]) if timed else None
        dyn_norm = grad_norm([p for n, p in model.named_parameters() if n.startswith('cells')]) if timed else None
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if timed:
            sync()
        t4 = time.time()
        step += 1

        # accumulate metrics on the device; read them back only every LOG_STEPS
        out['grad_norm'] = gnorm
        for k, v in out.items():  # (sum, count): diagnostics exist on logging steps only
            total, count = sums.get(k, (0, 0))
            sums[k] = (total + v.detach().float(), count + 1)
        n_sum += 1
        if timed:
            for k, v in zip(timing, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                timing[k] = v * 1000
        if step % LOG_STEPS == 0 or step == MAX_STEPS:
            means = all_mean({k: (v / n).item() for k, (v, n) in sums.items()})
            curriculum.update(step, means.get('lpips_tf'), means.get('lpips_ar') if ar_len else None,
                              means.get('unique_pred'), means.get('unique_gt'))
            dt = time.time() - t_last
            sps = n_sum / dt
            m = {f'train/{k}': v for k, v in means.items()}
            m.update({'train/ar_len': ar_len, 'curriculum/next_ar_len': curriculum.ar_len,
                      'curriculum/lpips_ratio_ema': curriculum.ratio or 0.0,
                      'lr': optimizer.param_groups[0]['lr'], 'steps_per_sec': sps,
                      'samples_per_sec': sps * BATCH_SIZE * world,
                      'knobs/tau': knobs['tau'], 'knobs/corrupt': knobs['corrupt'],
                      'knobs/lpips_move_boost': knobs['move_boost'], 'knobs/entropy_weight': knobs['entropy_weight']})
            m.update({f'timing/{k}_ms': v for k, v in timing.items()})
            if film_norm is not None:
                m['grad/film_norm'], m['grad/dynamics_norm'] = film_norm, dyn_norm
            # forward + backward ~ 3x forward FLOPs, over every step of the window
            achieved = 3 * flops_fwd * (SEQ_LEN + ar_len) * sps * world
            m['tflops'] = achieved / 1e12
            if peak:
                m['mfu'] = achieved / (peak * world)
            if master:
                write_metrics(metrics_path, run, step, m)
                log(f"step {step} | loss {means['loss']:.4f} ce_tf {means['ce_tf']:.3f} ce_ar {means.get('ce_ar', 0):.3f} "
                    f"lpips {means.get('lpips', 0):.3f} ar_len {ar_len} | {sps:.2f} steps/s")
            sums, n_sum, t_last = {}, 0, time.time()
        if master and IMAGE_LOG_STEPS and step % IMAGE_LOG_STEPS == 0:
            log_images(model, vq, tokens, logits, edges, img_dir, step, run)
        if master and EVAL_STEPS and step % EVAL_STEPS == 0:
            write_metrics(metrics_path, run, step, validate(model, vq, cache, edges, device, EVAL_WINDOWS, SEQ_LEN, amp))
        leaving = (STOP_AFTER and step - started_at >= STOP_AFTER) or \
                  (TIME_LIMIT_MIN and time.time() - t_start > TIME_LIMIT_MIN * 60)
        flag = torch.tensor(float(stop['signal'] is not None or bool(leaving)), device=device)
        if ddp:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if master and (step % CKPT_STEPS == 0 or step == MAX_STEPS or flag.item()):
            last_ckpt = save_checkpoint(OUT_DIR, model, optimizer, scaler, step, curriculum, cfg,
                                        dict(wandb_id=wandb_id, edges=edges))
            log(f"saved {last_ckpt}")
        if flag.item():
            log(f"leaving at step {step}" + (f" on signal {stop['signal']}" if stop['signal'] else ''))
            break
    if ddp:  # are the ranks still in sync? (they must be: DDP averages every gradient)
        fp = fingerprint(model)
        hi, lo = fp.clone(), fp.clone()
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        if master:
            write_metrics(metrics_path, run, step, {'ddp/param_max_abs_diff': (hi - lo).abs().max().item(),
                                                    'ddp/param_change': (fp - fp_start).abs().sum().item(),
                                                    'ddp/world_size': world})
    if master and run is not None:
        run.finish()
    if ddp:
        dist.barrier()
        dist.destroy_process_group()
    return step


def fingerprint(model):
    """Per-parameter sums in float64: equal across ranks iff (almost surely) the parameters are."""
    return torch.stack([p.detach().double().sum() for p in model.parameters()])


def grad_norm(params):
    gs = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return torch.stack(gs).norm().item() if gs else 0.0


def open_wandb(cfg, mcfg, run_id):
    """wandb online when logged in, offline otherwise; WANDB_MODE=disabled turns it off."""
    try:
        import wandb
    except ImportError:
        return None
    mode = os.environ.get('WANDB_MODE')
    if mode is None:
        mode = 'online' if (os.environ.get('WANDB_API_KEY') or _wandb_logged_in()) else 'offline'
    return wandb.init(project=WANDB_PROJECT, name=WANDB_RUN_NAME or os.path.basename(OUT_DIR.rstrip('/')),
                      dir=OUT_DIR, mode=mode, id=run_id, resume='allow',
                      config=dict(train=cfg, model=mcfg.to_dict()))


def _wandb_logged_in():
    return os.path.isfile(os.path.expanduser('~/.netrc')) and 'api.wandb.ai' in open(os.path.expanduser('~/.netrc')).read()


def write_metrics(path, run, step, m):
    with open(path, 'a') as f:
        f.write(json.dumps({'step': step, 'time': time.time(), **m}) + '\n')
    if run is not None:
        run.log(m, step=step)


def log_images(model, vq, tokens, logits, edges, img_dir, step, run):
    was = model.training
    model.eval()
    with torch.no_grad():
        T = logits.shape[1]
        idx = torch.linspace(0, T - 1, min(8, T)).long()
        gt = decode_tokens(vq, tokens[0, 1:][idx])
        pred = decode_tokens(vq, logits[0].argmax(1)[idx])
        p1 = save_png(os.path.join(img_dir, f'gt_vs_pred_{step:07d}.png'), [gt, pred])
        rows, names = action_rollout_sheet(model, vq, tokens, edges)
        p2 = save_png(os.path.join(img_dir, f'action_rollouts_{step:07d}.png'), rows)
    model.train(was)
    if run is not None:
        import wandb
        run.log({'visuals/gt_vs_pred': wandb.Image(p1),
                 'visuals/action_rollout_30step': wandb.Image(p2, caption=' / '.join(names))}, step=step)


if __name__ == '__main__':
    main(sys.argv[1:])

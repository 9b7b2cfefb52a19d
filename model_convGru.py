"""Action-conditioned ConvGRU world model over VQ token grids (design v6.2).

One step reads the tokens of frame t (a 18x32 grid of codebook indices, or a probability map
over the codebook for soft feedback) and the action that drives frame t -> t+1, and returns
logits over the codebook for every cell of frame t+1.

    tokens_t --embed--> (camera warp) --1x1--> [FiLM -> ConvGRU] x N (residual every 2)
             --> top map --(causal temporal attention over pooled past top maps)--> 1x1 head

Mechanisms, each switchable in WorldModelConfig (a switched-off mechanism has no parameters):
  FiLM          per-layer gamma/beta from the action; separate camera and movement MLPs
  residual      every 2 GRU layers
  temporal attn the pooled top map attends to the last `temporal_context` pooled maps
  IDM head      idm(h_prev, h_cur, dt) -> logits of the action summed over the dt-step window
  camera warp   yaw/pitch bins shift the token embedding (or every hidden map) by whole cells
  zero-init head  logits are exactly zero at init
  coord channels / action planes  extra input planes: where a cell is, and the action, per cell
  copy gate     a per-cell logit (from the top map) added to the cell's current (warped) token
  latent I/O    (latent_dim > 0) read and predict the VQ-VAE's continuous pre-quantization latent instead
                of token ids: the prediction is the (warped) input latent plus a correction, and the
                logits over the codebook are minus half the squared distance to each code vector
  latent flow   (flow_warp > 0, latent models) a per-cell displacement predicted from the top map moves
                the input latent (bilinear) before the correction is added: a walk's depth-dependent,
                sub-cell motion moves content instead of being regressed (and averaged) by the head;
                flow_hidden moves the hidden maps by it too, flow_gate zeroes it on idle transitions
  key hold      (key_hold_bins > 0) the state counts how long each key has been down; the movement FiLM
                reads the count (a held jump rises, then falls)
  sampled latent (fm_width > 0, latent models) a small flow-matching head learns the distribution of the
                next latent around the head's mean prediction; in eval mode (rollouts, live play) the model
                feeds back mean + a sample instead of the mean, which is a smear wherever the future is uncertain
                (fm_gate: only on moving transitions)

Action layout (v5, 15-D, same as actions.py): [0:5] yaw one-hot (fast left, slow left, none,
slow right, fast right), [5:8] pitch one-hot (up, level, down), [8:12] W A S D, [12:15] jump
sprint sneak. Other action_dim (e.g. the 5-D v4 encoding) gets a single FiLM MLP and no warp.
"""
import math
import os
from dataclasses import asdict, dataclass, fields
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from atomicio import atomic_torch_save

# v5 action layout (kept in sync with actions.py by hand: this file must not depend on it)
V5_ACTION_DIM = 15
YAW_SLICE, PITCH_SLICE, KEYS_SLICE = slice(0, 5), slice(5, 8), slice(8, 15)
CAMERA_SLICE, MOVE_SLICE = slice(0, 8), slice(8, 15)
CAMERA_WARPS = ('input', 'hidden', 'none')
FLOW_MODES = ('bilinear', 'bicubic')


MOVEMENT_KEYS = (8, 9, 10, 11, 12)   # W, A, S, D and jump in the 15-D layout (actions.V5_NAMES)
FLOW_REACH = 0.95   # a flow target or fit is clipped to this share of flow_warp: the flow's tanh reaches 1 nowhere


def camera_still_keys_down(actions):
    """(..., 15) encoded v5 actions -> two (...) bools: the camera is still (yaw bin 2, pitch bin 6), and W, A, S, D
    or jump is down."""
    a = actions.float() > 0.5
    return a[..., 2] & a[..., 6], a[..., list(MOVEMENT_KEYS)].any(-1)


def moving_actions(actions):
    """(..., 15) encoded v5 actions -> (...) bool: the camera turns or looks, or W, A, S, D or jump is down."""
    still, keys = camera_still_keys_down(actions)
    return ~still | keys


def looking_actions(actions):
    """(..., 15) encoded v5 actions -> (...) bool: the pitch moves (look up or down)."""
    a = actions.float() > 0.5
    return a[..., PITCH_SLICE.start] | a[..., PITCH_SLICE.stop - 1]


def walking_actions(actions):
    """(..., 15) encoded v5 actions -> (...) bool: W, A, S, D or jump is down and the camera is still (in torch, on
    the device: actions.isolated_movement is the same on numpy arrays)."""
    still, keys = camera_still_keys_down(actions)
    return still & keys


def key_hold_counts(actions, held=None):
    """(B, T, 15) encoded v5 actions and the frames each key was already down before them, (B, 7) long or None
    (all up) -> (B, T, 7) long: after each step, how many frames in a row each key (W A S D jump sprint sneak)
    has been down, 0 when up."""
    down = actions[..., KEYS_SLICE].float() > 0.5
    c = torch.zeros(down.shape[0], down.shape[2], dtype=torch.long, device=down.device) if held is None else held
    out = []
    for t in range(down.shape[1]):   # T is a window (<= tens of steps): a loop over (B, 7) counters
        c = (c + 1) * down[:, t]
        out.append(c)
    return torch.stack(out, 1)


def key_hold_features(counts, bins):
    """(B, T, 7) hold counts -> (B, T, 7 * bins): per key a one-hot of frames held (1 .. bins, the last bin
    also longer), all zero while the key is up."""
    one = F.one_hot((counts - 1).clamp(0, bins - 1), bins) * (counts > 0)[..., None]
    return one.flatten(-2).float()


@dataclass
class WorldModelConfig:
    codebook_size: int = 1024
    embed_dim: int = 256
    hidden_dim: int = 512
    n_layers: int = 6
    height: int = 18
    width: int = 32
    action_dim: int = 15
    kernel_size: int = 3
    dilations: tuple = ()              # per-layer conv dilation; () means all 1
    # FiLM
    use_film: bool = True
    separate_film: bool = True         # camera and movement MLPs (needs the 15-D layout, else one MLP)
    film_dim: int = 256                # MLP width; the history used max(1024, 2*hidden), 256 keeps ~92M total
    film_clamp: tuple = (-5.0, 5.0)    # range for gamma and beta (v4.11: stops 1-frame flashes)
    # recurrence
    use_residual: bool = True
    # causal temporal attention over pooled top-layer maps
    use_temporal_attention: bool = True
    temporal_context: int = 8
    attn_dim: int = 256
    attn_heads: int = 4
    # inverse dynamics head
    use_idm: bool = True
    idm_max_span: int = 5
    idm_dim: int = 128
    idm_pool: tuple = (4, 8)
    idm_hidden: int = 512
    idm_dropout: float = 0.1
    # camera warp: content shift in cells per bin (+x = content moves right, +y = content moves down)
    camera_warp: str = 'input'         # 'input' (token embedding), 'hidden' (every hidden map), 'none'
    # extra input planes beside the token embedding (both off in v6.2)
    coord_channels: bool = False       # 2 fixed planes (x, y in [-1, 1]): convs alone cannot tell the centre
                                       # from the edge, but forward/back moves content away from/to the centre
    action_planes: bool = False        # the action vector broadcast over the grid: conditioning beyond
                                       # FiLM's per-channel scale and shift, mixed with position by the convs
    # copy gate: a learned per-cell logit added to the token the cell holds now (after the camera warp), so
    # "this cell stays" is one scalar the actions can lower, not an identity map through the hidden state
    copy_gate: bool = False
    # continuous latents (0 = off: token ids in, logits out, as v6.2). >0: the VQ-VAE's code-vector size. A
    # token says which code a cell is nearest, not where inside the cell the texture sits, so a walk's
    # sub-cell motion is invisible to a token model and its most likely next token is "unchanged"; the
    # pre-quantization latent keeps that phase. The model reads the latent map (normalised per channel by
    # latent_mean / latent_std, set from the data), predicts the next one as the warped input plus a
    # correction, and its logits are -1/2 the squared normalised distance to each code over a learned
    # temperature (argmax = the nearest code, so token metrics and decoders work unchanged). Tokens given
    # alone enter as their code vectors; a rollout feeds back the predicted latent (state.latent).
    latent_dim: int = 0
    latent_snap: float = 0.0           # a rollout feeds back its predicted latent moved this share of the way to
                                       # the codes of the tokens it decoded (rollout.snap_latent); 1 = the codes
    # the snap after a moving transition (camera or a movement key, 15-D layout), < 0: latent_snap. A snap drops
    # the sub-cell position a move left in the latent (experiments/warp_blur.py: 2.8 dB over 8 strafe steps),
    # but without it a moving rollout runs off within 4-8 steps (experiments z3r_..._mov0: keys -6 to -13 dB);
    # trained without it the flow learns a strafe's speed and the rollout holds it the tail's 8 steps (z5)
    latent_snap_moving: float = -1.0
    # snap carry (0 = off, 15-D layout): a rollout keeps this share of what the snap took off the fed-back latent
    # and adds it to the next step's input latent, moved with it by the camera shift and the learned flow, while a
    # move goes on (zero after an idle transition). The snap pulls a latent moved by part of a cell back to its old
    # codes, so a strafe of 0.2 cells a step is taken back every step; carried, the parts add up until the codes
    # flip (sigma-delta quantisation in time). The network still reads the snapped latent, so the error carried
    # with the motion adds up too (experiments zc: rolled out the picture runs off, trained the model stops moving)
    latent_carry: float = 0.0
    # learned flow (latent models only; 0 = off): the largest per-cell displacement, in cells a step, of a flow
    # (dx, dy) = flow_warp * tanh(3x3 conv of the top map), zero at init, that moves the (camera-warped) input
    # latent by bilinear sampling before the head's correction is added. The camera warp moves the whole
    # frame; a walk moves near things more than far ones and away from the centre, by less than a cell a
    # frame. A regression head can only blend such a motion (the mean of "moved" and "not moved" is a blur
    # that feeds back and drifts); a flow moves the content itself
    flow_warp: float = 0.0
    # the same flow also moves every hidden map after its step (so the next step's state sits where the content
    # went, as the camera warp 'hidden' does for the whole frame): the recurrent state can then carry a texture's
    # sub-cell position while the fed-back latent is snapped to codes. The flow is then read from the GRU's top
    # map inside the recurrence (before the temporal attention, which needs the whole window)
    flow_hidden: bool = False
    # the flow is zero on a transition with the camera still and no movement key down (15-D layout): the flow is
    # the view's own motion, and a small flow repeated on an idle world is a blur that grows (z0, experiments)
    flow_gate: bool = False
    # a learned field (2, H, W) per movement key (W, A, S, D, jump; 15-D layout), zero at init, added to the flow
    # head's output (inside its tanh) while the key is down: the key's own mean motion, on a direct path from the
    # key. Without it W and S get the same flow (z3r, one step from the val states: outward +0.040 / +0.038 cells):
    # the head reads the key only through FiLM and learns "a key is down", not which
    flow_keys: bool = False
    # with flow_keys and key_hold_bins, each key also gets a field per hold bin (frames held, as the FiLM reads it),
    # added to its own: a held jump lifts the view for ~4 frames, drops it, then bounces, so the key's one field
    # learns the mean of up and down (none). Through FiLM alone the flow followed the bounce at half its size and
    # the rollouts did not rise (z6, item 37); a field per phase is a direct path from the count to the motion.
    # Trained (zj, item 46) the fields took the bounce's shape at a sixth of its size and the model lost 3 columns
    flow_key_hold: bool = False
    # with flow_key_hold, each key's field per hold bin is one shift (2,) for the whole map instead of a field per
    # cell: a jump moves the whole view up then down, and a per-cell field learns from the few transitions a batch
    # holds in each bin, mostly noise per cell (zj's took the bounce's shape at a sixth of its size); one shift per
    # bin averages every cell's pull
    flow_key_hold_pool: bool = False
    # with flow_keys, on a walking transition (a movement key down, the camera still) the flow is the down keys'
    # fields alone, learned only from the pictures' own motion (train.py LATENT_FLOW_TARGET), not from the latent
    # losses: the geometry of a walk, not the latent's. Trained by the latents, the flow of a walk shrinks to what
    # the tokenizer's re-coding pays for (z3r / zk: S's flow -0.03 cells a step at the edges, the truth's -0.2), and
    # the rollouts, moved by whole cells, move their pictures about half the flow (item 44); the head still moves
    # turns and looks
    flow_walk_keys: bool = False
    # ... and a turn's or look's flow is the head's alone, the keys' fields not added while the camera moves: trained
    # with the fields at full size from step 1 (train.py LATENT_FLOW_WALK_FIT) the look down fell on two seeds (item
    # 48); trained so, it fell further (zo, one seed, item 49): adding the fields to a look's flow did not cost it
    flow_keys_walk_only: bool = False
    # how the flow samples between cells. Bilinear is a low-pass filter: a shift of a fraction of a cell a step,
    # repeated, blurs the picture step by step (a strafe is ~0.2-0.3 cells a frame); bicubic interpolation keeps
    # more of the detail each step (experiments/warp_blur.py measures both), at whole cells both are exact.
    # Trained, bicubic lost to bilinear (experiments z4)
    flow_mode: str = 'bilinear'
    # in a rollout (and the AR tail), on a transition with a movement key down and the camera still, the flow moves
    # the fed-back latent by whole cells: the step's flow plus the sub-cell remainder the last step left
    # (state.phase) rounded per cell, the new remainder kept (sigma-delta in space and time, as warp_accumulate
    # does for the camera). A strafe of 0.2 cells a step then moves a whole cell every 5 steps with nothing
    # resampled: the latent stays on its codes, the snap takes nothing back, and only geometry is carried, not
    # the head's error (what latent_carry carried). A turn or a look (moved by the camera warp; rounded, their
    # uneven residual flow tore the picture, z3r_..._round) and an idle step interpolate and clear the remainder.
    # Teacher-forced windows, whose input latents are true ones, keep the interpolated flow it learns from; no
    # gradient passes through a rounded flow (a straight-through one taught the strafe's flow the wrong way, zr)
    flow_round: bool = False
    # smoothing of the flow a rounded walk moves by (flow_round): 0 none, per cell; k > 0 its k x k box mean (cells
    # whose flows differ a little round alike, so the picture tears less); -1 one mean over the whole map (a rigid
    # shift of whole cells). Rounded per cell, an uneven flow moved neighbouring cells by different whole cells and
    # tore the picture (experiments item 41)
    flow_round_smooth: int = 0
    # with flow_round, a camera step (a turn or a look) moves its fed-back latent too, rigidly: the learned flow's
    # mean over the map (what the whole-cell camera warp over- or undershoots: a 3 deg look is 0.67 rows, the warp
    # moves 1, the flow takes back ~0.47) plus the remainder before it, rounded to whole cells, the rest kept; the
    # flow's uneven part is dropped (rounded per cell it tore the picture, item 41). Interpolated, that half-cell
    # correction is a blur the snap turns into new texture: a look down's ground is re-textured, not moved
    flow_round_camera: bool = False
    # on a look (the pitch moves) the learned flow is zero: the whole-row pitch warp alone moves the latent, a row a
    # frame where a 3 deg look moves the picture 0.67 rows. The flow's half-cell take-back of that row, interpolated,
    # is a blur the snap turns into new texture, and the look down's rollouts moved a third of the truth (item 45);
    # rounded with a remainder (flow_round_camera) every other pair stood still. This overshoots and moves every frame;
    # rolled out so (item 50) the IDM reads every look, but the rows the warp uncovers stay flat unless the model was
    # trained with it (then the head draws them, and the walks lost: zp). Off by default
    flow_look_off: bool = False
    # key hold (0 = off, 15-D layout): the state counts how many frames each key (W A S D jump sprint sneak) has
    # been down, and the movement FiLM also reads that count, one-hot in this many bins (the last: that many frames
    # or more). A held jump key lifts the view, then drops it, then bounces (blockworld's data hold it a median
    # 16 frames), so "jump is down" alone says up and down equally often and its mean motion is none (jump
    # followed 0.00 in every run); Minecraft's walk and sprint also build up speed over frames. A fresh state
    # counts from keys up; train.py starts each window's count from the clip's history
    key_hold_bins: int = 0
    # sampled latent (latent models; 0 = off): a conv net of this width that learns, by flow matching, the
    # distribution of the next latent minus the head's prediction, given the top map and that prediction. The
    # head regresses the mean of what the next latent can hold: where content moves by part of a cell or a walk
    # re-textures the ground the mean is a smear, and fed back the smear grows (experiments/README.md items
    # 34-37). In eval mode the model predicts mean + a sample instead: fm_steps Euler steps of the learned
    # velocity from Gaussian noise of std fm_temp (0: from zero, one deterministic output; 1: the learned spread);
    # fm_steps = 0: the mean, as without the head (evaluate.py --fm-steps 0 rolls out the same weights that way)
    fm_width: int = 0
    fm_steps: int = 8
    fm_temp: float = 1.0
    # sample only on a transition with the camera turning or a movement key down (15-D layout), the mean on idle
    # ones: blockworld's world is still unless the player moves, so what the model does not know about an idle
    # frame is not randomness, and sampled it is noise a rollout adds up (experiments fm0: idle -9 dB at 8 steps)
    fm_gate: bool = False
    warp_yaw_shift: tuple = (2, 1, 0, -1, -2)   # turning right moves content left
    warp_pitch_shift: tuple = (1, 0, -1)        # looking down moves content up
    # False: each step moves content by its bin's shift rounded to whole cells. True: the shifts are the
    # bins' mean motion in cells (fractional, e.g. train.py WARP_CALIBRATE) and each step moves content by
    # the change in the rounded running sum, carried in the state: a slow turn of 0.4 cells a frame moves
    # one cell every 2-3 frames instead of one every frame (the history's "camera snaps")
    warp_accumulate: bool = False
    # what fills the rows a pitch warp uncovers in the input ('input' warp): 'zero' (the mean latent / a zero
    # embedding: flat) or 'edge' (the border row repeated). A look down uncovers the bottom rows, ground the head must
    # paint from nothing; the ground goes on below the frame, so its last row is a better guess than flat
    warp_fill: str = 'zero'
    # output / runtime
    zero_init_head: bool = True
    grad_checkpoint: bool = False      # recompute each step's GRU stack in backward (training only)
    channels_last: bool = False

    def __post_init__(self):
        # checkpoints store tuples as lists; normalise so configs compare equal
        for name in ('dilations', 'film_clamp', 'idm_pool', 'warp_yaw_shift', 'warp_pitch_shift'):
            setattr(self, name, tuple(getattr(self, name)))
        if self.dilations and len(self.dilations) != self.n_layers:
            raise ValueError(f"dilations has {len(self.dilations)} entries for {self.n_layers} layers")
        if self.camera_warp not in CAMERA_WARPS:
            raise ValueError(f"camera_warp must be one of {CAMERA_WARPS}, got {self.camera_warp!r}")
        if self.camera_warp != 'none' and self.action_dim != V5_ACTION_DIM:
            raise ValueError(f"camera_warp={self.camera_warp!r} needs the 15-D v5 action layout (yaw/pitch "
                             f"one-hot bins) but action_dim={self.action_dim}; set camera_warp='none'")
        if self.warp_fill not in ('zero', 'edge'):
            raise ValueError(f"warp_fill must be 'zero' or 'edge', got {self.warp_fill!r}")
        if len(self.warp_yaw_shift) != 5 or len(self.warp_pitch_shift) != 3:
            raise ValueError("warp_yaw_shift needs 5 entries (one per yaw bin), warp_pitch_shift 3")
        if self.use_temporal_attention and (self.temporal_context < 1 or self.attn_dim % self.attn_heads):
            raise ValueError("temporal attention needs temporal_context >= 1 and attn_dim divisible by attn_heads")
        if self.film_clamp[0] >= self.film_clamp[1]:
            raise ValueError(f"film_clamp must be (low, high), got {self.film_clamp}")
        if self.latent_dim and self.copy_gate:
            raise ValueError("copy_gate adds a logit to token ids; with latent_dim > 0 the prediction already "
                             "starts from the current latent (set copy_gate=False)")
        if self.flow_warp < 0 or (self.flow_warp and not self.latent_dim):
            raise ValueError(f"flow_warp={self.flow_warp} moves the input latent: it needs latent_dim > 0 and "
                             f"a value >= 0 (0 = off)")
        if self.latent_snap_moving >= 0 and self.action_dim != V5_ACTION_DIM:
            raise ValueError(f"latent_snap_moving reads the camera bins and keys of the 15-D layout, not "
                             f"action_dim={self.action_dim}")
        if self.latent_snap_moving > 1:
            raise ValueError(f"latent_snap_moving={self.latent_snap_moving}: a share in [0, 1], or < 0 for latent_snap")
        if not 0 <= self.latent_carry <= 1 or (self.latent_carry and (not self.latent_dim
                                                                       or self.action_dim != V5_ACTION_DIM)):
            raise ValueError(f"latent_carry={self.latent_carry}: a share in [0, 1] of the snap's residual, carried "
                             f"while the 15-D layout's camera or keys move: it needs latent_dim > 0 and action_dim="
                             f"{V5_ACTION_DIM}")
        if self.flow_mode not in FLOW_MODES:
            raise ValueError(f"flow_mode must be one of {FLOW_MODES}, got {self.flow_mode!r}")
        if (self.flow_hidden or self.flow_gate or self.flow_mode != 'bilinear' or self.flow_round) and not self.flow_warp:
            raise ValueError("flow_hidden / flow_gate / flow_mode / flow_round act on the learned flow: they need "
                             "flow_warp > 0")
        if self.flow_keys and (not self.flow_warp or self.action_dim != V5_ACTION_DIM):
            raise ValueError(f"flow_keys adds a field per movement key of the 15-D layout to the learned flow: it "
                             f"needs flow_warp > 0 and action_dim={V5_ACTION_DIM} (got {self.action_dim})")
        if self.flow_key_hold and not (self.flow_keys and self.key_hold_bins):
            raise ValueError("flow_key_hold gives each key's flow field one per hold bin: it needs flow_keys and "
                             "key_hold_bins > 0")
        if self.flow_walk_keys and (not self.flow_keys or self.flow_key_hold):
            raise ValueError("flow_walk_keys moves a walk by the keys' own fields: it needs flow_keys (and not "
                             "flow_key_hold)")
        if self.flow_keys_walk_only and not self.flow_walk_keys:
            raise ValueError("flow_keys_walk_only keeps the keys' fields to walks: it needs flow_walk_keys")
        if self.flow_key_hold_pool and not self.flow_key_hold:
            raise ValueError("flow_key_hold_pool makes flow_key_hold's per-bin fields one shift each: it needs "
                             "flow_key_hold")
        if self.flow_round and (self.flow_hidden or self.action_dim != V5_ACTION_DIM):
            raise ValueError(f"flow_round moves the fed-back latent by whole cells while the 15-D layout's camera or "
                             f"keys move (action_dim={self.action_dim}); flow_hidden warps the hidden maps inside the "
                             f"recurrence, which it does not round: not both")
        if self.flow_round_camera and not self.flow_round:
            raise ValueError("flow_round_camera rounds a camera step's flow beside the walks': it needs flow_round")
        if self.flow_look_off and (not self.flow_warp or self.action_dim != V5_ACTION_DIM):
            raise ValueError(f"flow_look_off zeroes the learned flow on the 15-D layout's looks: it needs flow_warp > 0 "
                             f"and action_dim={V5_ACTION_DIM} (got {self.action_dim})")
        if self.flow_round_smooth and not self.flow_round:
            raise ValueError(f"flow_round_smooth={self.flow_round_smooth} smooths the rounded flow: it needs flow_round")
        if self.flow_round_smooth < -1 or (self.flow_round_smooth > 0 and self.flow_round_smooth % 2 == 0):
            raise ValueError(f"flow_round_smooth must be 0, -1 (the whole map) or an odd box size, "
                             f"got {self.flow_round_smooth}")
        if self.fm_width and not self.latent_dim:
            raise ValueError(f"fm_width={self.fm_width} samples a latent: it needs latent_dim > 0")
        if self.fm_width < 0 or self.fm_steps < 0 or self.fm_temp < 0:
            raise ValueError(f"fm_width={self.fm_width}, fm_steps={self.fm_steps}, fm_temp={self.fm_temp}: expected "
                             "all >= 0")
        if self.fm_gate and (not self.fm_width or self.action_dim != V5_ACTION_DIM):
            raise ValueError(f"fm_gate gates the flow-matching sample by the 15-D layout's camera bins and keys: it "
                             f"needs fm_width > 0 and action_dim={V5_ACTION_DIM}")
        if self.flow_gate and self.action_dim != V5_ACTION_DIM:
            raise ValueError(f"flow_gate reads the camera bins and keys of the 15-D layout, not action_dim={self.action_dim}")
        if self.key_hold_bins < 0 or (self.key_hold_bins and not self.film_split):
            raise ValueError(f"key_hold_bins={self.key_hold_bins} feeds the movement FiLM: it needs a value >= 0 (0 = "
                             f"off), use_film, separate_film and the 15-D layout")

    @property
    def layer_dilations(self):
        return self.dilations or (1,) * self.n_layers

    @property
    def in_channels(self):
        """Channels into in_proj: the token embedding plus the optional coordinate and action planes."""
        base = self.latent_dim or self.embed_dim
        return base + (2 if self.coord_channels else 0) + (self.action_dim if self.action_planes else 0)

    @property
    def film_split(self):
        """True when FiLM really runs as two pathways (the 15-D layout is needed to split the action)."""
        return self.use_film and self.separate_film and self.action_dim == V5_ACTION_DIM

    def to_dict(self):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown WorldModelConfig keys: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def demo(cls, codebook_size=512, **overrides):
        """A small model that steps in real time on a 2-core CPU."""
        d = dict(codebook_size=codebook_size, embed_dim=64, hidden_dim=128, n_layers=3, dilations=(1, 2, 1),
                 film_dim=128, attn_dim=64, attn_heads=2, idm_dim=64, idm_hidden=256)
        d.update(overrides)
        return cls(**d)


PRESETS = {'v6.2': WorldModelConfig, 'demo': WorldModelConfig.demo}   # name -> callable(**overrides) -> config


@dataclass
class WorldModelState:
    """Everything the model carries from one step to the next."""
    hidden: List[torch.Tensor]   # per GRU layer (B, C, H, W)
    buf: torch.Tensor            # (B, L, C) pooled top maps of the last L steps, newest last
    buf_len: torch.Tensor        # (B,) long: how many of the L slots are filled
    warp_offset: Optional[torch.Tensor] = None   # (B, 2) float32: the camera warp's sub-cell remainder
                                                 # (x, y), with warp_accumulate; None means zero
    latent: Optional[torch.Tensor] = None        # (B, D, H, W) the last step's predicted latent (latent_dim
                                                 # > 0), the next rollout step's input; None before any step
    held: Optional[torch.Tensor] = None          # (B, 7) long: frames each key has been down up to the last
                                                 # step (key_hold_bins > 0); None means all up
    carry: Optional[torch.Tensor] = None         # (B, D, H, W) raw: the share latent_carry of what a rollout's last
                                                 # snap took off (rollout.carry_out), added to the next step's
                                                 # moved input latent where it moves; None means zero
    phase: Optional[torch.Tensor] = None         # (B, 2, H, W) float32: the rounded flow's sub-cell remainder (dx, dy)
                                                 # per cell (flow_round); None: not a feedback step, the flow is
                                                 # interpolated (teacher forcing)

    @property
    def batch_size(self):
        return self.buf.shape[0]

    def _offset(self, f):
        return None if self.warp_offset is None else f(self.warp_offset)

    def _latent(self, f):
        return None if self.latent is None else f(self.latent)

    def _held(self, f):
        return None if self.held is None else f(self.held)

    def _carry(self, f):
        return None if self.carry is None else f(self.carry)

    def _phase(self, f):
        return None if self.phase is None else f(self.phase)

    def detach(self):
        return WorldModelState([h.detach() for h in self.hidden], self.buf.detach(), self.buf_len, self.warp_offset,
                               self._latent(torch.Tensor.detach), self.held, self._carry(torch.Tensor.detach),
                               self.phase)

    def __getitem__(self, idx):
        if isinstance(idx, int):  # keep the batch dimension
            idx = slice(idx, idx + 1) if idx != -1 else slice(-1, None)
        return WorldModelState([h[idx] for h in self.hidden], self.buf[idx], self.buf_len[idx],
                               self._offset(lambda o: o[idx]), self._latent(lambda z: z[idx]),
                               self._held(lambda k: k[idx]), self._carry(lambda r: r[idx]),
                               self._phase(lambda p: p[idx]))

    def to(self, device=None, dtype=None):
        """Move (and optionally cast the float maps); buf_len stays long, the warp offset and latent float32."""
        return WorldModelState([h.to(device, dtype) for h in self.hidden], self.buf.to(device, dtype),
                               self.buf_len.to(device), self._offset(lambda o: o.to(device)),
                               self._latent(lambda z: z.to(device)), self._held(lambda k: k.to(device)),
                               self._carry(lambda r: r.to(device)), self._phase(lambda p: p.to(device)))

    def reset(self, mask):
        """Fresh state for the samples where mask (B,) is True (e.g. a new clip started). A reset sample's
        latent is zeroed too: its next step must be given its frame (tokens or latents); its keys count as up."""
        keep = (~mask.bool()).to(self.buf.dtype)
        hidden = [h * keep.to(h.dtype).view(-1, 1, 1, 1) for h in self.hidden]
        return WorldModelState(hidden, self.buf * keep.view(-1, 1, 1), self.buf_len * (~mask.bool()).long(),
                               self._offset(lambda o: o * (~mask.bool()).to(o.dtype)[:, None]),
                               self._latent(lambda z: z * (~mask.bool()).to(z.dtype).view(-1, 1, 1, 1)),
                               self._held(lambda k: k * (~mask.bool()).long()[:, None]),
                               self._carry(lambda r: r * (~mask.bool()).to(r.dtype).view(-1, 1, 1, 1)),
                               self._phase(lambda p: p * (~mask.bool()).to(p.dtype).view(-1, 1, 1, 1)))


def shift_maps(x, dx, dy, fill='zero'):
    """Move the content of x (N, C, H, W) by dx[n] cells right (wraparound) and dy[n] cells down; the rows
    uncovered are zero (fill='zero') or the border row repeated (fill='edge')."""
    N, C, H, W = x.shape
    iw = (torch.arange(W, device=x.device) - dx[:, None]) % W     # out[.., w] = in[.., w - dx]
    x = x.gather(3, iw[:, None, None, :].expand(N, C, H, W))
    ih = torch.arange(H, device=x.device) - dy[:, None]           # out[.., h, :] = in[.., h - dy, :]
    valid = ((ih >= 0) & (ih < H)).to(x.dtype)
    x = x.gather(2, ih.clamp(0, H - 1)[:, None, :, None].expand(N, C, H, W))
    return x if fill == 'edge' else x * valid[:, None, :, None]


def warp_by_flow(x, flow, mode='bilinear'):
    """Move the content of x (N, C, H, W) by flow (N, 2, H, W) = (dx right, dy down) in cells: out[p] =
    x[p - flow[p]], interpolated (mode: 'bilinear' or 'bicubic'), the border cells repeated where the source
    falls off the map."""
    N, C, H, W = x.shape
    ys, xs = torch.meshgrid(torch.arange(H, device=x.device, dtype=flow.dtype),
                            torch.arange(W, device=x.device, dtype=flow.dtype), indexing='ij')
    gx = (xs - flow[:, 0]) * (2 / max(W - 1, 1)) - 1        # align_corners=True: -1 / 1 are the edge cells' centres
    gy = (ys - flow[:, 1]) * (2 / max(H - 1, 1)) - 1
    return F.grid_sample(x, torch.stack([gx, gy], -1), mode=mode, padding_mode='border', align_corners=True)


class ConvGRUCell(nn.Module):
    def __init__(self, in_ch, hid_ch, kernel_size=3, dilation=1):
        super().__init__()
        pad = dilation * (kernel_size // 2)
        # z and r from one fused conv (one kernel launch instead of two)
        self.gates = nn.Conv2d(in_ch + hid_ch, 2 * hid_ch, kernel_size, padding=pad, dilation=dilation)
        self.cand = nn.Conv2d(in_ch + hid_ch, hid_ch, kernel_size, padding=pad, dilation=dilation)

    def forward(self, x, h):
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, 1)
        n = torch.tanh(self.cand(torch.cat([x, r * h], 1)))
        return h + z * (n - h)


class FiLMNet(nn.Module):
    """Action (slice) -> gamma and beta deltas for every layer, shape (..., n_layers, 2, channels)."""

    def __init__(self, in_dim, width, n_layers, channels):
        super().__init__()
        self.n_layers, self.channels = n_layers, channels
        self.net = nn.Sequential(nn.Linear(in_dim, width), nn.SiLU(), nn.Linear(width, n_layers * 2 * channels))

    def forward(self, a):
        return self.net(a).view(*a.shape[:-1], self.n_layers, 2, self.channels)


class TemporalAttention(nn.Module):
    """Causal attention of each pooled top map over the last `context` pooled maps and itself.

    Position enters only as a learned bias on the attention logits per relative offset, never
    added to the values, so no absolute-position signal can leak into the output.
    The result FiLMs the top map (per channel), which feeds the head only: the GRU recurrence does
    not depend on it, so a whole window can be attended in parallel after the recurrent loop.
    """

    def __init__(self, dim, attn_dim, n_head, context, clamp):
        super().__init__()
        self.n_head, self.context, self.clamp = n_head, context, clamp
        self.ln = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, attn_dim)
        self.kv = nn.Linear(dim, 2 * attn_dim)
        self.proj = nn.Linear(attn_dim, 2 * dim)
        self.rel_bias = nn.Parameter(torch.zeros(n_head, context + 1))  # offset 0 = itself

    def forward(self, top, buf, buf_len):
        """top (B, T, C, H, W), buf (B, L, C), buf_len (B,) -> modulated top, new buf, new buf_len."""
        B, T, C = top.shape[:3]
        L, nh = self.context, self.n_head
        pooled = top.mean((3, 4))                                   # (B, T, C)
        keys_in = torch.cat([buf.to(pooled.dtype), pooled], 1)      # (B, L+T, C), oldest first
        q = self.q(self.ln(pooled)).view(B, T, nh, -1).transpose(1, 2)            # (B, nh, T, d)
        k, v = self.kv(self.ln(keys_in)).view(B, L + T, 2, nh, -1).permute(2, 0, 3, 1, 4)
        dev = top.device
        offs = (L + torch.arange(T, device=dev))[:, None] - torch.arange(L + T, device=dev)[None]  # (T, L+T)
        allowed = (offs >= 0) & (offs <= L)                         # causal, within the context window
        filled = torch.arange(L + T, device=dev)[None] >= (L - buf_len)[:, None]  # (B, L+T) empty slots off
        mask = allowed[None] & filled[:, None]                      # (B, T, L+T)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        att = att + self.rel_bias[:, offs.clamp(0, L)].to(att.dtype)
        att = att.masked_fill(~mask[:, None], float('-inf')).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, -1)
        gamma, beta = self.proj(y).view(B, T, 2, C).unbind(2)
        lo, hi = self.clamp
        gamma = (1 + gamma).clamp(lo, hi)[..., None, None]
        beta = beta.clamp(lo, hi)[..., None, None]
        return top * gamma + beta, keys_in[:, -L:], (buf_len + T).clamp(max=L)


class IDMHead(nn.Module):
    """Inverse dynamics: (h_{t-k}, h_t, k) -> logits of the action summed over the k-step window."""

    def __init__(self, cfg):
        super().__init__()
        C, d = cfg.hidden_dim, cfg.idm_dim
        self.max_span = cfg.idm_max_span
        self.compress = nn.Sequential(   # strided convs: 18x32 -> 9x16 -> 5x8 -> pooled
            nn.Conv2d(2 * C, d, 1), nn.SiLU(),
            nn.Conv2d(d, d, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(d, d, 3, stride=2, padding=1), nn.SiLU(),
            nn.AdaptiveAvgPool2d(cfg.idm_pool))
        self.fc1 = nn.Linear(d * cfg.idm_pool[0] * cfg.idm_pool[1], cfg.idm_hidden)
        self.dt_emb = nn.Embedding(cfg.idm_max_span + 1, cfg.idm_hidden)
        self.drop = nn.Dropout(cfg.idm_dropout)
        self.fc2 = nn.Linear(cfg.idm_hidden, cfg.action_dim)

    def forward(self, h_prev, h_cur, dt):
        B = h_cur.shape[0]
        if not torch.is_tensor(dt):
            if not 1 <= dt <= self.max_span:
                raise ValueError(f"dt={dt} outside the IDM span 1..{self.max_span}")
            dt = torch.full((B,), dt, dtype=torch.long, device=h_cur.device)
        f = self.compress(torch.cat([h_prev, h_cur], 1)).flatten(1)
        z = F.silu(self.fc1(f) + self.dt_emb(dt.long().to(h_cur.device)).to(f.dtype))
        return self.fc2(self.drop(z))


def idm_loss(logits, target, weights=(1.0, 1.0, 1.0)):
    """IDM loss for the 15-D layout: soft CE over the yaw and pitch bins, BCE for the 7 keys.

    target: (B, 15) actions summed over the window, or (B, k, 15) per-step actions (zero rows =
    padding). Targets are the share of window steps in each bin / with each key down.
    Returns (loss, {'yaw', 'pitch', 'keys'}) with the unweighted parts detached.
    """
    if logits.shape[-1] != V5_ACTION_DIM:
        raise ValueError(f"idm_loss needs the 15-D v5 layout, got {logits.shape[-1]}-D logits")
    if target.dim() == 3:
        target = target.sum(1)
    logits, target = logits.float(), target.float()
    k = target[:, YAW_SLICE].sum(-1, keepdim=True).clamp(min=1)    # steps in the window
    yaw = F.cross_entropy(logits[:, YAW_SLICE], target[:, YAW_SLICE] / k)
    pitch = F.cross_entropy(logits[:, PITCH_SLICE], target[:, PITCH_SLICE] / k)
    keys = F.binary_cross_entropy_with_logits(logits[:, KEYS_SLICE], (target[:, KEYS_SLICE] / k).clamp(0, 1))
    loss = weights[0] * yaw + weights[1] * pitch + weights[2] * keys
    return loss, {'yaw': yaw.detach(), 'pitch': pitch.detach(), 'keys': keys.detach()}


class FlowMatchingHead(nn.Module):
    """The velocity v(x_s, s | top map, mean prediction) of a straight path from Gaussian noise (s = 0) to the
    next latent minus the mean (s = 1), per cell but read through 3x3 convs so neighbouring cells agree (a
    per-cell sampler would pick each cell's texture alone). Trained by flow_matching_loss; float32."""

    def __init__(self, latent_dim, top_dim, width):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2 * latent_dim + top_dim + 1, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, latent_dim, 3, padding=1))

    def forward(self, x, s, top, mean):
        with torch.autocast(x.device.type, enabled=False):
            N, _, H, W = x.shape
            planes = s.float().view(N, 1, 1, 1).expand(N, 1, H, W)
            return self.net(torch.cat([x.float(), planes, top.float(), mean.float()], 1))


def flow_matching_loss(head, target, top, mean):
    """Conditional flow matching (rectified flow): x_s = (1 - s) noise + s (target - mean) at a uniform s per map;
    the head regresses the path's velocity (target - mean) - noise. target, mean (N, D, H, W) normalised latents."""
    r = (target - mean).float()
    z = torch.randn_like(r)
    s = torch.rand(r.shape[0], device=r.device)
    x = torch.lerp(z, r, s.view(-1, 1, 1, 1))
    return (head(x, s, top, mean) - (r - z)).pow(2).mean()


class WorldModelConvFiLM(nn.Module):

    def __init__(self, config: WorldModelConfig):
        super().__init__()
        cfg = self.config = config
        C = cfg.hidden_dim
        if cfg.latent_dim:   # the latent space: set from the VQ-VAE and the data by set_latent_space
            D = cfg.latent_dim
            self.register_buffer('codebook', torch.zeros(cfg.codebook_size, D))
            self.register_buffer('latent_mean', torch.zeros(D))
            self.register_buffer('latent_std', torch.ones(D))
            # the distance logits' temperature, learned: calibrates p(code) (commit decoding, CE) without
            # letting the CE's hinge-like pull towards the target code outweigh the latent regression
            self.latent_log_tau = nn.Parameter(torch.tensor(math.log(4.0)))
        else:
            self.embed = nn.Embedding(cfg.codebook_size, cfg.embed_dim)
        self.in_proj = nn.Conv2d(cfg.in_channels, C, 1)   # so every GRU layer (and residual) is C wide
        self.cells = nn.ModuleList(ConvGRUCell(C, C, cfg.kernel_size, d) for d in cfg.layer_dilations)
        if cfg.film_split:
            self.film_cam = FiLMNet(CAMERA_SLICE.stop - CAMERA_SLICE.start, cfg.film_dim, cfg.n_layers, C)
            n_keys = MOVE_SLICE.stop - MOVE_SLICE.start
            self.film_mov = FiLMNet(n_keys * (1 + cfg.key_hold_bins), cfg.film_dim, cfg.n_layers, C)
        elif cfg.use_film:
            self.film = FiLMNet(cfg.action_dim, cfg.film_dim, cfg.n_layers, C)
        if cfg.use_temporal_attention:
            self.temporal = TemporalAttention(C, cfg.attn_dim, cfg.attn_heads, cfg.temporal_context, cfg.film_clamp)
        if cfg.use_idm:
            self.idm_head = IDMHead(cfg)
        self.head = nn.Conv2d(C, cfg.latent_dim or cfg.codebook_size, 1)
        if cfg.flow_warp:   # zero at init: the prediction starts as the (camera-warped) input latent
            self.flow_head = nn.Conv2d(C, 2, 3, padding=1)
            nn.init.zeros_(self.flow_head.weight)
            nn.init.zeros_(self.flow_head.bias)
            if cfg.flow_keys:   # W, A, S, D, jump: each key's own field, zero at init
                self.key_flow = nn.Parameter(torch.zeros(len(MOVEMENT_KEYS), 2, cfg.height, cfg.width))
            if cfg.flow_key_hold:   # ... and one per frames held (one shift for the map with flow_key_hold_pool)
                size = (1, 1) if cfg.flow_key_hold_pool else (cfg.height, cfg.width)
                self.key_hold_flow = nn.Parameter(torch.zeros(len(MOVEMENT_KEYS) * cfg.key_hold_bins, 2, *size))
        if cfg.fm_width:
            self.fm_head = FlowMatchingHead(cfg.latent_dim, C, cfg.fm_width)
        if cfg.copy_gate:   # starts at p(current token) = 1/2 with the zero-init head
            self.copy_head = nn.Conv2d(C, 1, 1)
            nn.init.zeros_(self.copy_head.weight)
            nn.init.constant_(self.copy_head.bias, math.log(cfg.codebook_size - 1))
        if cfg.zero_init_head:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        if cfg.coord_channels:
            ys, xs = torch.meshgrid(torch.linspace(-1, 1, cfg.height), torch.linspace(-1, 1, cfg.width), indexing='ij')
            self.register_buffer('coords', torch.stack([xs, ys]), persistent=False)
        if cfg.camera_warp != 'none':
            self.register_buffer('yaw_shift', torch.tensor(cfg.warp_yaw_shift, dtype=torch.float32), persistent=False)
            self.register_buffer('pitch_shift', torch.tensor(cfg.warp_pitch_shift, dtype=torch.float32), persistent=False)
        if cfg.channels_last:
            self.to(memory_format=torch.channels_last)

    # ---- helpers ----

    def to_channels_last(self):
        self.config.channels_last = True
        return self.to(memory_format=torch.channels_last)

    def param_counts(self):
        """Parameters per top-level component, plus 'total'."""
        out = {}
        for name, p in self.named_parameters():
            key = name.split('.')[0]
            out[key] = out.get(key, 0) + p.numel()
        out['total'] = sum(out.values())
        return out

    def init_state(self, batch, device=None, dtype=None, held=None):
        """A fresh state; held (batch, 7) long: frames each key has already been down (key_hold_bins; None: up)."""
        cfg = self.config
        p = self.head.weight
        device, dtype = device or p.device, dtype or p.dtype
        L = cfg.temporal_context if cfg.use_temporal_attention else 0
        shape = (batch, cfg.hidden_dim, cfg.height, cfg.width)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        hidden = [torch.zeros(shape, device=device, dtype=dtype).contiguous(memory_format=fmt) for _ in self.cells]
        return WorldModelState(hidden, torch.zeros(batch, L, cfg.hidden_dim, device=device, dtype=dtype),
                               torch.zeros(batch, dtype=torch.long, device=device),
                               held=None if held is None else held.to(device=device, dtype=torch.long))

    @torch.no_grad()
    def set_latent_space(self, codebook, mean, std):
        """latent_dim > 0: the VQ-VAE's code vectors (K, D) and the per-channel mean / std (D,) of the
        training latents the model normalises by. Stored in the checkpoint with the weights."""
        self.codebook.copy_(codebook)
        self.latent_mean.copy_(mean)
        self.latent_std.copy_(std.clamp(min=1e-6))

    def normalise_latent(self, z):
        """(..., D, H, W) raw latents -> per-channel standardised."""
        return (z.float() - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]

    def raw_latent(self, u):
        return u.float() * self.latent_std[:, None, None] + self.latent_mean[:, None, None]

    def code_latents(self, tokens):
        """(..., H, W) token ids or (..., K, H, W) probabilities -> raw code vectors (..., D, H, W)."""
        if tokens.is_floating_point():
            return torch.einsum('...khw,kd->...dhw', tokens.float(), self.codebook)
        return self.codebook[tokens].movedim(-1, -3)

    def latent_logits(self, u):
        """Normalised latents (N, D, H, W) -> logits (N, K, H, W): -1/2 the squared distance to each code,
        over the learned temperature."""
        with torch.autocast(u.device.type, enabled=False):   # bf16 distances would flip near ties
            e = self.normalise_latent(self.codebook[:, :, None, None])[..., 0, 0]       # (K, D)
            u = u.float()
            d2 = (u.pow(2).sum(1, keepdim=True) - 2 * torch.einsum('ndhw,kd->nkhw', u, e)
                  + e.pow(2).sum(1)[None, :, None, None])
            return -0.5 * d2 / self.latent_log_tau.float().exp()

    def camera_shifts(self, actions, offset=None):
        """(B, T, 15) actions -> integer content shifts dx, dy (B, T) in cells (zero camera blocks give 0)
        and the warp offset after the last step (B, 2) (None without warp_accumulate). offset (B, 2) is the
        state's sub-cell remainder before the first step (None: zero)."""
        a = actions.float()
        s = torch.stack([a[..., YAW_SLICE] @ self.yaw_shift.float(), a[..., PITCH_SLICE] @ self.pitch_shift.float()], -1)
        if not self.config.warp_accumulate:
            s = s.round().long()
            return s[..., 0], s[..., 1], None
        # exact integer arithmetic in 1/1000 cells, so a window and the same steps one by one (float sums
        # associate differently) always agree on when the next whole cell is reached
        q = 1000
        s = (s * q).round().long()
        start = s.new_zeros(s.shape[0], 2) if offset is None else (offset.float() * q).round().long()
        cum = start[:, None] + s.cumsum(1)                          # (B, T, 2) content moved so far
        before = torch.cat([start[:, None], cum[:, :-1]], 1)
        cells = lambda v: torch.div(v + q // 2, q, rounding_mode='floor')   # nearest whole cell, halves up
        d = cells(cum) - cells(before)
        return d[..., 0], d[..., 1], (cum[:, -1] - cells(cum[:, -1]) * q).float() / q

    def embed_tokens(self, tokens, actions, shifts=None, latents=None):
        """tokens (B,T,H,W) long or (B,T,K,H,W) probs -> (B,T,E(+planes),H,W), warped when camera_warp='input'
        (by shifts = camera_shifts(...)'s (dx, dy), computed from the actions alone when None). With
        latent_dim > 0 the map is the normalised latent: `latents` (B,T,D,H,W) raw, else the tokens' codes."""
        if self.config.latent_dim:
            x = self.normalise_latent(latents if latents is not None else self.code_latents(tokens))
        elif tokens.is_floating_point():   # soft feedback: expected embedding under the predicted distribution
            x = torch.einsum('btkhw,ke->btehw', tokens.to(self.embed.weight.dtype), self.embed.weight)
        else:
            x = self.embed(tokens).permute(0, 1, 4, 2, 3)
        x = x.to(self.in_proj.weight.dtype)
        cfg = self.config
        B, T, _, H, W = x.shape
        if cfg.camera_warp == 'input':
            dx, dy = shifts[:2] if shifts is not None else self.camera_shifts(actions)[:2]
            x = shift_maps(x.flatten(0, 1), dx.flatten(), dy.flatten(), cfg.warp_fill).view(B, T, *x.shape[2:])
        planes = [x]
        if cfg.coord_channels:   # after the warp: they say where a cell is on screen, which never moves
            planes.append(self.coords.to(x.dtype).expand(B, T, 2, H, W))
        if cfg.action_planes:
            planes.append(actions.to(x.dtype)[..., None, None].expand(B, T, cfg.action_dim, H, W))
        return torch.cat(planes, 2) if len(planes) > 1 else x

    def copy_source(self, tokens, actions, shifts=None):
        """What each cell holds now, moved by the camera warp like the embedding: (B,T,H,W) long token ids
        and a (B,T,H,W) mask (0 where the pitch warp filled a row), or for soft tokens the warped (B,T,K,H,W)
        probabilities (zero-filled rows sum to 0) and None. shifts as in embed_tokens."""
        cfg = self.config
        if cfg.camera_warp != 'input':
            return (tokens, None if tokens.is_floating_point() else torch.ones_like(tokens, dtype=torch.float32))
        dx, dy = shifts[:2] if shifts is not None else self.camera_shifts(actions)[:2]
        dx, dy = dx.flatten(), dy.flatten()
        if tokens.is_floating_point():
            return shift_maps(tokens.flatten(0, 1), dx, dy).view_as(tokens), None
        B, T, H, W = tokens.shape
        ids = torch.stack([tokens.float(), torch.ones_like(tokens, dtype=torch.float32)], 2).flatten(0, 1)
        ids, valid = shift_maps(ids, dx, dy).view(B, T, 2, H, W).unbind(2)   # ids < 2**24: exact in float32
        return ids.round().long(), valid

    def add_copy_logit(self, logits, top, tokens, actions, shifts=None):
        """logits (B,T,K,H,W) + copy_head(top) on each cell's current token (or its probabilities)."""
        B, T = logits.shape[:2]
        gate = self.copy_head(top.flatten(0, 1)).view(B, T, 1, *logits.shape[-2:])
        src, valid = self.copy_source(tokens, actions, shifts)
        if valid is None:
            return logits + gate * src.to(logits.dtype)
        return logits.scatter_add(2, src[:, :, None], (gate * valid[:, :, None].to(gate.dtype)).to(logits.dtype))

    def film_params(self, actions, held=None):
        """(B,T,A) -> gamma, beta of shape (B,T,n_layers,C), clamped; (None, None) without FiLM. held (B,T,7):
        key_hold_counts of the actions (key_hold_bins > 0)."""
        cfg = self.config
        if not cfg.use_film:
            return None, None
        if cfg.film_split:
            mov = actions[..., MOVE_SLICE]
            if cfg.key_hold_bins:
                mov = torch.cat([mov, key_hold_features(held, cfg.key_hold_bins).to(mov.dtype)], -1)
            p = self.film_cam(actions[..., CAMERA_SLICE]) + self.film_mov(mov)
        else:
            p = self.film(actions)
        lo, hi = cfg.film_clamp
        return (1 + p[..., 0, :]).clamp(lo, hi), p[..., 1, :].clamp(lo, hi)

    def _step_layers(self, x, gamma, beta, dx, dy, *hidden):
        """One time step through the GRU stack. Returns (top map, *new hidden maps)."""
        cfg = self.config
        new_hidden, skip = [], x
        for i, cell in enumerate(self.cells):
            h = hidden[i]
            if cfg.camera_warp == 'hidden':
                h = shift_maps(h, dx, dy)
            if gamma is not None:
                x = x * gamma[:, i, :, None, None] + beta[:, i, :, None, None]
            h = cell(x, h)
            new_hidden.append(h)
            x = h
            if cfg.use_residual and i % 2 == 1:
                x = x + skip
                skip = x
        return (x, *new_hidden)

    # ---- the model ----

    def forward(self, tokens, actions, state=None, return_hidden=False, latents=None, return_latent=False,
                return_flow=False, sample=None):
        """Teacher-forced window. tokens (B,T,H,W) long or (B,T,K,H,W) probs, actions (B,T,A):
        action t drives frame t -> t+1. Returns logits (B,T,K,H,W) (position t predicts frame t+1),
        the final state, with return_hidden the top map per step (B,T,C,H,W) for the IDM, and with
        return_latent (latent_dim > 0) the predicted raw latents (B,T,D,H,W), and with return_flow (flow_warp >
        0) the learned flow (B,T,2,H,W) and the normalised input latent it moved, before the correction
        (B,T,D,H,W). latents (B,T,D,H,W): the frames' raw pre-quantization latents, read
        instead of the tokens' code vectors (latent_dim > 0). sample (fm_width > 0): predict the mean plus a
        sample of the flow-matching head (latents and logits alike); None: in eval mode only."""
        cfg = self.config
        B, T = tokens.shape[:2]
        if actions is None:
            raise ValueError("actions are required (FiLM and the camera warp read them)")
        if actions.shape != (B, T, cfg.action_dim):
            raise ValueError(f"actions must be {(B, T, cfg.action_dim)}, got {tuple(actions.shape)}")
        if tokens.shape[-2:] != (cfg.height, cfg.width):
            raise ValueError(f"tokens must end in ({cfg.height}, {cfg.width}), got {tuple(tokens.shape)}")
        if state is None:
            state = self.init_state(B, tokens.device)
        elif state.batch_size != B:
            raise ValueError(f"state holds batch {state.batch_size}, tokens batch {B}")
        actions = actions.to(self.head.weight.dtype)

        # everything that does not depend on the recurrence, for the whole window at once
        shifts = self.camera_shifts(actions, state.warp_offset) if cfg.camera_warp != 'none' else None
        if latents is not None and not cfg.latent_dim:
            raise ValueError("latents given to a token model (latent_dim=0)")
        if return_latent and not cfg.latent_dim:
            raise ValueError("return_latent needs a latent model (latent_dim > 0)")
        if return_flow and not cfg.flow_warp:
            raise ValueError("return_flow needs a flow model (flow_warp > 0)")
        x_in = self.embed_tokens(tokens, actions, shifts, latents)
        x = self.in_proj(x_in.flatten(0, 1))
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = x.view(B, T, *x.shape[1:])
        held = key_hold_counts(actions, state.held) if cfg.key_hold_bins else None
        gamma, beta = self.film_params(actions, held)
        dx, dy = shifts[:2] if cfg.camera_warp == 'hidden' else (None, None)

        rounding = cfg.flow_round and state.phase is not None   # a feedback step: whole-cell flow (flow_round)
        moving = None   # (B, T, 1, 1, 1): 1 where the camera turns or a movement key (W A S D jump) is down
        if cfg.flow_gate or cfg.fm_gate or state.carry is not None:
            moving = moving_actions(actions).float()[..., None, None, None]
        flow_mask = moving if cfg.flow_gate else None
        if cfg.flow_look_off:   # a look is moved by the pitch warp alone
            still_pitch = (~looking_actions(actions)).float()[..., None, None, None]
            flow_mask = still_pitch if flow_mask is None else flow_mask * still_pitch
        hidden, tops, flows = list(state.hidden), [], []
        for t in range(T):
            args = (x[:, t], None if gamma is None else gamma[:, t], None if beta is None else beta[:, t],
                    None if dx is None else dx[:, t], None if dy is None else dy[:, t], *hidden)
            if cfg.grad_checkpoint and self.training and torch.is_grad_enabled():
                out = checkpoint(self._step_layers, *args, use_reentrant=False)
            else:
                out = self._step_layers(*args)
            tops.append(out[0])
            hidden = list(out[1:])
            if cfg.flow_hidden:   # the state follows the content to where the next frame has it
                flows.append(self.flow(out[0], None if flow_mask is None else flow_mask[:, t], actions[:, t],
                                       None if held is None else held[:, t]))
                fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
                hidden = [warp_by_flow(h.float(), flows[-1], cfg.flow_mode).to(h.dtype).contiguous(memory_format=fmt)
                          for h in hidden]
        top = torch.stack(tops, 1)

        buf, buf_len = state.buf, state.buf_len
        if cfg.use_temporal_attention:
            top, buf, buf_len = self.temporal(top, buf, buf_len)
        logits = self.head(top.flatten(0, 1))
        pred = flow = phase = None
        if cfg.latent_dim:   # the next latent = the (warped) current one + the head's correction
            u = x_in[:, :, :cfg.latent_dim].float()
            if state.carry is not None:   # latent_carry: what the last snap took off, moved as the input was
                r = state.carry.float() / self.latent_std[:, None, None]
                if cfg.camera_warp == 'input':
                    r = shift_maps(r, shifts[0][:, 0], shifts[1][:, 0])
                r = r * moving[:, 0]
                u = torch.cat([u[:, :1] + r[:, None], u[:, 1:]], 1)
            u = u.flatten(0, 1)
            if cfg.flow_warp:
                flow = (torch.stack(flows, 1).flatten(0, 1) if flows else
                        self.flow(top.flatten(0, 1), None if flow_mask is None else flow_mask.flatten(0, 1),
                                  actions.flatten(0, 1), None if held is None else held.flatten(0, 1)))
                if rounding:
                    still, keys = (m[..., None, None, None] for m in camera_still_keys_down(actions))
                    flow, phase = self.round_flow(flow.view(B, T, *flow.shape[1:]), state.phase, still & keys,
                                                  cfg.flow_round_smooth, ~still if cfg.flow_round_camera else None)
                u = warp_by_flow(u, flow, cfg.flow_mode)
                moved = u
            u = u + logits.float()
            if cfg.fm_width and cfg.fm_steps and (not self.training if sample is None else sample):
                x = self.fm_sample(top.flatten(0, 1), u)
                u = u + (x * moving.flatten(0, 1) if cfg.fm_gate else x)
            pred = self.raw_latent(u).view(B, T, *u.shape[1:])
            logits = self.latent_logits(u)
        logits = logits.view(B, T, *logits.shape[1:])
        if cfg.copy_gate:
            logits = self.add_copy_logit(logits, top, tokens, actions, shifts)
        new_state = WorldModelState(hidden, buf, buf_len, shifts[2] if shifts is not None else None,
                                    None if pred is None else pred[:, -1], None if held is None else held[:, -1],
                                    phase=phase)
        out = (logits, new_state) + ((top,) if return_hidden else ()) + ((pred,) if return_latent else ())
        if return_flow:
            out = out + (flow.view(B, T, *flow.shape[1:]), moved.view(B, T, *moved.shape[1:]))
        return out

    @staticmethod
    def round_flow(flow, phase, walking, smooth=0, camera=None):
        """flow (B, T, 2, H, W) -> the flow (B*T, 2, H, W) feedback steps move their latents by, and the sub-cell
        remainder (B, 2, H, W) left after the last (flow_round): on a walking step (walking (B, T, 1, 1, 1) true: a
        movement key down, the camera still) the flow plus the remainder before it rounded per cell, the rest
        kept; on any other step the flow itself, and no remainder. No gradient passes through a rounded flow: a
        straight-through one (the bilinear warp's one-sided slope at a whole cell) taught the strafe's flow the
        wrong way, -0.83 cells a step (experiments zr); the flow learns from the interpolated steps. smooth
        (flow_round_smooth): a walk's flow is first averaged over a smooth x smooth box of cells (-1: the map).
        camera (B, T, 1, 1, 1) bool or None (flow_round_camera): on those steps the flow's mean over the map is
        rounded the same way, a rigid whole-cell move with its remainder kept, and the rest of the flow dropped."""
        out = []
        for t in range(flow.shape[1]):
            f = flow[:, t]
            if smooth < 0:
                f = f.mean((2, 3), keepdim=True).expand_as(f)
            elif smooth > 1:
                f = F.avg_pool2d(f, smooth, 1, smooth // 2, count_include_pad=False)
            rounded = walking[:, t]
            if camera is not None:
                f = torch.where(camera[:, t], flow[:, t].mean((2, 3), keepdim=True).expand_as(f), f)
                rounded = rounded | camera[:, t]
            total = torch.where(rounded, f, flow[:, t]) + phase
            whole = torch.where(rounded, torch.round(total.detach()), flow[:, t])
            out.append(whole)
            phase = (total - whole).detach() * rounded
        return torch.stack(out, 1).flatten(0, 1), phase

    def flow(self, top, moving=None, actions=None, held=None):
        """Top maps (N, C, H, W) -> the learned flow (N, 2, H, W) in cells (flow_warp > 0), float32; times
        moving (N, 1, 1, 1), the flow_gate mask, when given. actions (N, A): the step's actions (flow_keys);
        held (N, 7): key_hold_counts after the step (flow_key_hold)."""
        cfg = self.config
        with torch.autocast(top.device.type, enabled=False):   # sub-cell positions: bf16 has 3 digits
            f = self.flow_head(top.float())
            if cfg.flow_keys:
                fields = self.key_fields(actions)
                if not cfg.flow_keys_walk_only:   # else a moving camera's flow is the head's alone
                    f = f + fields
                if cfg.flow_walk_keys:   # the latent losses do not reach the fields (walk_flow teaches them)
                    walk = walking_actions(actions)[:, None, None, None]
                    f = torch.where(walk, fields.detach(), f)
            if cfg.flow_key_hold:   # the one-hot of frames held is all zero while a key is up
                one = key_hold_features(held[:, :len(MOVEMENT_KEYS)], cfg.key_hold_bins)
                f = f + torch.einsum('nk,kchw->nchw', one, self.key_hold_flow)
            f = cfg.flow_warp * torch.tanh(f)
        return f if moving is None else f * moving

    def key_fields(self, actions):
        """(..., A) actions -> (..., 2, H, W) float32: the sum of the down movement keys' fields (flow_keys), before
        the flow's tanh."""
        return torch.einsum('...k,kchw->...chw', actions[..., list(MOVEMENT_KEYS)].float(), self.key_flow)

    def walk_flow(self, actions):
        """(..., A) actions -> (..., 2, H, W) float32: the down movement keys' own fields, flow_warp * tanh of their
        sum; with flow_walk_keys the flow of a walking transition, and the path its target loss teaches."""
        return self.config.flow_warp * torch.tanh(self.key_fields(actions))

    @torch.no_grad()
    def set_key_fields(self, flow):
        """Set the keys' fields (flow_keys) so that each key alone moves as flow (K, 2, H, W) in cells a step
        (opticalflow.fit_walk_fields), clipped inside the tanh's reach as the flow target is."""
        warp = self.config.flow_warp
        flow = torch.as_tensor(flow, dtype=torch.float32, device=self.key_flow.device)
        self.key_flow.copy_(torch.atanh(flow.clamp(-FLOW_REACH * warp, FLOW_REACH * warp) / warp))

    def fm_sample(self, top, mean, steps=None, temp=None):
        """A sample (N, D, H, W) of the next latent minus the mean prediction mean (N, D, H, W, normalised), given
        the top maps (N, C, H, W): Euler steps of the flow-matching head's velocity from noise of std temp."""
        cfg = self.config
        steps, temp = steps or cfg.fm_steps or 1, cfg.fm_temp if temp is None else temp
        x = temp * torch.randn_like(mean)
        for k in range(steps):
            x = x + self.fm_head(x, mean.new_full((mean.shape[0],), k / steps), top, mean) / steps
        return x

    def step(self, tokens_t, action_t, state, return_hidden=False, latent_t=None):
        """One frame: tokens_t (B,H,W) long or (B,K,H,W) probs, action_t (B,A) -> logits (B,K,H,W)
        for frame t+1 and the new state (and the top map (B,C,H,W) with return_hidden). latent_t
        (B,D,H,W): the frame's raw latent (latent_dim > 0; e.g. state.latent, the last prediction)."""
        if action_t is None:
            raise ValueError("action_t is required (FiLM and the camera warp read it)")
        out = self.forward(tokens_t.unsqueeze(1), action_t.unsqueeze(1), state, return_hidden,
                           latents=None if latent_t is None else latent_t.unsqueeze(1))
        return (out[0][:, 0], out[1], out[2][:, 0]) if return_hidden else (out[0][:, 0], out[1])

    def idm(self, h_prev, h_cur, dt):
        """Action logits (B, action_dim) for the window between top maps h_prev (t-dt) and h_cur (t)."""
        if not self.config.use_idm:
            raise RuntimeError("this model was built with use_idm=False")
        return self.idm_head(h_prev, h_cur, dt)

    def flops_per_step(self, batch=1):
        """Analytic FLOPs (2 x multiply-accumulates) of one `step` with hard tokens; elementwise ops,
        the warp and the embedding lookup are not counted. The IDM is not part of a step, nor the
        flow-matching sampler (fm_width: eval mode only)."""
        cfg = self.config
        C, HW, k2 = cfg.hidden_dim, cfg.height * cfg.width, cfg.kernel_size ** 2
        macs = cfg.in_channels * C * HW                             # in_proj
        macs += cfg.n_layers * k2 * (2 * C) * (3 * C) * HW          # fused gates + candidate
        macs += C * (cfg.latent_dim or cfg.codebook_size) * HW      # head
        macs += cfg.latent_dim * cfg.codebook_size * HW             # latent: distances to the codes
        macs += C * HW if cfg.copy_gate else 0                      # copy gate
        macs += 9 * C * 2 * HW if cfg.flow_warp else 0              # flow head
        if cfg.use_film:
            ins = [8, 7] if cfg.film_split else [cfg.action_dim]
            macs += sum(i * cfg.film_dim + cfg.film_dim * cfg.n_layers * 2 * C for i in ins)
        if cfg.use_temporal_attention:
            L, d = cfg.temporal_context, cfg.attn_dim
            macs += C * d + (L + 1) * C * 2 * d + 2 * (L + 1) * d + d * 2 * C
        return 2 * macs * batch


def _unwrap(model):
    model = getattr(model, '_orig_mod', model)   # torch.compile
    return getattr(model, 'module', model)       # DDP


def save_world_model(path, model, extra=None):
    """Atomically write {'config', 'model', **extra}: a crash mid-write never leaves a torn file."""
    model = _unwrap(model)
    extra = dict(extra or {})
    if {'config', 'model'} & set(extra):
        raise ValueError("extra must not use the keys 'config' or 'model'")
    ckpt = {'config': model.config.to_dict(), 'model': model.state_dict(), **extra}
    atomic_torch_save(ckpt, path)


def load_world_model(path, map_location='cpu', weights_only=True):
    """Rebuild the model from the file alone. Returns (model, checkpoint dict)."""
    ckpt = torch.load(path, map_location=map_location, weights_only=weights_only)
    model = WorldModelConvFiLM(WorldModelConfig.from_dict(ckpt['config']))
    model.load_state_dict(ckpt['model'])
    if isinstance(map_location, (str, torch.device)):
        model = model.to(map_location)
    return model, ckpt

"""Rolling a world model forward: token sampling and open-loop rollouts.

One implementation for every caller (training's validation and images, inference.py,
live_inference.py, evaluate.py), so what training measures is what play shows.
"""
from dataclasses import replace

import torch
import torch.nn.functional as F

from model_convGru import moving_actions


def amp_dtype(device, dtype='bf16'):
    """The autocast dtype a DTYPE setting gives on `device`, or None for fp32: bf16/fp16 on CUDA; bf16 on
    a CPU with native bf16 (AMX / AVX512-BF16, ~1.4x on the demo training step), else None."""
    dt = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'fp32': None}[dtype]
    if device.type == 'cpu' and dt is not None:
        dt = torch.bfloat16 if dt == torch.bfloat16 and torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    return dt


def autocast(device, dtype='bf16'):
    """The autocast context for amp_dtype(device, dtype); disabled when that is fp32."""
    dt = amp_dtype(device, dtype)
    return torch.autocast(device.type, dtype=dt or torch.float32, enabled=dt is not None)


# rollout settings kept in model.config
ROLLOUT_OPTIONS = ('warp_fill', 'latent_carry', 'flow_round', 'flow_round_smooth', 'flow_round_camera',
                   'flow_look_off', 'fm_steps', 'fm_temp', 'fm_gate')


def set_rollout_options(model, source, **options):
    """Override rollout settings the model keeps in its config (None leaves the model's own, as trained), each
    checked against what the checkpoint `source` has. ValueError names the option and the checkpoint."""
    cfg = model.config
    for name, v in options.items():
        if name not in ROLLOUT_OPTIONS:
            raise ValueError(f"unknown rollout option {name!r} (one of {', '.join(ROLLOUT_OPTIONS)})")
        if v is None:
            continue
        flag = '--' + name.replace('_', '-')
        if name == 'latent_carry' and not cfg.latent_dim:
            raise ValueError(f"{flag}: {source} is a token model (latent_dim=0)")
        if name.startswith('flow_round') and not cfg.flow_warp:
            raise ValueError(f"{flag}: {source} has no learned flow (flow_warp=0)")
        if name.startswith('fm_') and not cfg.fm_width:
            raise ValueError(f"{flag}: {source} has no flow-matching head (fm_width=0)")
        setattr(cfg, name, bool(v) if isinstance(getattr(cfg, name), bool) else v)   # a 0 / 1 flag for a switch
    try:
        type(cfg).from_dict(cfg.to_dict())   # the overridden config checked as a new one is
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None


SAMPLING_MODES = ('greedy', 'commit', 'commit_sample', 'sample')
COMMIT_MODES = ('commit', 'commit_sample')   # modes that need the tokens the cells hold now
CHANGE_THRESHOLD = 0.5   # 'commit': a cell changes when the model gives its current token less than this


def sample_tokens(logits, mode='greedy', temperature=1.0, top_k=0, top_p=1.0, generator=None, stay=None,
                  stay_valid=None, change_threshold=CHANGE_THRESHOLD):
    """logits (B, K, H, W) -> tokens (B, H, W) long.

    mode 'greedy' takes the argmax; 'sample' draws from softmax(logits / temperature), optionally
    restricted to the top_k codes and/or the smallest set with probability mass >= top_p.
    'commit' (needs stay: the (B, H, W) tokens the cells hold now, camera-warped) first decides per cell
    whether it changes (the current token's probability below change_threshold), then takes the most likely
    *other* token there. Greedy keeps a cell whenever no single new token beats staying, so a walk whose
    change is spread over many codes renders as a still frame; 'commit' shows it, and a cell the model
    is sure stays (idle) still stays. stay_valid (B, H, W) 0 marks cells that hold no token (plain argmax).
    'commit_sample' draws the change instead (a cell changes with probability 1 - p(current token)), then
    takes the most likely other token: the frame changes at the model's rate, so a change the model
    spreads over several steps (sub-cell motion, p(change) ~0.3 a step) is shown, not always or never.
    """
    if mode in COMMIT_MODES:
        if stay is None:
            raise ValueError(f"sampling mode {mode!r} needs the tokens the cells hold now (stay)")
        z = logits.float()
        held = z.gather(1, stay[:, None])
        p_stay = z.log_softmax(1).gather(1, stay[:, None]).exp()
        if mode == 'commit':
            move = p_stay < change_threshold
        else:
            move = torch.rand(p_stay.shape, generator=generator, device=p_stay.device) >= p_stay
        if stay_valid is not None:
            move &= stay_valid[:, None] > 0
        return z.scatter(1, stay[:, None], held.masked_fill(move, float('-inf'))).argmax(1)
    if mode == 'greedy' or temperature <= 0:
        return logits.argmax(1)
    if mode != 'sample':
        raise ValueError(f"unknown sampling mode {mode!r} ({' | '.join(SAMPLING_MODES)})")
    B, K, H, W = logits.shape
    z = (logits.float() / temperature).permute(0, 2, 3, 1).reshape(-1, K)
    if top_k and top_k < K:
        kth = z.topk(top_k, dim=-1).values[:, -1:]
        z = z.masked_fill(z < kth, float('-inf'))
    if top_p < 1.0:
        sz, si = z.sort(dim=-1, descending=True)
        cum = sz.softmax(-1).cumsum(-1)
        drop = cum - sz.softmax(-1) >= top_p  # keep the first code that crosses top_p
        sz = sz.masked_fill(drop, float('-inf'))
        z = torch.full_like(z, float('-inf')).scatter(-1, si, sz)
    probs = z.softmax(-1)
    idx = torch.multinomial(probs, 1, generator=generator)
    return idx.view(B, H, W)


def held_tokens(model, cur, action, warp_offset=None):
    """What each cell holds going into a step, camera-warped as that step warps it: (B, H, W) tokens and a
    (B, H, W) mask (0 where the pitch warp filled a row). warp_offset: the state's offset *before* the step."""
    shifts = model.camera_shifts(action[:, None], warp_offset) if model.config.camera_warp != 'none' else None
    stay, valid = model.copy_source(cur[:, None], action[:, None], shifts)
    return stay[:, 0], valid[:, 0]


def next_tokens(model, logits, cur, action, sampling=None, generator=None, warp_offset=None, held=None):
    """The tokens of the next frame from a step's logits (B, K, H, W), given the frame that went in (cur
    (B, H, W)) and its action (B, A): sample_tokens, with the cells' warped current tokens for 'commit'
    (held_tokens(...), computed here when not given)."""
    sampling = dict(sampling or {})
    if sampling.get('mode') in COMMIT_MODES:
        stay, valid = held or held_tokens(model, cur, action, warp_offset)
        sampling.update(stay=stay, stay_valid=valid)
    return sample_tokens(logits, generator=generator, **sampling)


DISPLAY_MODES = ('tokens', 'soft', 'soft_changed', 'latent')


def display_frames(vq, logits, tokens, held=None, mode='tokens', latent=None):
    """What a rollout step shows: (B, 3, 4H, 4W) floats in [0, 1]. The fed-back tokens are not changed.

    'tokens' decodes the tokens. 'soft' decodes the expected code vector under the step's distribution
    (what training's LPIPS scores): a change spread over many codes (a walk's sub-cell motion) shows as a
    blend instead of one guess or no change. 'soft_changed' does that only on the cells whose token
    changed from the one held (held_tokens), so a cell that stays keeps its crisp code. 'latent' (a model
    with latent_dim > 0) decodes the step's predicted continuous latent (B, D, H, W) itself: sub-cell
    motion that no single code shows.
    """
    if mode == 'tokens':
        return vq.decode_code(tokens).float()
    if mode not in DISPLAY_MODES:
        raise ValueError(f"unknown display mode {mode!r} ({' | '.join(DISPLAY_MODES)})")
    if mode == 'latent':
        if latent is None:
            raise ValueError("display 'latent' needs a model that predicts latents (latent_dim > 0)")
        return vq.decoder(latent.to(vq.quantizer.embed.dtype)).float()
    emb = vq.expected_embedding(logits.float().softmax(1))
    if mode == 'soft_changed':
        stay, valid = held
        keep = (tokens == stay) & (valid > 0)
        emb = torch.where(keep[:, None], vq.embed_codes(tokens), emb)
    return vq.decoder(emb).float()


def snap_latent(model, latent, tokens, snap, reencode=None, action=None, snap_moving=None):
    """The latent a rollout feeds back: the prediction moved a share `snap` of the way to the code vectors of
    the tokens it decoded (0: the prediction itself; 1: the codes, as a token model reads its samples). A
    regression fed its own output drifts off the codes it was trained on; the codes do not drift.
    snap_moving (None: the model's config.latent_snap_moving; < 0: snap): the share instead where action
    (B, A), the transition that made the latent, moved (model_convGru.moving_actions).
    reencode (a VQ-VAE): then through its decoder and encoder, back to a latent of a picture."""
    snap_moving = model.config.latent_snap_moving if snap_moving is None else snap_moving
    share = float(snap)
    if snap_moving >= 0 and action is not None:   # a share per sample
        share = torch.where(moving_actions(action), float(snap_moving), share).to(latent.device).view(-1, 1, 1, 1)
    if torch.is_tensor(share) or share:
        latent = torch.lerp(latent.float(), model.code_latents(tokens), share)
    if reencode is not None:
        latent = reencode.encoder(reencode.decoder(latent.to(reencode.quantizer.embed.dtype))).float()
    return latent


def start_feedback(model, state, flow_round=None):
    """The state with the rounded flow's remainder started (zero) where the model has config.flow_round (or
    flow_round, when given) and the state none yet: the steps after it move their latent by whole cells (feedback
    steps: rollouts, live play and the training tail; teacher-forced and warm-up steps, which read true latents,
    interpolate)."""
    if not (model.config.flow_round if flow_round is None else flow_round) or state.phase is not None:
        return state
    return replace(state, phase=torch.zeros(state.batch_size, 2, model.config.height, model.config.width,
                                            device=state.buf.device))


def carry_out(model, state, latent, snapped, action, flow_round=None):
    """The state with config.latent_carry's share of what the snap took off (latent - snapped, raw (B, D, H, W)),
    zero where the transition (action (B, A)) was idle: the model adds it to its next step's moved input latent
    (sigma-delta in time: a motion of part of a cell a step adds up until the codes flip). Unchanged when the model
    carries nothing.
    The state also starts feedback (start_feedback, flow_round passed on)."""
    state = start_feedback(model, state, flow_round)
    share = model.config.latent_carry
    if not share:
        return state
    return replace(state, carry=share * (latent.float() - snapped) * moving_actions(action).float().view(-1, 1, 1, 1))


@torch.no_grad()
def warm_up(model, context_tokens, context_actions, state=None, context_latents=None):
    """Feed T context frames (B, T, H, W) with the T-1 actions between them (B, T-1, A).

    The last context frame is not consumed: it is the input of the first rollout step.
    Returns the state after the first T-1 transitions (hidden maps and temporal buffer filled), feedback
    started (start_feedback).
    context_latents (B, T, D, H, W): the frames' raw latents, read by a model with latent_dim > 0.
    """
    B, T = context_tokens.shape[:2]
    if state is None:
        state = model.init_state(B, context_tokens.device)
    if T > 1:
        lat = context_latents[:, :-1] if context_latents is not None and model.config.latent_dim else None
        _, state = model(context_tokens[:, :-1], context_actions[:, :T - 1], state, latents=lat)
    return start_feedback(model, state)


@torch.no_grad()
def rollout(model, context_tokens, context_actions, actions, steps=None, sampling=None, state=None,
            generator=None, return_logits=False, vq=None, display='tokens', context_latents=None, latent_snap=None,
            latent_reencode=None, latent_snap_moving=None):
    """Open-loop rollout: warm up on the context, then feed the model its own samples.

    context_tokens (B, T, H, W) long, context_actions (B, T-1, A) (may be empty for T = 1),
    actions (B, N, A): action n drives generated frame n -> n+1, starting from the last context
    frame. Returns generated tokens (B, N, H, W) (frame n+1 at index n) and the final state, then the
    logits (B, N, K, H, W) when return_logits, then the frames shown (B, N, 3, 4H, 4W) when a VQ-VAE is
    given (display_frames' `display` mode). A latent model (latent_dim > 0) reads context_latents
    (B, T, D, H, W) when given (else the context tokens' code vectors), then its own predicted latents;
    the tokens it returns are sampled from its distance logits (greedy: the nearest codes); latent_snap (None:
    the model's config.latent_snap) moves the fed-back latent towards those tokens' codes (snap_latent;
    latent_snap_moving, None: the model's config.latent_snap_moving, the share after a moving transition);
    latent_reencode (a VQ-VAE) then sends it through that VQ-VAE's decoder and encoder: back to a latent of
    a picture, sub-cell phase included, whatever the regression drifted off to. With config.latent_carry the
    share of what each snap took off is added to the next prediction while the move goes on (carry_out).
    """
    sampling = dict(sampling or {})
    steps = steps or actions.shape[1]
    state = warm_up(model, context_tokens, context_actions, state, context_latents)
    need_held = sampling.get('mode') in COMMIT_MODES or (vq is not None and display == 'soft_changed')
    cur = context_tokens[:, -1]
    lat = context_latents[:, -1] if context_latents is not None and model.config.latent_dim else None
    latent_snap = model.config.latent_snap if latent_snap is None else latent_snap
    out, logits_out, frames = [], [], []
    for n in range(steps):
        offset = state.warp_offset
        logits, state = model.step(cur, actions[:, n], state, latent_t=lat)
        lat = state.latent
        held = held_tokens(model, cur, actions[:, n], offset) if need_held else None
        cur = next_tokens(model, logits, cur, actions[:, n], sampling, generator, held=held)
        out.append(cur)
        if return_logits:
            logits_out.append(logits)
        if vq is not None:
            frames.append(display_frames(vq, logits, cur, held, display, lat))
        if lat is not None:
            snapped = snap_latent(model, lat, cur, latent_snap, latent_reencode, actions[:, n], latent_snap_moving)
            lat, state = snapped, carry_out(model, state, lat, snapped, actions[:, n])
    res = [torch.stack(out, 1), state]
    if return_logits:
        res.append(torch.stack(logits_out, 1))
    if vq is not None:
        res.append(torch.stack(frames, 1))
    return tuple(res)


@torch.no_grad()
def decode_tokens(vq, tokens, batch=64):
    """(..., H, W) long -> (..., 3, 4H, 4W) float images in [0, 1], decoded in chunks."""
    lead = tokens.shape[:-2]
    flat = tokens.reshape(-1, *tokens.shape[-2:])
    imgs = torch.cat([vq.decode_code(flat[i:i + batch]).float() for i in range(0, len(flat), batch)])
    return imgs.view(*lead, *imgs.shape[1:])


def token_accuracy(pred, target):
    return (pred == target).float().mean()


def unique_codes_per_frame(tokens):
    """tokens (..., H, W) -> mean number of distinct codes per frame."""
    flat = tokens.reshape(-1, tokens.shape[-2] * tokens.shape[-1])
    s = flat.sort(-1).values
    return ((s[:, 1:] != s[:, :-1]).sum(-1) + 1).float().mean()


def cross_entropy_tokens(logits, target, label_smoothing=0.0):
    """logits (B, T, K, H, W), target (B, T, H, W) -> mean CE."""
    return F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(0, 1), label_smoothing=label_smoothing)

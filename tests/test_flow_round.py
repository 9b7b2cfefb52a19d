"""Rounded flow (config.flow_round): feedback steps move the latent by the learned flow rounded to whole cells,
each cell's sub-cell remainder kept for the next step, so a motion of part of a cell a step survives the snap
and nothing is resampled. Tiny configs, CPU."""
import math

import pytest
import torch

from model_convGru import WorldModelConfig, WorldModelConvFiLM, walking_actions
from rollout import rollout, start_feedback
from tests.test_latent import D, H, K, W, TINY_LATENT, actions, context, play_and_generate, tiny_latent
from tests.test_latent_carry import column_shift

pytestmark = pytest.mark.usefixtures('one_thread')   # conftest.py


def fixed_flow_model(dx, **kw):
    """A latent model whose prediction is its input moved dx cells right a step (a fixed flow, no correction),
    with orthogonal codes (a blend of two is nearest the one it holds more of)."""
    m = WorldModelConvFiLM(WorldModelConfig(**{**TINY_LATENT, 'latent_dim': K}, flow_warp=1.0, **kw)).eval()
    m.set_latent_space(torch.eye(K) * 4, torch.zeros(K), torch.ones(K))
    torch.nn.init.zeros_(m.flow_head.weight)
    with torch.no_grad():
        m.flow_head.bias.copy_(torch.tensor([math.atanh(dx), 0.0]))
    return m


def test_a_sub_cell_flow_moves_the_latent_by_whole_cells_on_its_codes():
    """Fed back unsnapped, the interpolated 0.3-cell flow blurs the latent off its codes; rounded, every fed-back
    latent is the context's columns moved whole cells, on the codes, never more than half a cell from 0.3 n,
    and the remainder left is that difference."""
    cols = torch.arange(W) % K
    ctx_tok = cols.view(1, 1, 1, W).expand(1, 2, H, W).clone()            # each column its own code
    N = 10
    acts = actions(1, N, keys=(3,))                                       # a strafe key held: moving
    m = fixed_flow_model(0.3)
    ctx_lat = m.codebook[ctx_tok].movedim(-1, 2)
    codes = m.codebook.T[None, :, :, None, None]                           # (1, D, K, 1, 1)
    off_codes = lambda z: (z[:, :, None] - codes).abs().sum(1).amin(1).amax()   # noqa: E731 worst cell's distance
    _, st = rollout(m, ctx_tok, actions(1, 1), acts, context_latents=ctx_lat)
    assert st.phase is None and off_codes(st.latent) > 0.5                 # interpolated: blurred between codes
    m.config.flow_round = True
    toks, lats = [], []
    state = None
    for n in range(N):                                                     # one step at a time, to see each latent
        tok, state = rollout(m, ctx_tok if n == 0 else toks[-1][:, None], actions(1, 1) if n == 0 else acts[:, :0],
                             acts[:, n:n + 1], context_latents=ctx_lat if n == 0 else lats[-1][:, None],
                             state=state)
        toks.append(tok[:, 0])
        lats.append(state.latent)
        assert off_codes(state.latent) < 1e-4   # (grid_sample rounding: ~1e-6 a cell)
        s = column_shift(tok[0, 0], ctx_tok[0, -1], 4)
        assert (tok[0, 0, :, s:] == ctx_tok[0, -1, :, :W - s]).all()       # exactly the columns moved
        assert abs(s - 0.3 * (n + 1)) <= 0.5 + 1e-5, (n, s)
        torch.testing.assert_close(state.phase[0, 0], torch.full((H, W), 0.3 * (n + 1) - s), atol=1e-5, rtol=0)
    assert column_shift(toks[-1][0], ctx_tok[0, -1], 4) == 3
    full, st = rollout(m, ctx_tok, actions(1, 1), acts, context_latents=ctx_lat)   # the same in one call
    assert torch.equal(full, torch.stack(toks, 1)) and torch.allclose(st.phase, state.phase)


def test_only_a_walk_with_the_camera_still_is_rounded_a_turn_or_idle_step_clears_the_remainder():
    m = fixed_flow_model(0.3)
    phase = torch.rand(3, 2, H, W) - 0.5
    acts = torch.cat([actions(1, 1, keys=(3,)), actions(1, 1, yaw=4, keys=(3,)), actions(1, 1)])   # strafe;
    flow = m.flow(torch.zeros(3, m.config.hidden_dim, H, W))[:, None]             # strafe + turn; idle
    walking = walking_actions(acts)
    assert walking.tolist() == [[True], [False], [False]]
    got, left = m.round_flow(flow, phase, walking[..., None, None, None])
    total = flow[0, 0] + phase[0]
    assert torch.equal(got[0], torch.round(total)) and torch.equal(left[0], total - torch.round(total))
    assert torch.equal(got[1:], flow[1:, 0]) and (left[1:] == 0).all()
    flow = flow.detach().requires_grad_()
    m.round_flow(flow, phase, walking[..., None, None, None])[0].sum().backward()
    assert (flow.grad[0] == 0).all() and (flow.grad[1:] == 1).all()     # no gradient through a rounded flow


def test_flow_round_leaves_idle_rollouts_and_teacher_forcing_unchanged():
    ctx_tok, ctx_act, ctx_lat, _ = context(Tc=3, N=6)
    acts = torch.cat([actions(1, 6), actions(1, 6, keys=(0,))])           # sample 0 idle, sample 1 walks
    m = tiny_latent(zero_init_head=False, flow_warp=1.0, flow_gate=True, latent_snap=0.5)
    torch.nn.init.normal_(m.flow_head.weight, std=0.3)                     # a flow that varies over the map
    plain, _ = rollout(m, ctx_tok, ctx_act, acts, context_latents=ctx_lat)
    logits = m(ctx_tok, torch.cat([ctx_act, acts[:, :1]], 1), latents=ctx_lat)[0]
    m.config.flow_round = True
    rounded, st = rollout(m, ctx_tok, ctx_act, acts, context_latents=ctx_lat)
    assert torch.equal(plain[0], rounded[0]) and (st.phase[0] == 0).all()   # idle: no flow, no remainder
    assert not torch.equal(plain[1], rounded[1]) and st.phase[1].abs().max() > 0
    tf_logits, tf_state = m(ctx_tok, torch.cat([ctx_act, acts[:, :1]], 1), latents=ctx_lat)
    assert torch.equal(tf_logits, logits) and tf_state.phase is None       # teacher forcing: interpolated
    assert start_feedback(m, tf_state).phase.shape == (2, 2, H, W)


def test_flow_round_config_errors():
    with pytest.raises(ValueError, match='flow_round'):
        WorldModelConfig(latent_dim=D, flow_round=True)                    # no flow to round
    with pytest.raises(ValueError, match='flow_round'):
        WorldModelConfig(latent_dim=D, flow_warp=1.0, flow_round=True, flow_hidden=True)
    with pytest.raises(ValueError, match='needs flow_round'):
        WorldModelConfig(latent_dim=D, flow_warp=1.0, flow_round_smooth=3)
    with pytest.raises(ValueError, match='odd box'):
        WorldModelConfig(latent_dim=D, flow_warp=1.0, flow_round=True, flow_round_smooth=4)


def test_a_smoothed_walk_rounds_neighbouring_cells_alike():
    """flow_round_smooth: a walk's uneven flow is averaged over a box of cells (or the whole map) before it is
    rounded, so neighbouring cells move by the same whole cells; other steps keep their own flow."""
    torch.manual_seed(0)
    T = 6
    flow = 0.2 + 0.4 * torch.rand(1, T, 2, H, W)                           # 0.2-0.6 cells a step, uneven
    walking = torch.ones(1, T, 1, 1, 1, dtype=torch.bool)
    walking[:, 2] = False                                                  # a turn between the walks
    zero = torch.zeros(1, 2, H, W)
    per_cell, _ = WorldModelConvFiLM.round_flow(flow, zero, walking)
    rigid, left = WorldModelConvFiLM.round_flow(flow, zero, walking, smooth=-1)
    assert len(per_cell[3].unique()) > 1                                   # per cell: neighbours round apart
    for t in (0, 1, 3, 4, 5):
        assert len(rigid[t, 0].unique()) == 1 and len(rigid[t, 1].unique()) == 1   # the whole map alike
    assert torch.equal(rigid[2], flow[0, 2])                               # the turn keeps its own flow
    mean = flow[0, 3:].mean((2, 3), keepdim=True)                          # the walk after the turn adds up:
    torch.testing.assert_close(rigid[3:].sum(0) + left[0], mean.sum(0).expand(2, H, W))   # moved + remainder
    box, _ = WorldModelConvFiLM.round_flow(flow, zero, walking, smooth=3)
    pooled = torch.nn.functional.avg_pool2d(flow[0, :1].flatten(0, 1), 3, 1, 1, count_include_pad=False)
    assert torch.equal(box[0], torch.round(pooled).view(2, H, W))
    steps = lambda f: (f[:, :, :, 1:] != f[:, :, :, :-1]).float().mean()    # noqa: E731 neighbours apart
    assert steps(box) < steps(per_cell)


def test_a_camera_step_moves_rigidly_by_the_flows_mean_in_whole_cells():
    """flow_round_camera: on a turn or a look the flow's mean over the map, plus the remainder, is rounded to whole
    cells (every cell alike) and the rest kept; its uneven part is dropped. A look whose flow takes back 0.47 of
    the warp's row (0.53 net) moves a whole row on about half the steps and its remainder adds up the rest."""
    torch.manual_seed(0)
    T = 8
    flow = torch.zeros(1, T, 2, H, W)
    flow[:, :, 1] = 0.47 + 0.2 * (torch.rand(1, T, H, W) - 0.5)            # dy: 0.47 on average, uneven
    look = torch.cat([torch.zeros(1, 1, 15)] * T, 1)
    look[..., 2], look[..., 7] = 1, 1                                      # yaw none, pitch down: a look
    camera = (~walking_actions(look))[..., None, None, None]
    walking = walking_actions(look)[..., None, None, None]
    zero = torch.zeros(1, 2, H, W)
    plain, left = WorldModelConvFiLM.round_flow(flow, zero, walking)
    assert torch.equal(plain, flow[0]) and (left == 0).all()               # without it: interpolated, no remainder
    rigid, left = WorldModelConvFiLM.round_flow(flow, zero, walking, camera=camera)
    assert (rigid == rigid.round()).all() and (rigid[:, 0] == 0).all()     # whole cells, no sideways move
    assert all(len(rigid[t, 1].unique()) == 1 for t in range(T))           # the whole map alike
    mean = flow[0, :, 1].mean((1, 2))
    torch.testing.assert_close(rigid[:, 1, 0, 0].sum() + left[0, 1], mean.sum().expand(H, W))   # moved + remainder
    assert left[0, 1].abs().max() <= 0.5 and 3 <= rigid[:, 1, 0, 0].sum() <= 5
    walk = torch.zeros(1, T, 15)
    walk[..., 2], walk[..., 6], walk[..., 8] = 1, 1, 1                     # camera still, W down: a walk
    walking = walking_actions(walk)[..., None, None, None]
    per_cell, _ = WorldModelConvFiLM.round_flow(flow, zero, walking)
    assert torch.equal(WorldModelConvFiLM.round_flow(flow, zero, walking, camera=torch.zeros_like(walking))[0],
                       per_cell)                                           # a walk is rounded per cell as before
    with pytest.raises(ValueError, match='needs flow_round'):
        WorldModelConfig(latent_dim=D, flow_warp=1.0, flow_round_camera=True)
    m = fixed_flow_model(0.3, flow_round=True)                             # in a rollout: a turn's latent
    ctx_tok = (torch.arange(W) % K).view(1, 1, 1, W).expand(1, 2, H, W).clone()
    ctx_lat = m.codebook[ctx_tok].movedim(-1, 2)
    codes = m.codebook.T[None, :, :, None, None]
    off_codes = lambda z: (z[:, :, None] - codes).abs().sum(1).amin(1).amax()   # noqa: E731 worst cell's distance
    turn = actions(1, 4, yaw=4)
    assert off_codes(rollout(m, ctx_tok, actions(1, 1), turn, context_latents=ctx_lat)[1].latent) > 0.5
    m.config.flow_round_camera = True                                      # interpolated above, on its codes here
    assert off_codes(rollout(m, ctx_tok, actions(1, 1), turn, context_latents=ctx_lat)[1].latent) < 1e-4


def test_live_play_rounds_the_flow_as_offline_rollouts_do():
    m = tiny_latent(zero_init_head=False, flow_warp=1.0, latent_snap=0.5)
    torch.nn.init.normal_(m.flow_head.weight, std=0.3)
    recs = ([dict(ws=1, ad=0, scs=0, yaw_deg=0.0, pitch_deg=0.0)] * 3 + [dict(ws=0, ad=0, scs=0, yaw_deg=3.0,
             pitch_deg=0.0)] + [dict(ws=0, ad=-1, scs=0, yaw_deg=0.0, pitch_deg=0.0)] * 3)   # walk, turn, strafe
    played = {}
    for rnd in (False, True):
        m.config.flow_round = rnd
        played[rnd], offline = play_and_generate(m, recs)
        assert torch.equal(offline, played[rnd])
    assert not torch.equal(played[False], played[True])


def test_flow_round_tail_false_trains_as_the_interpolated_tail():
    """LATENT_FLOW_ROUND_TAIL=False: a model that rolls out rounded (config.flow_round, saved in its checkpoint) is
    trained exactly as one without it (the tail interpolates); True rounds the tail's walks as rollouts do."""
    from tests.test_latent import half_cell_walk, tiny_window_loss
    lat, a = half_cell_walk(4, 8, seed=0)                                  # D held on about half the steps
    tok = torch.zeros(4, 9, H, W, dtype=torch.long)
    out = {}
    for flow_round, tail in ((False, True), (True, False), (True, True)):
        wl, m, knobs = tiny_window_loss(flow_warp=1.0, flow_round=flow_round)
        torch.manual_seed(5)
        torch.nn.init.normal_(m.flow_head.weight, std=0.5)                 # a flow that varies over the map
        torch.manual_seed(7)
        out[flow_round, tail] = wl(tok, a, 6, dict(knobs, flow_round_tail=tail, latent_noise=0.0), lat)[1]
    assert out[True, False]['latent_mse'].item() == out[False, True]['latent_mse'].item()
    assert out[True, True]['latent_mse'].item() != out[False, True]['latent_mse'].item()


def test_latent_snap_tail_trains_at_its_own_snap_while_the_checkpoint_keeps_latent_snap():
    """LATENT_SNAP_TAIL >= 0: the tail feeds back at that snap, so a model saved with latent_snap 1 (its rollouts')
    trains exactly as one whose latent_snap is the tail's 0.5."""
    from tests.test_latent import half_cell_walk, tiny_window_loss
    lat, a = half_cell_walk(4, 8, seed=1)
    tok = torch.randint(0, K, (4, 9, H, W), generator=torch.Generator().manual_seed(2))
    out = {}
    for snap, tail in ((0.5, -1.0), (1.0, 0.5), (1.0, -1.0)):
        wl, m, knobs = tiny_window_loss(latent_snap=snap)
        torch.manual_seed(7)
        out[snap, tail] = wl(tok, a, 6, dict(knobs, snap_tail=tail, latent_noise=0.0), lat)[1]['latent_mse'].item()
    assert out[1.0, 0.5] == out[0.5, -1.0] != out[1.0, -1.0]


def test_flow_look_off_moves_a_look_by_the_pitch_warp_alone():
    """flow_look_off: on a look the learned flow is zero, so the fed-back latent is the context moved a whole row
    by the pitch warp, on its codes; a turn and a walk keep their flow (0.3 cells here, off the codes)."""
    ctx_tok = (torch.arange(H * W) % K).view(1, 1, H, W).expand(1, 2, H, W).clone()
    look, turn, walk = actions(1, 3, pitch=2), actions(1, 3, yaw=4), actions(1, 3, keys=(3,))
    m = fixed_flow_model(0.3, flow_look_off=True)
    ctx_lat = m.codebook[ctx_tok].movedim(-1, 2)
    flows = {name: m(ctx_tok[:, :1].expand(1, 3, H, W), a, latents=ctx_lat[:, :1].expand(1, 3, K, H, W),
                     return_flow=True)[2] for name, a in (('look', look), ('turn', turn), ('walk', walk))}
    assert (flows['look'] == 0).all()
    for name in ('turn', 'walk'):
        torch.testing.assert_close(flows[name][:, :, 0], torch.full((1, 3, H, W), 0.3))
    dy = m.camera_shifts(look[:, :1])[1].item()
    kept = slice(max(dy, 0), H + min(dy, 0))                               # the rows the warp keeps (a flat row enters)
    moved = ctx_lat[0, -1, :, max(-dy, 0):H + min(-dy, 0)]
    _, st = rollout(m, ctx_tok, actions(1, 1), look[:, :1], context_latents=ctx_lat)
    assert dy != 0 and torch.allclose(st.latent[0, :, kept], moved, atol=1e-5)   # a whole row, nothing resampled
    m.config.flow_look_off = False
    _, st = rollout(m, ctx_tok, actions(1, 1), look[:, :1], context_latents=ctx_lat)
    assert (st.latent[0, :, kept] - moved).abs().amax() > 0.5             # with the flow: moved 0.3 cells sideways too
    with pytest.raises(ValueError, match='flow_look_off'):
        WorldModelConfig(latent_dim=D, flow_look_off=True)

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

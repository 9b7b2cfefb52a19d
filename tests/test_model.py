"""Tests for model_convGru.py: tiny configs on CPU, except the parameter count of the default."""
import os
import sys

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from model_convGru import (WorldModelConfig, WorldModelConvFiLM, WorldModelState, idm_loss,  # noqa: E402
                           load_world_model, save_world_model, shift_maps)

torch.set_num_threads(1)


def tiny(**kw):
    d = dict(codebook_size=16, embed_dim=8, hidden_dim=12, n_layers=2, height=6, width=8, dilations=(1, 2),
             film_dim=16, attn_dim=8, attn_heads=2, temporal_context=2, idm_dim=8, idm_pool=(2, 2),
             idm_hidden=16, idm_dropout=0.0, zero_init_head=False)
    d.update(kw)
    return WorldModelConfig(**d)


def build(seed=0, **kw):
    torch.manual_seed(seed)
    return WorldModelConvFiLM(tiny(**kw)).eval()


def rand_actions(B, T, seed=1):
    g = torch.Generator().manual_seed(seed)
    a = torch.zeros(B, T, 15)
    a.scatter_(-1, torch.randint(0, 5, (B, T, 1), generator=g), 1)
    a.scatter_(-1, 5 + torch.randint(0, 3, (B, T, 1), generator=g), 1)
    a[..., 8:] = torch.bernoulli(torch.full((B, T, 7), 0.5), generator=g)
    return a


def rand_tokens(B, T, cfg, seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.codebook_size, (B, T, cfg.height, cfg.width), generator=g)


def action(yaw=2, pitch=1, keys=(), B=1):
    """One 15-D action per batch row: yaw bin, pitch bin, key indices 0..6 (W A S D jump sprint sneak)."""
    a = torch.zeros(B, 15)
    a[:, yaw] = 1
    a[:, 5 + pitch] = 1
    for k in keys:
        a[:, 8 + k] = 1
    return a


def warm_state(m, B=2, T=3):
    """A state with non-zero hidden maps and a full temporal buffer."""
    with torch.no_grad():
        _, st = m(rand_tokens(B, T, m.config, seed=7), rand_actions(B, T, seed=8))
    return st


def names(m, word):
    return [n for n, _ in m.named_parameters() if word in n]


# ---------------------------------------------------------------- shapes and equivalences

def test_shapes():
    m = build()
    c = m.config
    B, T = 2, 4
    logits, st, top = m(rand_tokens(B, T, c), rand_actions(B, T), return_hidden=True)
    assert logits.shape == (B, T, c.codebook_size, c.height, c.width)
    assert top.shape == (B, T, c.hidden_dim, c.height, c.width)
    assert len(st.hidden) == c.n_layers and st.hidden[0].shape == (B, c.hidden_dim, c.height, c.width)
    assert st.buf.shape == (B, c.temporal_context, c.hidden_dim) and st.buf_len.tolist() == [2, 2]
    lg, st2, h = m.step(rand_tokens(B, 1, c)[:, 0], rand_actions(B, 1)[:, 0], st, return_hidden=True)
    assert lg.shape == (B, c.codebook_size, c.height, c.width) and h.shape == (B, c.hidden_dim, c.height, c.width)
    assert m.idm(top[:, 0], top[:, 3], 3).shape == (B, 15)


ACCUMULATE = dict(warp_accumulate=True, warp_yaw_shift=(1.7, 0.4, 0.0, -0.4, -1.7), warp_pitch_shift=(0.55, 0.0, -0.5))


@pytest.mark.parametrize('warp', ['input', 'hidden', 'accumulate'])
def test_step_loop_equals_forward(warp):
    m = build(camera_warp='input', **ACCUMULATE) if warp == 'accumulate' else build(camera_warp=warp)
    B, T = 2, 5   # T > temporal_context, so the buffer rolls over
    tok, act = rand_tokens(B, T, m.config), rand_actions(B, T)
    with torch.no_grad():
        logits, st_seq, top = m(tok, act, return_hidden=True)
        st = m.init_state(B)
        for t in range(T):
            lg, st, h = m.step(tok[:, t], act[:, t], st, return_hidden=True)
            torch.testing.assert_close(lg, logits[:, t], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(h, top[:, t], atol=1e-5, rtol=1e-5)
        # a window split in two chunks with the state carried over is the same as one window
        l1, s1 = m(tok[:, :2], act[:, :2])
        l2, s2 = m(tok[:, 2:], act[:, 2:], s1)
    torch.testing.assert_close(torch.cat([l1, l2], 1), logits, atol=1e-5, rtol=1e-5)
    for a, b, c in zip(st.hidden, st_seq.hidden, s2.hidden):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(c, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(st.buf, st_seq.buf, atol=1e-5, rtol=1e-5)
    assert st.buf_len.tolist() == st_seq.buf_len.tolist() == [2, 2]
    if warp == 'accumulate':   # the sub-cell remainder is carried, whichever way the window is cut
        assert st_seq.warp_offset.abs().max() > 0
        torch.testing.assert_close(st.warp_offset, st_seq.warp_offset)
        torch.testing.assert_close(s2.warp_offset, st_seq.warp_offset)


def test_accumulated_warp_moves_a_slow_turn_one_cell_every_few_frames():
    slow_right = action(yaw=3, B=1)[:, None].expand(1, 5, 15)
    m = build(**ACCUMULATE)
    dx, dy, off = m.camera_shifts(slow_right)
    assert dx.tolist() == [[0, -1, 0, -1, 0]] and dy.tolist() == [[0] * 5]    # -0.4 a frame: -2 cells in 5
    assert off.abs().max() < 1e-5
    dx1, _, o1 = m.camera_shifts(slow_right[:, :3])                            # cut in two, remainder carried
    dx2, _, _ = m.camera_shifts(slow_right[:, 3:], o1)
    assert torch.cat([dx1, dx2], 1).tolist() == dx.tolist()
    assert torch.allclose(o1, torch.tensor([[-0.2, 0.0]]), atol=1e-5)
    assert build().camera_shifts(slow_right)[0].tolist() == [[-1] * 5]        # whole cells: one every frame
    # a fresh state forgets the remainder of the samples that restart
    st = WorldModelState([torch.zeros(2, 1)], torch.zeros(2, 1, 1), torch.zeros(2, dtype=torch.long),
                         torch.tensor([[0.3, -0.2], [0.1, 0.4]]))
    assert torch.equal(st.reset(torch.tensor([True, False])).warp_offset, torch.tensor([[0.0, 0.0], [0.1, 0.4]]))
    assert torch.equal(st[1].warp_offset, torch.tensor([[0.1, 0.4]])) and st.detach().warp_offset is st.warp_offset
    # through the model: at init (zero head, copy gate) a greedy or commit rollout is the warped copy
    from rollout import rollout
    m = build(copy_gate=True, zero_init_head=True, **ACCUMULATE)
    ctx = rand_tokens(1, 2, m.config)
    for mode in ('greedy', 'commit'):
        gen, st = rollout(m, ctx, action(B=1)[:, None], slow_right, sampling=dict(mode=mode))
        for t, total in enumerate([0, -1, -1, -2, -2]):
            assert torch.equal(gen[:, t], shift_maps(ctx[:, -1:], torch.tensor([total]), torch.tensor([0]))[:, 0])


def test_soft_tokens_equal_hard_tokens():
    m = build()
    c = m.config
    tok, act = rand_tokens(2, 3, c), rand_actions(2, 3)
    probs = F.one_hot(tok, c.codebook_size).permute(0, 1, 4, 2, 3).float()   # (B,T,K,H,W)
    with torch.no_grad():
        hard, _ = m(tok, act)
        soft, _ = m(probs, act)
        lg, _ = m.step(probs[:, 0], act[:, 0], m.init_state(2))
    torch.testing.assert_close(soft, hard, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lg, hard[:, 0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('warp', ['input', 'hidden'])
def test_causality(warp):
    m = build(camera_warp=warp)
    c = m.config
    B, T, t0 = 2, 6, 3
    tok, act = rand_tokens(B, T, c), rand_actions(B, T)
    tok2, act2 = tok.clone(), act.clone()
    tok2[:, t0:] = rand_tokens(B, T - t0, c, seed=11)
    act2[:, t0:] = rand_actions(B, T - t0, seed=12)
    with torch.no_grad():
        a, _ = m(tok, act)
        b, _ = m(tok2, act2)
    torch.testing.assert_close(a[:, :t0], b[:, :t0], atol=1e-6, rtol=0)
    assert (a[:, t0:] - b[:, t0:]).abs().max() > 1e-3   # the future did change


def test_actions_always_required():
    m = build()
    c = m.config
    st = m.init_state(1)
    tok = rand_tokens(1, 1, c)
    with pytest.raises(ValueError):
        m.step(tok[:, 0], None, st)
    with pytest.raises(ValueError):
        m(tok, None)
    with pytest.raises(ValueError):
        m(tok, torch.zeros(1, 1, 5))   # wrong action width


# ---------------------------------------------------------------- switches

def test_film_switch():
    m = build(use_film=True, camera_warp='none')
    st = warm_state(m)
    tok = rand_tokens(2, 1, m.config)[:, 0]
    with torch.no_grad():
        base, _ = m.step(tok, action(B=2), st)
        walk, _ = m.step(tok, action(keys=(0,), B=2), st)   # W held
    assert (base - walk).abs().max() > 1e-4   # FiLM on: movement keys matter

    m = build(use_film=False, camera_warp='input')
    assert names(m, 'film') == []
    st = warm_state(m)
    with torch.no_grad():
        base, _ = m.step(tok, action(B=2), st)
        walk, _ = m.step(tok, action(keys=(0, 5), B=2), st)
        turn, _ = m.step(tok, action(yaw=4, B=2), st)
    assert torch.equal(base, walk)              # without FiLM movement keys do nothing...
    assert (base - turn).abs().max() > 1e-4     # ...but the camera still reaches the warp

    m = build(use_film=False, camera_warp='none')
    tok, act = rand_tokens(2, 4, m.config), rand_actions(2, 4)
    with torch.no_grad():
        a, _ = m(tok, act)
        b, _ = m(tok, rand_actions(2, 4, seed=99))
    assert not torch.equal(act, rand_actions(2, 4, seed=99))
    assert torch.equal(a, b)                    # no mechanism reads actions at all


def test_separate_film_pathways():
    m = build(separate_film=True, camera_warp='none')
    assert names(m, 'film_cam') and names(m, 'film_mov') and not names(m, 'film.')
    # silence the movement pathway: then only the camera part of the action can matter
    with torch.no_grad():
        m.film_mov.net[-1].weight.zero_()
        m.film_mov.net[-1].bias.zero_()
    st = warm_state(m)
    tok = rand_tokens(2, 1, m.config)[:, 0]
    with torch.no_grad():
        base, _ = m.step(tok, action(B=2), st)
        walk, _ = m.step(tok, action(keys=(0, 1, 4), B=2), st)
        look, _ = m.step(tok, action(pitch=2, B=2), st)
    assert torch.equal(base, walk)
    assert (base - look).abs().max() > 1e-4

    m = build(separate_film=False)
    assert names(m, 'film.') and not names(m, 'film_cam') and not names(m, 'film_mov')
    assert m.film.net[0].in_features == 15   # one MLP over the whole action


def test_old_5d_actions():
    with pytest.raises(ValueError, match='camera_warp'):
        tiny(action_dim=5)                       # the default warp cannot read a 5-D action
    with pytest.raises(ValueError, match='camera_warp'):
        tiny(action_dim=5, camera_warp='hidden')
    m = build(action_dim=5, camera_warp='none', use_idm=False)
    assert names(m, 'film.') and not names(m, 'film_cam')   # single-pathway fallback
    tok = rand_tokens(2, 3, m.config)
    g = torch.Generator().manual_seed(0)
    a1 = torch.rand(2, 3, 5, generator=g) * 2 - 1
    with torch.no_grad():
        l1, _ = m(tok, a1)
        l2, _ = m(tok, -a1)
    assert l1.shape[2] == 16 and (l1 - l2).abs().max() > 1e-4


def test_residual_switch():
    on, off = build(use_residual=True), build(use_residual=False)
    assert [n for n, _ in on.named_parameters()] == [n for n, _ in off.named_parameters()]
    off.load_state_dict(on.state_dict())       # same weights, only the skip differs
    tok, act = rand_tokens(2, 3, on.config), rand_actions(2, 3)
    with torch.no_grad():
        a, _, ha = on(tok, act, return_hidden=True)
        b, _, hb = off(tok, act, return_hidden=True)
    assert (a - b).abs().max() > 1e-4
    # with no residual the top map (before attention) is the last GRU hidden, which lies in (-1, 1)
    m = build(use_residual=False, use_temporal_attention=False)
    with torch.no_grad():
        _, st, h = m(tok, act, return_hidden=True)
    assert torch.equal(h[:, -1], st.hidden[-1]) and h.abs().max() < 1


def test_temporal_attention_switch():
    m = build(use_temporal_attention=True)
    st = warm_state(m)
    assert st.buf_len.tolist() == [2, 2]
    tok, a = rand_tokens(2, 1, m.config)[:, 0], action(B=2)
    edited = WorldModelState(st.hidden, st.buf + torch.randn_like(st.buf), st.buf_len)
    with torch.no_grad():
        base, _ = m.step(tok, a, st)
        other, _ = m.step(tok, a, edited)
        # the same edit in slots marked empty must be ignored
        empty = m.init_state(2)
        empty = WorldModelState(st.hidden, empty.buf, empty.buf_len)
        e1, s1 = m.step(tok, a, empty)
        e2, _ = m.step(tok, a, WorldModelState(st.hidden, empty.buf + torch.randn_like(st.buf), empty.buf_len))
    assert (base - other).abs().max() > 1e-4   # the buffer is read...
    assert torch.equal(e1, e2)                 # ...but only its filled slots
    assert s1.buf_len.tolist() == [1, 1]

    m = build(use_temporal_attention=False)
    assert names(m, 'temporal') == []
    st = warm_state(m)
    assert st.buf.shape == (2, 0, m.config.hidden_dim)
    # with no attention the top map is exactly the GRU stack output: layer 1's hidden + the pair's input
    tok3, act3 = rand_tokens(2, 3, m.config), rand_actions(2, 3)
    with torch.no_grad():
        lg, st3, top = m(tok3, act3, return_hidden=True)
        x_in = m.in_proj(m.embed_tokens(tok3, act3)[:, -1])
    torch.testing.assert_close(top[:, -1], st3.hidden[-1] + x_in, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(lg[:, -1], m.head(top[:, -1]), atol=1e-6, rtol=1e-6)


def test_idm_switch():
    m = build(use_idm=False)
    assert names(m, 'idm') == []
    h = torch.zeros(1, 12, 6, 8)
    with pytest.raises(RuntimeError):
        m.idm(h, h, 1)
    m = build(use_idm=True)
    assert names(m, 'idm_head')
    with pytest.raises(ValueError):
        m.idm(h, h, 6)   # beyond idm_max_span


def test_film_clamp():
    m = build(film_clamp=(-2.0, 3.0))
    with torch.no_grad():
        m.film_cam.net[-1].bias.fill_(100.0)
        gamma, beta = m.film_params(rand_actions(2, 3))
        assert gamma.shape == (2, 3, 2, 12) and gamma.max() == 3.0 and beta.max() == 3.0
        m.film_cam.net[-1].bias.fill_(-100.0)
        gamma, beta = m.film_params(rand_actions(2, 3))
        assert gamma.min() == -2.0 and beta.min() == -2.0


def test_zero_init_head():
    m = build(zero_init_head=True)
    with torch.no_grad():
        lg, _ = m(rand_tokens(2, 3, m.config), rand_actions(2, 3))
    assert torch.equal(lg, torch.zeros_like(lg))
    m = build(zero_init_head=False)
    with torch.no_grad():
        lg, _ = m(rand_tokens(2, 3, m.config), rand_actions(2, 3))
    assert lg.abs().max() > 1e-3


# ---------------------------------------------------------------- camera warp

def marker_tokens(cfg, h, w):
    tok = torch.zeros(1, 1, cfg.height, cfg.width, dtype=torch.long)
    tok[0, 0, h, w] = 5
    return tok


def marker_pos(m, tok, a):
    """Where the marker token's embedding sits after the (possibly warped) embedding."""
    with torch.no_grad():
        x = m.embed_tokens(tok, a.view(1, 1, 15))[0, 0]             # (E, H, W)
        e = m.embed.weight[5]
        hit = ((x - e[:, None, None]).abs().sum(0) < 1e-6).nonzero().tolist()
    assert len(hit) == 1, hit
    return tuple(hit[0])


def test_camera_warp_direction():
    m = build(camera_warp='input')
    c = m.config
    with torch.no_grad():   # make the "empty" token's embedding distinct from zero and from the marker
        m.embed.weight[0].fill_(0.5)
    tok = marker_tokens(c, 3, 4)
    assert marker_pos(m, tok, action(yaw=2)) == (3, 4)
    assert marker_pos(m, tok, action(yaw=4)) == (3, 2)   # fast right: content moves 2 cells LEFT
    assert marker_pos(m, tok, action(yaw=3)) == (3, 3)   # slow right: 1 cell left
    assert marker_pos(m, tok, action(yaw=0)) == (3, 6)   # fast left: 2 cells right
    assert marker_pos(m, tok, action(pitch=2)) == (2, 4)  # look down: content moves UP
    assert marker_pos(m, tok, action(pitch=0)) == (4, 4)  # look up: content moves down
    assert marker_pos(m, tok, action(yaw=4, pitch=2)) == (2, 2)
    # yaw wraps around horizontally
    assert marker_pos(m, marker_tokens(c, 3, 0), action(yaw=4)) == (3, c.width - 2)
    # pitch fills with zeros: looking down empties the bottom row, looking up the top row
    with torch.no_grad():
        down = m.embed_tokens(tok, action(pitch=2).view(1, 1, 15))[0, 0]
        up = m.embed_tokens(tok, action(pitch=0).view(1, 1, 15))[0, 0]
    assert torch.equal(down[:, -1], torch.zeros_like(down[:, -1])) and down[:, -2].abs().min() > 0
    assert torch.equal(up[:, 0], torch.zeros_like(up[:, 0])) and up[:, 1].abs().min() > 0
    # an all-zero camera block (e.g. padding) means no shift, not "fast left"
    assert marker_pos(m, tok, torch.zeros(15)) == (3, 4)

    for warp in ('hidden', 'none'):    # the input is left alone by the other modes
        m2 = build(camera_warp=warp)
        assert marker_pos(m2, tok, action(yaw=4, pitch=2)) == (3, 4)


def test_shift_maps_matches_roll():
    x = torch.randn(3, 2, 6, 8)
    dx, dy = torch.tensor([2, -1, 0]), torch.tensor([0, 0, 0])
    out = shift_maps(x, dx, dy)
    for n in range(3):
        assert torch.equal(out[n], torch.roll(x[n], int(dx[n]), dims=2))
    out = shift_maps(x, torch.zeros(3, dtype=torch.long), torch.tensor([1, -2, 0]))
    assert torch.equal(out[0, :, 1:], x[0, :, :-1]) and torch.equal(out[0, :, 0], torch.zeros(2, 8))
    assert torch.equal(out[1, :, :-2], x[1, :, 2:]) and torch.equal(out[1, :, -2:], torch.zeros(2, 2, 8))
    assert torch.equal(out[2], x[2])
    edge = shift_maps(x, torch.zeros(3, dtype=torch.long), torch.tensor([1, -2, 0]), fill='edge')
    assert torch.equal(edge[0, :, 1:], x[0, :, :-1]) and torch.equal(edge[0, :, 0], x[0, :, 0])    # top row again
    assert torch.equal(edge[1, :, :-2], x[1, :, 2:])
    assert torch.equal(edge[1, :, -2:], x[1, :, -1:].expand(2, 2, 8))   # a look down: the bottom row repeated
    assert torch.equal(edge[2], x[2])
    with pytest.raises(ValueError, match='warp_fill'):
        WorldModelConfig(warp_fill='mirror')


def test_hidden_warp_moves_state():
    m = build(camera_warp='hidden', use_film=False)
    st = warm_state(m)
    tok = rand_tokens(2, 1, m.config)[:, 0]
    with torch.no_grad():
        a, _ = m.step(tok, action(B=2), st)
        b, _ = m.step(tok, action(yaw=4, B=2), st)
        c, _ = m.step(tok, action(keys=(0, 3), B=2), st)
    assert (a - b).abs().max() > 1e-4   # camera reaches the hidden warp
    assert torch.equal(a, c)            # no FiLM: keys do nothing
    # the warp really is a roll of each layer's state before its update (fast right: 2 cells left)
    with torch.no_grad():
        x0 = m.in_proj(m.embed_tokens(tok[:, None], action(yaw=4, B=2)[:, None])[:, 0])
        _, s_turn = m.step(tok, action(yaw=4, B=2), st)
        expect = m.cells[0](x0, torch.roll(st.hidden[0], -2, dims=3))
    torch.testing.assert_close(s_turn.hidden[0], expect, atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------- training-facing

def test_gradients_reach_film_and_idm():
    m = build()
    m.train()
    c = m.config
    B, T = 2, 4
    tok, act = rand_tokens(B, T + 1, c), rand_actions(B, T)
    logits, _, top = m(tok[:, :T], act, return_hidden=True)
    ce = F.cross_entropy(logits.flatten(0, 1), tok[:, 1:].flatten(0, 1))
    dt = torch.tensor([1, 3])
    pred = m.idm(top[:, 0], top[torch.arange(B), dt], dt)
    target = torch.stack([act[0, 1:2].sum(0), act[1, 1:4].sum(0)])   # actions of the window
    il, parts = idm_loss(pred, target)
    (ce + il).backward()
    for n, p in m.named_parameters():
        if n.startswith(('film_cam', 'film_mov', 'idm_head')):
            assert p.grad is not None and p.grad.abs().sum() > 0, n
    assert set(parts) == {'yaw', 'pitch', 'keys'}


def test_idm_loss_values():
    # window of 2 steps: both slow right, both level, W held once
    win = torch.stack([action(yaw=3, keys=(0,))[0], action(yaw=3)[0]])[None]   # (1, 2, 15)
    good = torch.full((1, 15), -8.0)
    good[0, 3] = good[0, 6] = 8.0
    good[0, 8] = 0.0                        # W held half the window -> p = 0.5 is optimal
    bad = good.clone()
    bad[0, 3], bad[0, 0] = -8.0, 8.0
    lg, pg = idm_loss(good, win)
    lb, pb = idm_loss(bad, win)
    assert pg['yaw'] < 1e-3 and pb['yaw'] > 10 and lb > lg
    torch.testing.assert_close(idm_loss(good, win.sum(1))[0], lg)   # summed target == per-step target
    # keys target = share of the window with the key down: W -> 0.5, so logit 0 is the optimum
    lw = good.clone().requires_grad_()
    idm_loss(lw, win)[0].backward()
    assert lw.grad[0, 8].abs() < 1e-7 and lw.grad[0, 3] < 0
    off = good.clone()
    off[0, 8] = 2.0
    expect_keys = F.binary_cross_entropy_with_logits(off[0, 8:], torch.tensor([0.5, 0, 0, 0, 0, 0, 0]))
    torch.testing.assert_close(idm_loss(off, win)[1]['keys'], expect_keys)
    with pytest.raises(ValueError):
        idm_loss(torch.zeros(1, 5), torch.zeros(1, 5))


def test_grad_checkpoint_same_result():
    plain, ckpt = build(), build(grad_checkpoint=True)
    ckpt.load_state_dict(plain.state_dict())
    tok, act = rand_tokens(2, 3, plain.config), rand_actions(2, 3)
    outs = []
    for m in (plain, ckpt):
        m.train()
        lg, _ = m(tok, act)
        lg.square().mean().backward()
        outs.append((lg.detach(), m.cells[0].gates.weight.grad.clone(), m.film_cam.net[0].weight.grad.clone()))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_channels_last_same_result():
    m = build()
    tok, act = rand_tokens(2, 3, m.config), rand_actions(2, 3)
    with torch.no_grad():
        a, _ = m(tok, act)
        m.to_channels_last()
        assert m.cells[0].gates.weight.is_contiguous(memory_format=torch.channels_last)
        b, _ = m(tok, act)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_state_ops():
    m = build()
    st = warm_state(m, B=3)
    tok, act = rand_tokens(3, 1, m.config)[:, 0], rand_actions(3, 1)[:, 0]
    with torch.no_grad():
        full, _ = m.step(tok, act, st)
        one, _ = m.step(tok[1:2], act[1:2], st[1])
        two, _ = m.step(tok[[0, 2]], act[[0, 2]], st[torch.tensor([0, 2])])
        fresh, _ = m.step(tok, act, m.init_state(3))
        reset, _ = m.step(tok, act, st.reset(torch.tensor([True, False, False])))
    torch.testing.assert_close(one, full[1:2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(two, full[[0, 2]], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(reset[0], fresh[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(reset[1:], full[1:], atol=1e-6, rtol=0)
    # detach cuts the graph
    lg, st2 = m(rand_tokens(3, 2, m.config), rand_actions(3, 2), st)
    assert st2.hidden[0].requires_grad and not st2.detach().hidden[0].requires_grad


def test_bf16_autocast_cpu():
    m = build()
    tok, act = rand_tokens(2, 3, m.config), rand_actions(2, 3)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        lg, st, top = m(tok, act, return_hidden=True)
        lg1, _ = m.step(tok[:, 0], act[:, 0], st)
        idm = m.idm(top[:, 0], top[:, 2], 2)
    assert lg.dtype == torch.bfloat16   # autocast really ran the convs in bf16
    for t in (lg, lg1, idm, *st.hidden, st.buf):
        assert torch.isfinite(t.float()).all()
    with torch.no_grad():
        ref, _ = m(tok, act)
    assert (lg.float() - ref).abs().max() < 0.1


def test_save_load_roundtrip(tmp_path):
    m = build(camera_warp='hidden', dilations=(2, 1))
    path = tmp_path / 'wm.pt'
    save_world_model(str(path), m, extra={'step': 123})
    assert sorted(os.listdir(tmp_path)) == ['wm.pt']   # the temp file was renamed away
    m2, ckpt = load_world_model(str(path))
    assert ckpt['step'] == 123 and m2.config == m.config
    m2.eval()
    tok, act = rand_tokens(2, 3, m.config), rand_actions(2, 3)
    with torch.no_grad():
        a, _ = m(tok, act)
        b, _ = m2(tok, act)
    assert torch.equal(a, b)
    with pytest.raises(ValueError):
        save_world_model(str(path), m, extra={'model': 1})


# ---------------------------------------------------------------- config, size, cost

def test_config_roundtrip_and_validation():
    cfg = WorldModelConfig.demo(codebook_size=256, hidden_dim=96)
    d = cfg.to_dict()
    assert WorldModelConfig.from_dict(d) == cfg and d['codebook_size'] == 256 and d['dilations'] == [1, 2, 1]
    with pytest.raises(ValueError):
        WorldModelConfig.from_dict({**d, 'no_such_field': 1})
    with pytest.raises(ValueError):
        WorldModelConfig(n_layers=3, dilations=(1, 2))
    with pytest.raises(ValueError):
        WorldModelConfig(camera_warp='output')


def test_default_param_count():
    cfg = WorldModelConfig()
    with torch.device('meta'):   # no memory, no init time: only shapes are needed to count
        m = WorldModelConvFiLM(cfg)
    counts = m.param_counts()
    n = counts['total']
    assert 88e6 <= n <= 96e6
    # every GRU layer: 3x3 convs over cat(x, h) = 1024 channels -> 1024 (z, r gates) + 512 (candidate)
    gru = 6 * (9 * 1024 * (1024 + 512) + 1024 + 512)
    assert counts['cells'] == gru == 84_943_872
    # FiLM: 8 (camera) / 7 (movement) -> 256 -> 6 layers x (gamma, beta) x 512
    assert counts['film_cam'] == 8 * 256 + 256 + 256 * 6144 + 6144
    assert counts['film_mov'] == 7 * 256 + 256 + 256 * 6144 + 6144
    # recorded total: embed 262,144 + in_proj 131,584 + GRUs 84,943,872 + FiLM 3,162,368
    # + temporal attention 658,212 + IDM 2,534,799 + head 525,312
    assert n == 92_218_291


def test_flops_per_step():
    m = build()
    f1, f4 = m.flops_per_step(1), m.flops_per_step(4)
    assert f1 > 0 and f4 == 4 * f1
    # at least 2 FLOPs per conv weight per grid cell (the convs dominate)
    c = m.config
    conv_w = sum(p.numel() for n, p in m.named_parameters()
                 if n.endswith('weight') and p.dim() == 4 and not n.startswith('idm'))
    assert f1 >= 2 * conv_w * c.height * c.width
    assert f1 < 1.2 * 2 * conv_w * c.height * c.width + 2 * sum(p.numel() for p in m.parameters())
    assert build(hidden_dim=24).flops_per_step(1) > 3 * f1   # ~quadratic in width


def test_coord_channels_break_translation_symmetry():
    # a uniform token grid: without coordinates every interior cell sees the same input and gives the
    # same logits; with them the centre and an off-centre cell differ (forward/back needs that)
    tok = torch.full((1, 1, 6, 8), 3, dtype=torch.long)
    a = action(B=1)[:, None]
    for coords in (False, True):
        m = build(coord_channels=coords, camera_warp='none', kernel_size=1, dilations=(1, 1),
                  use_temporal_attention=False)
        assert m.in_proj.in_channels == 8 + (2 if coords else 0)
        with torch.no_grad():
            lg, _ = m(tok, a)
        spread = (lg[0, 0] - lg[0, 0, :, :1, :1]).abs().max()
        assert (spread > 1e-4) == coords, (coords, spread)
    m = build(coord_channels=True)
    assert torch.allclose(m.coords[0, 0], torch.linspace(-1, 1, 8)) and torch.allclose(m.coords[1, :, 0], torch.linspace(-1, 1, 6))


def test_action_planes_carry_actions_without_film():
    m = build(use_film=False, camera_warp='none', action_planes=True)
    assert m.in_proj.in_channels == 8 + 15
    tok = rand_tokens(2, 1, m.config)[:, 0]
    st = warm_state(m)
    with torch.no_grad():
        base, _ = m.step(tok, action(B=2), st)
        walk, _ = m.step(tok, action(keys=(0,), B=2), st)
    assert (base - walk).abs().max() > 1e-4   # with neither FiLM nor warp, only the planes carry W
    loop = build(action_planes=True, coord_channels=True)
    tok, act = rand_tokens(2, 4, loop.config), rand_actions(2, 4)
    with torch.no_grad():
        full, _ = loop(tok, act)
        st, steps = None, []
        for t in range(4):
            lg, st = loop.step(tok[:, t], act[:, t], st or loop.init_state(2))
            steps.append(lg)
    assert torch.allclose(full, torch.stack(steps, 1), atol=1e-5)
    assert loop.flops_per_step(1) > build().flops_per_step(1)


def test_copy_gate_adds_one_logit_to_each_cells_current_warped_token():
    m = build(copy_gate=True, zero_init_head=True)
    c = m.config
    tok = rand_tokens(2, 3, c)
    act = torch.stack([action(yaw=4, B=2), action(pitch=2, B=2), action(keys=(0,), B=2)], 1)   # turn, look down, W
    with torch.no_grad():
        lg, _ = m(tok, act)
    p = lg.softmax(2)
    # at init the gate gives the current token probability 1/2 (the head is zero)
    turned = shift_maps(tok[:, 0, None].float(), torch.tensor([-2, -2]), torch.tensor([0, 0]))[:, 0].long()
    assert torch.allclose(p[:, 0].gather(1, turned[:, None]), torch.tensor(0.5))        # the warped token, not tok
    assert torch.allclose(p[:, 2].gather(1, tok[:, 2, None]), torch.tensor(0.5))        # no warp for W
    # looking down moves content up a row: the bottom row holds nothing and stays uniform
    assert torch.allclose(p[:, 1, :, -1], torch.tensor(1 / c.codebook_size))
    assert torch.allclose(p[:, 1, :, :-1].gather(1, tok[:, 1, None, 1:]), torch.tensor(0.5))
    # trained weights: the gate is exactly one extra logit per cell, on that token, and it is action-driven
    m = build(copy_gate=True)
    torch.nn.init.normal_(m.copy_head.weight)
    with torch.no_grad():
        gated, _ = m(tok, act)
        m.config.copy_gate = False
        plain, _ = m(tok, act)
        m.config.copy_gate = True
        src, _ = m.copy_source(tok, act)
        gate_walk = m.copy_head(m(tok, act, return_hidden=True)[2][:, 2])
        act_still = act.clone()
        act_still[:, 2] = action(B=2)
        gate_still = m.copy_head(m(tok, act_still, return_hidden=True)[2][:, 2])
    d = gated - plain
    assert ((d.abs() > 0).sum(2) <= 1).all()
    torch.testing.assert_close(d.gather(2, src[:, :, None]).squeeze(2), d.sum(2))
    torch.testing.assert_close(gate_walk[:, 0], d[:, 2].sum(1))     # W's gate is the logit added at t=2
    assert (gate_walk - gate_still).abs().max() > 1e-4                 # and a key moves it
    # soft tokens and the step loop give the same logits
    probs = F.one_hot(tok, c.codebook_size).permute(0, 1, 4, 2, 3).float()
    with torch.no_grad():
        soft, _ = m(probs, act)
        st, steps = m.init_state(2), []
        for t in range(3):
            lg1, st = m.step(tok[:, t], act[:, t], st)
            steps.append(lg1)
    torch.testing.assert_close(soft, gated, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.stack(steps, 1), gated, atol=1e-5, rtol=1e-5)
    assert m.flops_per_step(1) > build().flops_per_step(1)

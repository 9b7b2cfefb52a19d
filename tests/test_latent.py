"""The continuous-latent world model (LATENTS / latent_dim > 0) end to end: preprocess.py --latents, the
token cache, the model's latent input and prediction, rollouts that feed the predicted latent back, the
training losses, and evaluate.py reading the latents. Tiny configs, CPU."""
import json
import os

import numpy as np
import pytest
import torch

import gfdata
from model_convGru import (WorldModelConfig, WorldModelConvFiLM, load_world_model, save_world_model, shift_maps,
                           warp_by_flow)
from rollout import display_frames, rollout, snap_latent
from tests.conftest import TINY
from tests.test_train import metrics, run_train
from tokendata import TokenCache, WindowDataset
from vqvae import VQConfig, VQVAE, load_vqvae

pytestmark = pytest.mark.usefixtures('one_thread')   # conftest.py

K, D, H, W = 16, 6, 6, 8


TINY_LATENT = dict(codebook_size=K, embed_dim=8, hidden_dim=12, n_layers=2, height=H, width=W, dilations=(1, 2),
                   film_dim=16, attn_dim=8, attn_heads=2, temporal_context=2, idm_dim=8, idm_pool=(2, 2),
                   idm_hidden=16, idm_dropout=0.0, latent_dim=D)


def tiny_latent(seed=0, **kw):
    """A latent model with a random codebook and latent statistics (as train.py would set them)."""
    d = dict(TINY_LATENT, **kw)
    torch.manual_seed(seed)
    m = WorldModelConvFiLM(WorldModelConfig(**d)).eval()
    m.set_latent_space(torch.randn(K, D), torch.randn(D) * 0.1, torch.rand(D) + 0.5)
    return m


def actions(B, T, yaw=2, pitch=1, keys=()):
    a = torch.zeros(B, T, 15)
    a[..., yaw] = 1
    a[..., 5 + pitch] = 1
    for k in keys:
        a[..., 8 + k] = 1
    return a


def nearest(m, z):
    """(..., D, H, W) raw latents -> nearest code ids, by brute force."""
    flat = z.movedim(-3, -1).reshape(-1, D)
    u, e = (flat - m.latent_mean) / m.latent_std, (m.codebook - m.latent_mean) / m.latent_std
    return torch.cdist(u, e).argmin(1).view(*z.shape[:-3], *z.shape[-2:])


# ---------------------------------------------------------------- preprocess and the cache

def test_preprocess_latents_are_the_encoders_output_and_quantize_to_the_tokens(latent_data):
    vq = load_vqvae(latent_data['vq'])
    man = json.load(open(os.path.join(latent_data['data'], 'manifest.json')))
    assert man['settings']['latents'] is True
    for c in man['clips']:
        with np.load(os.path.join(latent_data['data'], c['file'])) as z, \
                np.load(os.path.join(latent_data['plain'], c['file'])) as plain:
            lat, tok = z['latents'], z['tokens']
            assert lat.dtype == np.float16 and lat.shape == (len(tok), 8, 18, 32)
            np.testing.assert_array_equal(tok, plain['tokens'])            # the tokens do not change
        frames = gfdata.read_frames(os.path.join(latent_data['raw'], 'video', c['stem'] + '.mp4'))
        with torch.no_grad():
            want = vq.encoder(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)
        np.testing.assert_allclose(lat.astype(np.float32), want.numpy(), atol=2e-2, rtol=1e-2)
        with torch.no_grad():
            codes = vq.quantizer.nearest(torch.from_numpy(lat).float().permute(0, 2, 3, 1).reshape(-1, 8))
        assert (codes.view(tok.shape).numpy() == tok).mean() > 0.99     # fp16 storage may flip a near tie


def test_cache_holds_the_latents_only_when_the_data_has_them(latent_data):
    cache = TokenCache(latent_data['data'])
    assert cache.latent_dim == 8
    c = cache.clips[1]
    with np.load(os.path.join(latent_data['data'], c['file'])) as z:
        np.testing.assert_array_equal(cache.latent_window(c['start'] + 3, 5).numpy(), z['latents'][3:8])
    tok, act, lat = WindowDataset(cache, c['split'], 5, latents=True)[0]
    assert tok.shape == (5, 18, 32) and act.shape == (4, 15) and lat.shape == (5, 8, 18, 32)
    plain = TokenCache(latent_data['plain'])
    assert plain.latent_dim == 0
    with pytest.raises(ValueError, match='no latents'):
        WindowDataset(plain, 'train', 5, latents=True)


# ---------------------------------------------------------------- the model

@pytest.mark.parametrize('flow', [dict(), dict(flow_warp=1.0), dict(flow_warp=1.0, flow_hidden=True)])
def test_untrained_latent_model_copies_the_warped_latent_and_its_logits_pick_the_nearest_code(flow):
    m = tiny_latent(**flow)   # zero-init heads: the correction and the flow are 0
    B, T = 2, 3
    lat = torch.randn(B, T, D, H, W)
    tok = torch.randint(0, K, (B, T, H, W))
    for yaw, pitch in ((2, 1), (4, 0), (1, 2)):
        a = actions(B, T, yaw, pitch)
        with torch.no_grad():
            logits, st, pred = m(tok, a, latents=lat, return_latent=True)
        dx, dy, _ = m.camera_shifts(a)
        moved = shift_maps(m.normalise_latent(lat).flatten(0, 1), dx.flatten(), dy.flatten())
        want = m.raw_latent(moved).view_as(lat)
        torch.testing.assert_close(pred, want, atol=1e-5, rtol=1e-5)
        assert torch.equal(st.latent, pred[:, -1])
        assert torch.equal(logits.argmax(2), nearest(m, pred))
        if yaw != 2:
            assert not torch.allclose(pred, lat)                        # the camera moved it
    m.config.warp_fill = 'edge'                                         # a look down: the bottom rows uncovered
    a = actions(B, T, 2, 2)
    with torch.no_grad():
        pred = m(tok, a, latents=lat, return_latent=True)[2]
    torch.testing.assert_close(pred[..., :-1, :], lat[..., 1:, :], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pred[..., -1, :], lat[..., -1, :], atol=1e-5, rtol=1e-5)   # filled from the last row


def test_tokens_alone_enter_as_their_code_vectors_and_steps_equal_the_window():
    m = tiny_latent(zero_init_head=False)
    B, T = 2, 4
    tok = torch.randint(0, K, (B, T, H, W))
    a = actions(B, T, keys=(0,))
    with torch.no_grad():
        by_tokens, _ = m(tok, a)
        by_codes, _ = m(tok, a, latents=m.codebook[tok].movedim(-1, 2))
        torch.testing.assert_close(by_tokens, by_codes)
        lat = torch.randn(B, T, D, H, W)
        window, _, pred = m(tok, a, latents=lat, return_latent=True)
        st = m.init_state(B)
        for t in range(T):
            step, st = m.step(tok[:, t], a[:, t], st, latent_t=lat[:, t])
            torch.testing.assert_close(step, window[:, t], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(st.latent, pred[:, t], atol=1e-5, rtol=1e-5)


def test_distance_logits_stay_fp32_under_bf16_autocast():
    m = tiny_latent()
    tok, a, lat = torch.randint(0, K, (2, 2, H, W)), actions(2, 2), torch.randn(2, 2, D, H, W)
    with torch.no_grad():
        want, _, pred = m(tok, a, latents=lat, return_latent=True)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            got, _ = m(tok, a, latents=lat)
    assert got.dtype == torch.float32
    assert torch.equal(got.argmax(2), want.argmax(2)) and torch.equal(got.argmax(2), nearest(m, pred))


def test_latent_config_errors():
    with pytest.raises(ValueError, match='copy_gate'):
        WorldModelConfig(latent_dim=8, copy_gate=True)
    with pytest.raises(ValueError, match='flow_warp'):
        WorldModelConfig(flow_warp=1.0)                       # a token model has no latent to move
    with pytest.raises(ValueError, match='flow_warp'):
        WorldModelConfig(latent_dim=8, flow_warp=-0.5)
    with pytest.raises(ValueError, match='flow_hidden'):
        WorldModelConfig(latent_dim=8, flow_hidden=True)
    with pytest.raises(ValueError, match='flow_gate'):
        WorldModelConfig(latent_dim=8, flow_gate=True)
    with pytest.raises(ValueError, match='flow_gate'):
        WorldModelConfig(latent_dim=8, flow_warp=1.0, flow_gate=True, action_dim=5, camera_warp='none')
    with pytest.raises(ValueError, match='flow_mode'):
        WorldModelConfig(latent_dim=8, flow_mode='bicubic')        # no flow to interpolate
    with pytest.raises(ValueError, match='flow_mode'):
        WorldModelConfig(latent_dim=8, flow_warp=1.0, flow_mode='nearest')
    with pytest.raises(ValueError, match='latent_snap_moving'):
        WorldModelConfig(latent_dim=8, latent_snap_moving=1.5)
    with pytest.raises(ValueError, match='latent_snap_moving'):
        WorldModelConfig(latent_dim=8, latent_snap_moving=0.0, action_dim=5, camera_warp='none')
    token_model = WorldModelConvFiLM(WorldModelConfig(codebook_size=K, embed_dim=8, hidden_dim=8, n_layers=2,
                                                      height=H, width=W, attn_dim=8, attn_heads=2, idm_dim=8,
                                                      idm_pool=(2, 2), idm_hidden=8, film_dim=8))
    with pytest.raises(ValueError, match='token model'):
        token_model(torch.zeros(1, 1, H, W, dtype=torch.long), actions(1, 1), latents=torch.zeros(1, 1, D, H, W))


def test_latent_space_is_saved_with_the_weights(tmp_path):
    m = tiny_latent(zero_init_head=False)
    save_world_model(tmp_path / 'm.pt', m)
    m2, _ = load_world_model(tmp_path / 'm.pt')
    for name in ('codebook', 'latent_mean', 'latent_std'):
        assert torch.equal(getattr(m2, name), getattr(m, name))
    tok, a, lat = torch.randint(0, K, (1, 2, H, W)), actions(1, 2), torch.randn(1, 2, D, H, W)
    with torch.no_grad():
        torch.testing.assert_close(m2.eval()(tok, a, latents=lat)[0], m(tok, a, latents=lat)[0])


# ---------------------------------------------------------------- rollouts

def by_hand(m, ctx_tok, ctx_act, ctx_lat, acts, feed):
    """A latent rollout written out: warm up on the context's latents, then step, each step reading
    feed(the last predicted latent, the tokens it decoded). -> tokens, predicted latents, last logits."""
    toks, lats = [], []
    with torch.no_grad():
        _, s = m(ctx_tok[:, :-1], ctx_act, latents=ctx_lat[:, :-1])
        lat, cur = ctx_lat[:, -1], ctx_tok[:, -1]
        for n in range(acts.shape[1]):
            logits, s = m.step(cur, acts[:, n], s, latent_t=lat)
            cur = logits.argmax(1)
            toks.append(cur)
            lats.append(s.latent)
            lat = feed(s.latent, cur)
    return torch.stack(toks, 1), torch.stack(lats, 1), logits


def context(B=2, Tc=3, N=4, seed=0, **act):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, K, (B, Tc, H, W), generator=g), actions(B, Tc - 1, yaw=3),
            torch.randn(B, Tc, D, H, W, generator=g), actions(B, N, **act))


def test_rollout_feeds_back_the_predicted_latent_and_can_show_it():
    m = tiny_latent(zero_init_head=False)
    torch.manual_seed(1)
    vq = VQVAE(VQConfig(hidden1=4, hidden2=8, embedding_dim=D, codebook_size=K)).eval()
    ctx_tok, ctx_act, ctx_lat, acts = context(keys=(0,))
    gen, st, frames = rollout(m, ctx_tok, ctx_act, acts, context_latents=ctx_lat, vq=vq, display='latent')
    toks, lats, logits = by_hand(m, ctx_tok, ctx_act, ctx_lat, acts, lambda z, t: z)
    assert torch.equal(gen, toks)
    with torch.no_grad():
        torch.testing.assert_close(frames, vq.decoder(lats.flatten(0, 1)).view_as(frames))
    torch.testing.assert_close(st.latent, lats[:, -1])
    plain, _ = rollout(m, ctx_tok, ctx_act, acts)          # no latents: the codes of the context tokens
    assert not torch.equal(plain, gen)
    with pytest.raises(ValueError, match='latent'):
        display_frames(vq, logits, toks[:, -1], mode='latent')


def test_snapped_rollout_feeds_back_the_latent_moved_towards_its_tokens_codes():
    ctx_tok, ctx_act, ctx_lat, acts = context(Tc=2, N=3, yaw=0, keys=(3,))
    m = tiny_latent(zero_init_head=False, latent_snap=0.25)        # the model's own setting is the default
    codes = lambda t: m.codebook[t].movedim(-1, 1)
    quarter, _ = rollout(m, ctx_tok, ctx_act, acts, context_latents=ctx_lat)
    assert torch.equal(quarter, by_hand(m, ctx_tok, ctx_act, ctx_lat, acts, lambda z, t: 0.75 * z + 0.25 * codes(t))[0])
    # snap 1: after the first step the model reads exactly the codes of what it showed, as a token model
    full, _ = rollout(m, ctx_tok, ctx_act, acts, context_latents=ctx_lat, latent_snap=1.0)
    assert torch.equal(full, by_hand(m, ctx_tok, ctx_act, ctx_lat, acts, lambda z, t: codes(t))[0])
    none, _ = rollout(m, ctx_tok, ctx_act, acts, context_latents=ctx_lat, latent_snap=0.0)
    assert not torch.equal(none, quarter) and not torch.equal(none, full)


def test_snap_after_a_moving_transition_is_its_own_share():
    ctx_tok, ctx_act, ctx_lat, _ = context(Tc=2, N=4)
    acts = torch.cat([actions(1, 4), actions(1, 4, keys=(1,))])          # sample 0 idle, sample 1 strafes
    acts[1, 2] = actions(1, 1, yaw=4)[0, 0]                             # ... then turns
    m = tiny_latent(zero_init_head=False, latent_snap=0.5, latent_snap_moving=0.0)
    codes = lambda t: m.codebook[t].movedim(-1, 1)
    moved = torch.tensor([False, True]).view(2, 1, 1, 1)
    got, _ = rollout(m, ctx_tok, ctx_act, acts, context_latents=ctx_lat)
    want = by_hand(m, ctx_tok, ctx_act, ctx_lat, acts, lambda z, t: torch.where(moved, z, 0.5 * z + 0.5 * codes(t)))[0]
    assert torch.equal(got, want)
    same, _ = rollout(m, ctx_tok, ctx_act, acts, context_latents=ctx_lat, latent_snap_moving=-1.0)   # 0.5 for both
    assert torch.equal(same, by_hand(m, ctx_tok, ctx_act, ctx_lat, acts, lambda z, t: 0.5 * z + 0.5 * codes(t))[0])
    assert torch.equal(same[0], got[0]) and not torch.equal(same[1], got[1])
    z, t = torch.randn(3, D, H, W), torch.randint(0, K, (3, H, W))
    a = torch.cat([actions(1, 1), actions(1, 1, pitch=0), actions(1, 1, keys=(4,))])[:, 0]   # idle, look up, jump
    out = snap_latent(m, z, t, 1.0, action=a, snap_moving=0.25)
    torch.testing.assert_close(out[0], codes(t)[0])
    torch.testing.assert_close(out[1:], 0.75 * z[1:] + 0.25 * codes(t)[1:])


def test_reencoded_rollout_feeds_back_the_latent_of_the_decoded_picture():
    m = tiny_latent(zero_init_head=False)
    torch.manual_seed(2)
    vq = VQVAE(VQConfig(hidden1=4, hidden2=8, embedding_dim=D, codebook_size=K)).eval()
    ctx_tok, ctx_act, ctx_lat, acts = context(Tc=2, N=3, yaw=4)
    gen, _ = rollout(m, ctx_tok, ctx_act, acts, context_latents=ctx_lat, latent_reencode=vq)
    assert torch.equal(gen, by_hand(m, ctx_tok, ctx_act, ctx_lat, acts, lambda z, t: vq.encoder(vq.decoder(z)))[0])
    plain, _ = rollout(m, ctx_tok, ctx_act, acts, context_latents=ctx_lat)
    assert not torch.equal(plain, gen)


def play_and_generate(m, recs=None, **engine):
    """Live play (live_inference.Engine, greedy) and an offline rollout (inference.generate) of the same context
    and recorded transitions (default 8: W + a turn, idle, strafe + a look): the tokens (N, H, W) each shows."""
    import actions as A
    import inference as I
    import live_inference as L
    torch.manual_seed(1)
    vq = VQVAE(VQConfig(hidden1=4, hidden2=8, embedding_dim=D, codebook_size=K)).eval()
    edges = dict(encoding='v5', yaw=A.DEFAULT_YAW_EDGES, pitch=A.DEFAULT_PITCH_EDGE)
    ctx = I.Context(torch.randint(0, K, (3, H, W)), actions(1, 2, keys=(0,))[0], 'npz', '<test>')
    recs = recs or ([dict(ws=1, ad=0, scs=0, yaw_deg=3.0, pitch_deg=0.0)] * 3 + [dict(ws=0, ad=0, scs=0, yaw_deg=0.0,
             pitch_deg=0.0)] * 2 + [dict(ws=0, ad=-1, scs=0, yaw_deg=0.0, pitch_deg=-2.0)] * 3)
    acts = torch.from_numpy(A.encode_records(recs, edges))
    eng = L.Engine(m, vq, edges, ctx, 'greedy', **engine)
    played = []
    for r in recs:
        eng.step(r)
        played.append(eng.tokens[0].clone())
    return torch.stack(played), I.generate(m, ctx.tokens, ctx.actions, acts, 'greedy', **engine)[0]


def test_live_play_feeds_back_latents_as_offline_rollouts_do():
    m = tiny_latent(zero_init_head=False, latent_snap_moving=0.0,    # the snap reads each step's action too,
                    key_hold_bins=3)                                 # and the state counts the held keys
    played = {}
    for snap in (0.0, 0.5):
        played[snap], offline = play_and_generate(m, latent_snap=snap)
        assert torch.equal(offline, played[snap])
    assert not torch.equal(played[0.0], played[0.5])


def test_warp_by_flow_moves_each_cell_by_its_own_flow():
    x = torch.randn(2, 3, H, W)
    flow = torch.zeros(2, 2, H, W)
    torch.testing.assert_close(warp_by_flow(x, flow), x)
    flow[:, 0, :H // 2] = 1.0                              # the top half moves a cell right, the bottom stays
    flow[:, 1, H // 2:] = -0.5                             # the bottom half moves half a cell up
    y = warp_by_flow(x, flow)
    torch.testing.assert_close(y[:, :, :H // 2, 1:], x[:, :, :H // 2, :-1])
    torch.testing.assert_close(y[:, :, :H // 2, 0], x[:, :, :H // 2, 0])        # the border cell repeated
    torch.testing.assert_close(y[:, :, H // 2:-1], (x[:, :, H // 2:-1] + x[:, :, H // 2 + 1:]) / 2)
    torch.testing.assert_close(y[:, :, -1], x[:, :, -1])


def test_bicubic_flow_moves_whole_cells_exactly_and_blurs_less_than_bilinear_between_them():
    x = torch.randn(4, 3, H, W)
    flow = torch.zeros(4, 2, H, W)
    flow[:, 0] = 1.0
    torch.testing.assert_close(warp_by_flow(x, flow, 'bicubic'), warp_by_flow(x, flow))   # a whole cell: exact
    flow[:, 0] = 0.3
    flat = torch.full((1, 1, H, W), 2.5)
    torch.testing.assert_close(warp_by_flow(flat, flow[:1], 'bicubic'), flat)   # its weights sum to 1
    # a fractional shift repeated: bilinear averages neighbours every step, bicubic keeps more of the detail
    keep = {}
    for mode in ('bilinear', 'bicubic'):
        y = x
        for _ in range(4):
            y = warp_by_flow(y, flow, mode)
        keep[mode] = y[..., 4:-2].std() / x.std()
    assert keep['bicubic'] > keep['bilinear'] + 0.1, keep


def test_a_bicubic_flow_model_moves_its_input_latent_bicubically():
    m = tiny_latent(flow_warp=1.0, flow_mode='bicubic')
    torch.nn.init.normal_(m.flow_head.weight, std=0.3)
    tok, a, lat = torch.randint(0, K, (2, 1, H, W)), actions(2, 1, keys=(0,)), torch.randn(2, 1, D, H, W)
    with torch.no_grad():
        _, _, flow, moved = m(tok, a, latents=lat, return_flow=True)
    u = m.normalise_latent(lat[:, 0])
    torch.testing.assert_close(moved[:, 0], warp_by_flow(u, flow[:, 0], 'bicubic'))
    assert not torch.allclose(moved[:, 0], warp_by_flow(u, flow[:, 0]))


@pytest.mark.parametrize('hidden', [False, True])
def test_flow_stays_fp32_under_bf16_autocast_and_steps_equal_the_window(hidden):
    m = tiny_latent(flow_warp=1.0, flow_hidden=hidden)
    torch.nn.init.normal_(m.flow_head.weight, std=0.3)
    B, T = 2, 3
    tok, a, lat = torch.randint(0, K, (B, T, H, W)), actions(B, T, keys=(0,)), torch.randn(B, T, D, H, W)
    with torch.no_grad():
        window, _, pred = m(tok, a, latents=lat, return_latent=True)
        assert not torch.allclose(pred, lat)                 # no camera, no correction: the flow moved it
        with torch.autocast('cpu', dtype=torch.bfloat16):
            top = torch.randn(4, m.config.hidden_dim, H, W)
            f = m.flow(top)
        assert f.dtype == torch.float32 and f.abs().max() <= 1.0
        st = m.init_state(B)
        for t in range(T):
            step, st = m.step(tok[:, t], a[:, t], st, latent_t=lat[:, t])
            torch.testing.assert_close(st.latent, pred[:, t], atol=1e-5, rtol=1e-5)


def test_flow_hidden_moves_every_hidden_map_by_the_flow_after_its_step():
    m = tiny_latent(flow_warp=1.0, flow_hidden=True)
    torch.nn.init.normal_(m.flow_head.weight, std=0.3)
    still = tiny_latent(flow_warp=1.0)                   # the same weights, the hidden maps left in place
    still.load_state_dict(m.state_dict())
    tok, a, lat = torch.randint(0, K, (2, 1, H, W)), actions(2, 1, keys=(0,)), torch.randn(2, 1, D, H, W)
    with torch.no_grad():
        _, st, flow, moved = m(tok, a, latents=lat, return_flow=True)
        _, st0 = still(tok, a, latents=lat)
    assert flow.abs().max() > 0.1
    torch.testing.assert_close(moved[:, 0], warp_by_flow(m.normalise_latent(lat[:, 0]), flow[:, 0]))   # no camera
    for h, h0 in zip(st.hidden, st0.hidden):
        torch.testing.assert_close(h, warp_by_flow(h0, flow[:, 0]))
        assert not torch.allclose(h, h0)


@pytest.mark.parametrize('hidden', [False, True])
def test_gated_flow_leaves_an_idle_world_in_place_and_moves_it_under_a_key_or_a_turn(hidden):
    m = tiny_latent(flow_warp=1.0, flow_gate=True, flow_hidden=hidden)    # zero-init head: no correction
    torch.nn.init.normal_(m.flow_head.weight, std=0.3)
    torch.nn.init.constant_(m.flow_head.bias, 0.5)
    tok, lat = torch.randint(0, K, (1, 4, H, W)), torch.randn(1, 4, D, H, W)
    a = torch.cat([actions(1, 1), actions(1, 1, keys=(0,)), actions(1, 1), actions(1, 1, yaw=3)], 1)
    with torch.no_grad():
        _, _, pred, flow, _ = m(tok, a, latents=lat, return_latent=True, return_flow=True)
    assert flow[0, 0].abs().max() == 0 and flow[0, 2].abs().max() == 0
    torch.testing.assert_close(pred[:, [0, 2]], lat[:, [0, 2]], atol=1e-5, rtol=1e-5)   # idle: the frame stays
    assert flow[0, 1].abs().min() > 0 and flow[0, 3].abs().min() > 0                    # W, a turn: it moves


# ---------------------------------------------------------------- training

def tiny_window_loss(**model):
    import train
    torch.manual_seed(0)
    vq = VQVAE(VQConfig(hidden1=4, hidden2=8, embedding_dim=D, codebook_size=K)).eval()
    m = tiny_latent(zero_init_head=True, **model)
    m.set_latent_space(vq.quantizer.embed, torch.zeros(D), torch.ones(D))
    knobs = train.make_knobs({k: getattr(train, k) for k in dir(train) if k.isupper()}, 10_000)
    knobs.update(lpips_weight=0, semantic_weight=0, idm_weight=0, entropy_weight=0, corrupt=0, diagnostics=False)
    return train.WindowLoss(m, vq, None), m, knobs


def test_latent_noise_adds_its_variance_to_the_untrained_models_error():
    wl, m, knobs = tiny_window_loss()
    B, T = 4, 5
    lat = torch.randn(B, T + 1, D, H, W)
    tok, a = torch.randint(0, K, (B, T + 1, H, W)), actions(B, T)
    torch.manual_seed(3)
    clean = wl(tok, a, 0, dict(knobs, latent_noise=0.0), lat)[1]['latent_mse'].item()
    noisy = wl(tok, a, 0, dict(knobs, latent_noise=0.5), lat)[1]['latent_mse'].item()
    # the untrained model copies its input: the error grows by the noise's variance, 0.25 standard units
    assert noisy - clean == pytest.approx(0.25, abs=0.02)


def test_latent_ar_grad_lets_the_tails_loss_reach_the_teacher_forced_steps_through_the_fed_back_latent():
    B, T, ar = 2, 5, 3
    lat = torch.randn(B, T + 1, D, H, W)
    tok, a = torch.randint(0, K, (B, T + 1, H, W)), actions(B, T, yaw=3, keys=(0,))
    grads = {}
    for flag in (False, True):
        wl, m, knobs = tiny_window_loss()
        torch.nn.init.normal_(m.head.weight, std=0.1)   # a correction that depends on the input
        loss, out, _ = wl(tok, a, ar, dict(knobs, latent_ar_grad=flag, latent_weight=1.0), lat)
        out['latent_mse'].backward()
        grads[flag] = m.head.weight.grad.clone()
    assert not torch.allclose(grads[False], grads[True])


def half_cell_walk(B, T, seed, still_rows=0):
    """Smooth latent maps whose content moves half a cell left per step while D is held (still otherwise):
    a motion no token grid shows, and copying the frame misses. The bottom still_rows rows never move (far
    away: a depth-dependent motion no camera warp makes)."""
    g = torch.Generator().manual_seed(seed)
    wide = W + T + 4                                  # room for the pattern to move T / 2 cells
    base = torch.nn.functional.interpolate(torch.randn(B, D, 3, wide // 2, generator=g), size=(H, wide),
                                           mode='bicubic', align_corners=False)
    keys = torch.rand(B, T, generator=g) < 0.5
    a = actions(B, T)
    a[..., 8 + 3] = keys.float()                     # D
    pos = torch.cat([torch.zeros(B, 1), (0.5 * keys.float()).cumsum(1)], 1)         # cells moved so far
    xs = torch.arange(W).float()
    lat = []
    for t in range(T + 1):   # sample the wide pattern at x + pos by linear interpolation
        x = xs[None] + pos[:, t:t + 1] + 2
        i0 = x.floor().long()
        f = (x - i0)[:, None, None, :]
        pick = lambda i: base.gather(3, i[:, None, None, :].expand(B, D, H, W))
        lat.append(pick(i0) * (1 - f) + pick(i0 + 1) * f)
    lat = torch.stack(lat, 1)
    if still_rows:
        lat[..., H - still_rows:, :] = lat[:, :1, ..., H - still_rows:, :]
    return lat, a


def train_on_walks(wl, knobs, still_rows=0, steps=150):
    """Train the window loss's model on half-cell walks (Adam, 150 windows of 8); returns an unseen batch
    (tokens, latents, actions) and leaves the model in eval mode."""
    m = wl.model
    m.train()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    tok = torch.zeros(8, 5, H, W, dtype=torch.long)
    for i in range(steps):
        lat, a = half_cell_walk(8, 4, seed=i, still_rows=still_rows)
        loss, out, _ = wl(tok, a, 0, knobs, lat)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    return (tok, *half_cell_walk(8, 4, seed=10_000, still_rows=still_rows))


def test_a_latent_model_learns_a_half_cell_walk_that_copying_misses():
    wl, m, knobs = tiny_window_loss()
    tok, lat, a = train_on_walks(wl, dict(knobs, latent_weight=10.0))
    with torch.no_grad():
        _, _, pred = m(tok[:, :4], a, latents=lat[:, :4], return_latent=True)
    err = lambda p: (m.normalise_latent(p) - m.normalise_latent(lat[:, 1:]))[..., 1:-1].pow(2).mean().item()
    copy = err(lat[:, :4])
    assert err(pred) < 0.3 * copy, (err(pred), copy)


def test_a_latent_flow_learns_to_move_near_rows_and_keep_far_ones():
    wl, m, knobs = tiny_window_loss(flow_warp=1.0)
    tok, lat, a = train_on_walks(wl, dict(knobs, latent_weight=10.0), still_rows=H // 2)
    with torch.no_grad():
        _, _, top, pred = m(tok[:, :4], a, latents=lat[:, :4], return_hidden=True, return_latent=True)
        flow = m.flow(top.flatten(0, 1)).view(8, 4, 2, H, W)[..., 1:-1]       # the side columns see the border
    walk = a[..., 8 + 3].bool()
    near, far = flow[:, :, 0, :H // 2 - 1], flow[:, :, 0, H // 2 + 1:]       # away from the rows between
    assert -0.65 < near[walk].mean() < -0.35, near[walk].mean()             # content moves half a cell left
    assert near[~walk].abs().mean() < 0.1 and far.abs().mean() < 0.1, (near[~walk].abs().mean(), far.abs().mean())
    err = lambda p: (m.normalise_latent(p) - m.normalise_latent(lat[:, 1:]))[..., 1:-1].pow(2).mean().item()
    assert err(pred) < 0.3 * err(lat[:, :4]), (err(pred), err(lat[:, :4]))


def test_train_and_evaluate_a_latent_model(latent_data, tmp_path, tmp_path_factory, capsys):
    import evaluate as E
    from test_idm import shared_idm
    out = tmp_path / 'run'
    run_train(latent_data, out, '--MAX_STEPS=40', '--LATENTS=True', '--SEMANTIC_WEIGHT=0.0', '--CORRUPT_MAX=0.0',
              '--LATENT_AR_GRAD=True', '--LATENT_NOISE=0.1', '--LATENT_FLOW=0.5', '--LATENT_FLOW_MODE=bicubic',
              '--LATENT_SNAP=0.5', '--LATENT_SNAP_MOVING=0.0', '--LATENT_CARRY=1.0', '--LATENT_FLOW_ROUND=True',
              '--KEY_HOLD_BINS=4', '--LATENT_FLOW_KEYS=True', '--LATENT_FLOW_KEY_HOLD=True', '--LATENT_FM=8',
              '--LATENT_FM_STEPS=2',
              "--MODEL_OVERRIDES={'embed_dim': 16, 'hidden_dim': 16, "
              "'n_layers': 2, 'dilations': (1, 2), 'film_dim': 16, 'attn_dim': 16, 'attn_heads': 2, "
              "'temporal_context': 4, 'idm_dim': 16, 'idm_hidden': 32}")
    mse = [r['train/latent_mse'] for r in metrics(out) if 'train/latent_mse' in r]
    assert len(mse) == 40 and np.isfinite(mse).all()     # learning itself: the sub-cell motion test above
    fm = [r['train/fm'] for r in metrics(out) if 'train/fm' in r]
    assert len(fm) == 40 and np.isfinite(fm).all()       # ... and test_latent_fm.py's two-way choice
    assert any(r.get('train/ar_len', 0) > 0 for r in metrics(out))
    model, ck = load_world_model(out / 'ckpt_0000040.pt', weights_only=False)
    vq = load_vqvae(latent_data['vq'])
    assert model.config.latent_dim == 8 and ck['train_config']['LATENTS'] is True and model.config.flow_warp == 0.5
    assert (model.config.flow_mode, model.config.latent_snap, model.config.latent_snap_moving) == ('bicubic', 0.5, 0.0)
    assert model.config.key_hold_bins == 4 == ck['train_config']['KEY_HOLD_BINS']
    assert model.config.flow_keys and model.config.flow_key_hold
    assert model.key_hold_flow.shape == (5 * 4, 2, model.config.height, model.config.width)
    assert model.key_hold_flow.abs().sum() > 0           # the fields by frames held learned from the windows
    assert (model.config.fm_width, model.config.fm_steps, model.config.fm_temp) == (8, 2, 1.0)
    assert model.config.latent_carry == 1.0 and model.config.flow_round is True
    assert torch.equal(model.codebook, vq.quantizer.embed.float())
    lat = torch.from_numpy(np.array(TokenCache(latent_data['data']).latents)).float()
    assert model.latent_mean.numpy() == pytest.approx(lat.mean((0, 2, 3)).numpy(), abs=0.1)
    idm = shared_idm(tmp_path_factory)
    res = E.main(['--ckpt', str(out), '--data', latent_data['data'], '--idm', idm['path'],
                  '--out', str(tmp_path / 'eval'), '--quick', '--device', 'cpu', '--display', 'latent',
                  '--latent-snap-moving', '-1', '--fm-temp', '0.5', '--latent-carry', '0.5',
                  '--flow-round', '0'])
    assert res['settings']['display'] == 'latent' and res['settings']['latent_snap_moving'] == -1
    assert res['settings']['model_config']['latent_carry'] == 0.5 and res['settings']['model_config']['flow_round'] is False
    assert res['settings']['model_config']['fm_temp'] == 0.5 and res['settings']['model_config']['fm_steps'] == 2
    cf = res['scripted']['counterfactual']['per_action']['forward']
    assert len(cf['model']['psnr']) == len(res['settings']['cf_horizons'])
    assert 0 <= res['teacher_forced']['model']['token_acc'] <= 1
    flow = res['teacher_forced']['flow']                  # the learned flow, read per kind of transition
    assert sum(v['n'] for v in flow.values()) <= res['teacher_forced']['windows'] * res['teacher_forced']['transitions']
    assert all(0 <= v['abs'] <= 0.5 * 2 ** 0.5 for v in flow.values())
    # inference.py and live_inference.py play the same weights rounded (the model's own) or interpolated
    import inference as I
    import live_inference as L
    clip = os.path.join(latent_data['data'], TokenCache(latent_data['data']).clips[0]['file'])
    for flag, rounded in ((), True), (('--flow-round', '0'), False):
        capsys.readouterr()
        assert I.main(['--ckpt', str(out), '--context', clip, '--context-frames', '2', '--actions', 'strafe_left',
                       '--steps', '3', '--out', str(tmp_path / f'inf{len(flag)}'), '--upscale', '1', *flag]) == 0
        assert ('walks moved by whole cells' in capsys.readouterr().out) is rounded
        assert L.main(['--ckpt', str(out), '--context', clip, '--context-frames', '2', '--frames', '2',
                       '--out', str(tmp_path / f'live{len(flag)}'), *flag]) == 0
        assert ('walks moved by whole cells' in capsys.readouterr().out) is rounded


def test_flow_by_action_reads_the_flow_of_each_kind_of_transition():
    import evaluate as E
    a = actions(1, 4)                                          # idle, W alone, D alone, a right turn
    a[0, 1, 8] = a[0, 2, 11] = 1
    a[0, 3, 2], a[0, 3, 3] = 0, 1
    ys, xs = torch.meshgrid(torch.arange(H) - (H - 1) / 2, torch.arange(W) - (W - 1) / 2, indexing='ij')
    away = torch.stack([xs, ys]) / torch.stack([xs, ys]).norm(dim=0)
    flow = torch.zeros(4, 2, H, W)
    flow[1] = 0.4 * away                                       # W: content spreads from the centre
    flow[2, 0] = -0.3                                          # D: content moves left
    flow[3, 0] = -1.0
    r = E.flow_by_action(flow, a)
    assert set(r) == {'idle', 'forward', 'strafe_right', 'camera'} and all(v['n'] == 1 for v in r.values())
    assert r['idle']['abs'] == 0
    assert r['forward']['outward'] == pytest.approx(0.4) and r['forward']['dx'] == pytest.approx(0, abs=1e-6)
    assert r['strafe_right']['dx'] == pytest.approx(-0.3) and r['strafe_right']['outward'] == pytest.approx(0, abs=1e-6)
    assert r['camera']['abs'] == pytest.approx(1.0)


def test_flow_loss_is_the_blurred_error_of_the_moved_input_and_teaches_the_flow_alone():
    import torch.nn.functional as F
    wl, m, knobs = tiny_window_loss(flow_warp=1.0)
    lat, a = half_cell_walk(8, 4, seed=0, still_rows=H // 2)
    tok = torch.zeros(8, 5, H, W, dtype=torch.long)
    knobs = dict(knobs, latent_noise=0.0, flow_weight=10.0)
    _, out, _ = wl(tok, a, 0, knobs, lat)
    blur = lambda z: F.avg_pool2d(F.avg_pool2d(z, 3, 1, 1, count_include_pad=False), 3, 1, 1,
                                  count_include_pad=False)
    u = m.normalise_latent(lat).flatten(0, 1)            # zero flow, no camera: the input itself
    copy = (blur(u.view(8, 5, D, H, W)[:, :4].flatten(0, 1)) - blur(u.view(8, 5, D, H, W)[:, 1:].flatten(0, 1)))
    assert out['flow_mse'].item() == pytest.approx(copy.pow(2).mean().item(), rel=1e-4)
    # no latent MSE: the flow loss (and the CE) alone, the whole map walking (a 5x5 blur mixes this grid's
    # halves); the blurred error is small: at weight 10 alone the flow learns the mean motion first, not the key's
    tok, lat, a = train_on_walks(wl, dict(knobs, latent_weight=0.0, flow_weight=100.0))
    with torch.no_grad():
        flow = m(tok[:, :4], a, latents=lat[:, :4], return_flow=True)[2][..., 1:-1]
    walk = a[..., 8 + 3].bool()
    dx = flow[:, :, 0]
    assert -0.65 < dx[walk].mean() < -0.35 and dx[~walk].abs().mean() < 0.15, (dx[walk].mean(), dx[~walk].abs().mean())


def test_look_rest_weight_teaches_a_look_only_the_rows_the_pitch_warp_uncovers():
    """LATENT_LOOK_REST_WEIGHT = 0: on a look, and in the tail from its first look on, only the rows the whole-row
    warp uncovered are in the latent and CE losses; the rest of the truth (a 0.67-row move) cannot teach a take-back."""
    import train
    wl, m, knobs = tiny_window_loss(flow_warp=1.0)
    B, T, ar = 2, 4, 2                                  # steps 0-1 teacher-forced, 2-3 the tail
    a = actions(B, T)
    a[0, 1, 5:8] = torch.tensor([0., 0., 1.])           # sample 0 looks down at step 1 (content moves a row up)
    a[1, 0, 5:8] = torch.tensor([1., 0., 0.])           # sample 1 looks up at step 0 only
    w = train.look_loss_weights(m, torch.zeros(B, T, H, W, dtype=torch.long), a, T - ar, 0.0)
    assert w.shape == (B, T, H, W)
    assert (w[0, 0] == 1).all() and (w[1, 1:] == 1).all()         # no look, or a TF look's next steps: all cells
    assert (w[0, 1, -1] == 1).all() and (w[0, 1, :-1] == 0).all()  # the look down: its entering bottom row only
    assert (w[1, 0, 0] == 1).all() and (w[1, 0, 1:] == 0).all()    # the look up: its top row
    assert (w[0, 2:] == 0).all()                                   # the tail after the TF's last-step look
    tail_look = actions(B, T)
    tail_look[:, 2, 5:8] = torch.tensor([0., 0., 1.])
    wt = train.look_loss_weights(m, torch.zeros(B, T, H, W, dtype=torch.long), tail_look, T - ar, 0.0)
    assert (wt[:, :2] == 1).all() and (wt[:, 2, -1] == 1).all() and (wt[:, 2, :-1] == 0).all() and (wt[:, 3] == 0).all()
    # frame 2 is only a target (of the look down); frames 3-4 only the tail's targets: the truth's content moved
    # there is out of the loss, the entering row is in it
    torch.manual_seed(1)
    lat, tok = torch.randn(B, T + 1, D, H, W), torch.randint(0, K, (B, T + 1, H, W))
    knobs = dict(knobs, latent_noise=0.0, latent_weight=1.0, flow_weight=0.0)

    def losses(lat, tok, rest):
        with torch.no_grad():
            out = wl(tok, a, ar, dict(knobs, look_rest=rest), lat)[1]
        return out['latent_mse'].item(), out['ce_tf'].item(), out['ce_ar'].item()

    moved_lat, moved_tok = lat.clone(), tok.clone()
    moved_lat[0, 2, :, :-1] += 1.0
    moved_lat[0, 3:] += 1.0
    moved_tok[0, 2, :-1] = (tok[0, 2, :-1] + 1) % K
    moved_tok[0, 3:] = (tok[0, 3:] + 1) % K
    base, moved = losses(lat, tok, 0.0), losses(moved_lat, moved_tok, 0.0)
    assert moved == pytest.approx(base, rel=1e-5)
    full, full_moved = losses(lat, tok, 1.0), losses(moved_lat, moved_tok, 1.0)
    assert all(abs(x - y) > 1e-3 for x, y in zip(full, full_moved))
    entering = lat.clone()
    entering[0, 2, :, -1] += 1.0
    assert losses(entering, tok, 0.0)[0] > base[0] + 1e-3

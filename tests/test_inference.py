"""inference.py on the tiny trained world model of conftest (CPU): action parsing, contexts,
rollout length and reproducibility, and the files it writes."""
import json
import os

import cv2
import numpy as np
import pytest
import torch

import actions as A
import inference as I

torch.set_num_threads(1)
K = 3  # context frames: small and fast


def count_frames(path):
    cap = cv2.VideoCapture(str(path))
    n, shape = 0, None
    while True:
        ok, f = cap.read()
        if not ok:
            break
        n, shape = n + 1, f.shape
    return n, shape


def raw_dir(tiny):
    return os.path.join(os.path.dirname(tiny['data']), 'raw')


def clip(tiny, stem='bw_seed_3'):
    return os.path.join(tiny['data'], stem + '.npz')


@pytest.fixture(scope='module')
def loaded(tiny_ckpt):
    model, vq, edges, ck = I.load(tiny_ckpt['run'])  # a run folder: its newest checkpoint
    assert ck['path'] == tiny_ckpt['ckpt']
    return model, vq, edges


def gf_json(records):
    return dict(biome='plains', initial_weather='clear', start_time='Sunset',
                actions={str(i): dict(dict(ws=0, ad=0, scs=0, pitch=0.0, yaw=0.0, pitch_delta=0.0, yaw_delta=0.0,
                                           pos=[0, 0, 0]), **r) for i, r in enumerate(records)})


# ---------------------------------------------------------------- actions

def test_presets_and_sequences_encode_as_expected(loaded):
    _, _, edges = loaded
    assert edges['encoding'] == 'v5' and edges['yaw'] == (0.361, 5.327)  # the fixture data's own edges
    a = I.parse_actions('forward:3,turn_left:2', edges)
    assert a.shape == (5, 15)
    assert (a[:3, 8] == 1).all() and (a[:3, 2] == 1).all() and (a[:3, 6] == 1).all()   # W, yaw none, level
    assert (a[3:, 8] == 0).all() and (a[3:, 0] == 1).all()   # 6 deg/frame > 5.327: fast left, no W
    assert a.sum(1).tolist() == [3, 3, 3, 2, 2]
    a = I.parse_actions('forward:3,turn_left:2', edges, steps=7)  # repeated to the length asked for
    assert len(a) == 7 and (a[5:, 8] == 1).all()
    b = I.parse_actions('look_down', edges, steps=4)
    assert b.shape == (4, 15) and (b[:, 7] == 1).all() and (b[:, 2] == 1).all()
    assert len(I.parse_actions('jump', edges)) == I.STEPS and I.parse_actions('jump', edges)[0, 12] == 1
    with pytest.raises(ValueError, match='unknown action preset'):
        I.parse_actions('moonwalk', edges, 4)


def test_gf_json_actions_skip_record_zero(loaded, tmp_path):
    _, _, edges = loaded
    recs = [dict(ws=2, yaw_delta=5.0),             # record 0 belongs to no transition: ignored
            dict(ws=1, yaw_delta=0.2),             # 3 deg right: slow right
            dict(ad=2, pitch_delta=-0.1),          # -1.5 deg: look up
            dict(scs=1, yaw_delta=-0.5),           # -7.5 deg: fast left, jump
            dict(scs=3, ad=1)]                     # sprint + A
    meta = gf_json(recs)
    full, bare = tmp_path / 'full.json', tmp_path / 'bare.json'
    full.write_text(json.dumps(meta))
    bare.write_text(json.dumps(meta['actions']))
    a = I.parse_actions(str(full), edges)
    on = [sorted(np.flatnonzero(r)) for r in a]
    assert on == [[3, 6, 8], [2, 5, 11], [0, 6, 12], [2, 6, 9, 13]]
    np.testing.assert_array_equal(I.parse_actions(str(bare), edges), a)
    np.testing.assert_array_equal(I.parse_actions(str(full), edges, steps=2), a[:2])
    with pytest.raises(ValueError, match='4 transitions'):
        I.parse_actions(str(full), edges, steps=9)
    # the same records through actions.encode directly (what training uses)
    np.testing.assert_array_equal(a, A.encode(recs[1:], 'v5', edges['yaw'], edges['pitch']))


# ---------------------------------------------------------------- contexts

def test_npz_context_and_recorded_actions(loaded, tiny_ckpt):
    model, vq, edges = loaded
    ctx = I.load_context(clip(tiny_ckpt), vq, edges, start=5, frames=K)
    with np.load(clip(tiny_ckpt)) as z:
        tokens, actions = z['tokens'].astype(np.int64), z['actions']
    assert ctx.kind == 'npz' and ctx.tokens.shape == (K, 18, 32)
    np.testing.assert_array_equal(ctx.tokens.numpy(), tokens[5:5 + K])
    np.testing.assert_array_equal(ctx.actions.numpy(), actions[5:5 + K - 1])  # re-encoded == preprocess's
    rec = I.parse_actions('recorded', edges, steps=6, context=ctx)
    np.testing.assert_array_equal(rec, actions[5 + K - 1:5 + K - 1 + 6])   # action K-1 drives frame K-1 -> K
    np.testing.assert_array_equal(ctx.future_tokens.numpy(), tokens[5 + K:])
    assert len(I.parse_actions('recorded', edges, context=ctx)) == len(tokens) - 5 - K


def test_video_and_image_contexts(loaded, tiny_ckpt, tmp_path):
    model, vq, edges = loaded
    video = os.path.join(raw_dir(tiny_ckpt), 'video', 'bw_seed_4.mp4')
    ctx = I.load_context(video, vq, edges, start=2, frames=K, future=5)
    frames = I.gfdata.read_frames(video)
    assert ctx.kind == 'video' and ctx.tokens.shape == (K, 18, 32) and len(ctx.future_tokens) == 5
    assert ctx.real_frames.shape == (K + 5, 72, 128, 3)
    np.testing.assert_array_equal(ctx.real_frames, frames[2:2 + K + 5])
    np.testing.assert_array_equal(ctx.tokens.numpy(), I.encode_frames(vq, frames[2:2 + K]).numpy())
    # its GF metadata gives the context actions, the same as the preprocessed clip's
    with np.load(clip(tiny_ckpt, 'bw_seed_4')) as z:
        np.testing.assert_array_equal(ctx.actions.numpy(), z['actions'][2:2 + K - 1])
    png = tmp_path / 'frame.png'
    big = cv2.resize(frames[7], (256, 144), interpolation=cv2.INTER_NEAREST)   # resized back to 128x72
    cv2.imwrite(str(png), big[..., ::-1])
    img = I.load_context(str(png), vq, edges)
    assert img.kind == 'image' and img.tokens.shape == (1, 18, 32) and img.actions.shape == (0, 15)
    np.testing.assert_array_equal(img.tokens.numpy(), I.encode_frames(vq, frames[7:8]).numpy())
    with pytest.raises(ValueError, match='recorded needs'):
        I.parse_actions('recorded', edges, 4, img)
    with pytest.raises(ValueError, match='no context'):
        I.load_context(None, vq, edges)


# ---------------------------------------------------------------- rollouts

def test_rollout_length_seed_and_greedy(loaded, tiny_ckpt):
    model, vq, edges = loaded
    ctx = I.load_context(clip(tiny_ckpt), vq, edges, frames=K)
    acts = I.parse_actions('forward:3,turn_right:4', edges)
    run = lambda **kw: I.generate(model, ctx.tokens, ctx.actions, acts, **kw)
    a = run(sampling='sample', num_rollouts=3, seed=1)
    assert a.shape == (3, 7, 18, 32) and a.dtype == torch.long
    assert torch.equal(a, run(sampling='sample', num_rollouts=3, seed=1))        # same seed: same rollouts
    assert not torch.equal(a, run(sampling='sample', num_rollouts=3, seed=2))    # another seed: others
    assert not torch.equal(a[0], a[1])                                           # one batch, distinct draws
    g = run(sampling='greedy', num_rollouts=2, seed=1)
    assert torch.equal(g, run(sampling='greedy', num_rollouts=2, seed=9)) and torch.equal(g[0], g[1])
    assert torch.equal(g, run(sampling='sample', top_k=1, num_rollouts=2, seed=4))  # top-1 sampling is greedy
    # actions matter: the same draws under another action give other tokens
    other = I.generate(model, ctx.tokens, ctx.actions, I.parse_actions('turn_left', edges, 7), 'sample',
                       num_rollouts=3, seed=1)
    assert not torch.equal(a, other)


def test_commit_decoding_moves_the_cells_that_more_likely_change(loaded, tiny_ckpt):
    from rollout import sample_tokens
    # 3 cells holding token 0. p(0): 0.6 (stays), 0.4 (changes: greedy still keeps it, the rest is spread
    # over 1..3), 0.3 but the cell holds nothing (stay_valid 0: plain argmax)
    p = torch.tensor([[0.6, 0.2, 0.1, 0.1], [0.4, 0.3, 0.2, 0.1], [0.3, 0.4, 0.2, 0.1]])
    logits = p.log().T.reshape(1, 4, 1, 3)
    stay = torch.zeros(1, 1, 3, dtype=torch.long)
    assert sample_tokens(logits).tolist() == [[[0, 0, 1]]]
    assert sample_tokens(logits, 'commit', stay=stay).tolist() == [[[0, 1, 1]]]
    assert sample_tokens(logits, 'commit', stay=stay, change_threshold=0.35).tolist() == [[[0, 0, 1]]]
    assert sample_tokens(logits, 'commit', stay=stay, stay_valid=torch.tensor([[[1., 1., 0.]]])).tolist() == [[[0, 1, 1]]]
    with pytest.raises(ValueError, match='stay'):
        sample_tokens(logits, 'commit')
    # through the model: deterministic, and never keeps a cell whose current (warped) token is below 1/2
    model, vq, edges = loaded
    ctx = I.load_context(clip(tiny_ckpt), vq, edges, frames=K)
    acts = I.parse_actions('turn_right:3', edges)
    c = I.generate(model, ctx.tokens, ctx.actions, acts, sampling='commit', num_rollouts=1, seed=1)
    assert torch.equal(c, I.generate(model, ctx.tokens, ctx.actions, acts, sampling='commit', num_rollouts=1, seed=5))
    from rollout import rollout
    tok, ca, a = (torch.as_tensor(np.asarray(x))[None] for x in (ctx.tokens, ctx.actions, acts))
    gen, _, lg = rollout(model, tok.long(), ca.float(), a.float(), sampling=dict(mode='commit'), return_logits=True)
    prev = torch.cat([tok[:, -1:].long(), gen[:, :-1]], 1)
    stay, valid = model.copy_source(prev, a.float())
    p_stay = lg.float().softmax(2).gather(2, stay[:, :, None]).squeeze(2)
    kept = (gen == stay) & (valid > 0)
    assert (p_stay[kept] >= 0.5).all()
    assert torch.equal(gen[~(p_stay < 0.5)], lg.argmax(2)[~(p_stay < 0.5)])     # elsewhere it is greedy


def test_commit_sample_changes_cells_at_the_models_rate():
    from rollout import sample_tokens
    # one cell holding token 0 with p(0) = 0.6, another with p(0) ~ 1; 4,000 draws of each
    p = torch.tensor([[0.6, 0.1, 0.2, 0.1], [1 - 3e-9, 1e-9, 1e-9, 1e-9]])
    logits = p.log().T.reshape(1, 4, 1, 2).expand(4000, -1, -1, -1)
    stay = torch.zeros(4000, 1, 2, dtype=torch.long)
    out = sample_tokens(logits, 'commit_sample', stay=stay, generator=torch.Generator().manual_seed(0))
    moved = out[..., 0] != 0
    assert abs(moved.float().mean().item() - 0.4) < 0.03             # changes with probability 1 - p(stay)
    assert (out[..., 0][moved] == 2).all()                             # to the most likely other token
    assert (out[..., 1] == 0).all()                                    # a sure cell never changes
    again = sample_tokens(logits, 'commit_sample', stay=stay, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_display_frames_blend_only_where_asked(loaded, tiny_ckpt):
    from rollout import decode_tokens, display_frames, rollout
    model, vq, edges = loaded
    ctx = I.load_context(clip(tiny_ckpt), vq, edges, frames=K)
    acts = I.parse_actions('forward:4', edges)
    tok, ca, a = (torch.as_tensor(np.asarray(x))[None] for x in (ctx.tokens, ctx.actions, acts))
    with torch.no_grad():
        gen, _, lg, frames = rollout(model, tok.long(), ca.float(), a.float(), sampling=dict(mode='commit'),
                                     return_logits=True, vq=vq, display='tokens')
        assert frames.shape == (1, 4, 3, 72, 128)
        torch.testing.assert_close(frames, decode_tokens(vq, gen))           # 'tokens': what is fed back
        gen_s, _, soft = rollout(model, tok.long(), ca.float(), a.float(), sampling=dict(mode='commit'), vq=vq,
                                 display='soft')
        assert torch.equal(gen_s, gen)                                        # the display never changes the tokens
        torch.testing.assert_close(soft[0], vq.decode_soft(lg[0].float().softmax(1)))
        l0, t0 = lg[:, 0].float(), gen[:, 0]
        mean_code = vq.quantizer.embed.mean(0)[None, :, None, None].expand(1, -1, *t0.shape[1:])
        torch.testing.assert_close(display_frames(vq, torch.zeros_like(l0), t0, None, 'soft'), vq.decoder(mean_code))
        valid = torch.ones_like(t0, dtype=torch.float32)
        # soft_changed: every cell kept -> the tokens' frame; every cell changed (or empty) -> the soft frame
        torch.testing.assert_close(display_frames(vq, l0, t0, (t0, valid), 'soft_changed'), frames[:, 0])
        torch.testing.assert_close(display_frames(vq, l0, t0, ((t0 + 1) % vq.codebook_size, valid), 'soft_changed'),
                                   soft[:, 0])
        torch.testing.assert_close(display_frames(vq, l0, t0, (t0, valid * 0), 'soft_changed'), soft[:, 0])
        with pytest.raises(ValueError, match='display'):
            display_frames(vq, l0, t0, None, 'blurry')


def test_cli_npz_recorded_writes_everything(tiny_ckpt, tmp_path):
    out = tmp_path / 'rec'
    rc = I.main(['--ckpt', tiny_ckpt['ckpt'], '--context', clip(tiny_ckpt), '--context-frames', str(K),
                 '--actions', 'recorded', '--steps', '6', '--out', str(out), '--upscale', '2', '--device', 'cpu'])
    assert rc == 0
    tokens = np.load(out / 'tokens.npy')
    assert tokens.shape == (1, 6, 18, 32)
    assert count_frames(out / 'rollout.mp4') == (K + 6, (144, 256, 3))
    assert count_frames(out / 'compare.mp4') == (K + 6, (144, 512, 3))   # ground truth | rollout (automatic)
    for png in ('rollout.png', 'compare.png'):
        img = cv2.imread(str(out / png))
        assert img is not None and img.shape[1] == 2 * 128 * len(I.sheet_columns(K, 6))
    assert cv2.imread(str(out / 'compare.png')).shape[0] == 2 * 2 * 72
    with np.load(clip(tiny_ckpt)) as z:
        np.testing.assert_array_equal(np.load(out / 'actions.npy'), z['actions'][K - 1:K + 5])
        np.testing.assert_array_equal(np.load(out / 'context.npy'), z['tokens'][:K])


def test_cli_video_context_side_by_side_and_rollouts(tiny_ckpt, tmp_path, capsys):
    out = tmp_path / 'vid'
    video = os.path.join(raw_dir(tiny_ckpt), 'video', 'bw_seed_5.mp4')
    rc = I.main(['--ckpt', tiny_ckpt['run'], '--context', video, '--context-frames', '2', '--actions', 'forward:2,turn_left:3',
                 '--out', str(out), '--sampling', 'sample', '--temperature', '0.9', '--top-p', '0.9', '--seed', '5',
                 '--num-rollouts', '2', '--side-by-side', '--upscale', '1'])
    assert rc == 0
    printed = capsys.readouterr().out
    assert str(out / 'rollout.mp4') in printed and str(out / 'compare.mp4') in printed
    assert np.load(out / 'tokens.npy').shape == (2, 5, 18, 32)
    assert count_frames(out / 'rollout.mp4') == (2 + 5, (72, 256, 3))            # two rollouts side by side
    assert count_frames(out / 'compare.mp4') == (2 + 5, (72, 4 * 128, 3))        # real | GT | rollout 0 | 1
    assert cv2.imread(str(out / 'rollout.png')).shape[0] == 2 * 2 * 72           # one row per rollout


def test_cli_image_context_and_errors(tiny_ckpt, tmp_path, capsys):
    png = tmp_path / 'f.png'
    frame = I.gfdata.read_frames(os.path.join(raw_dir(tiny_ckpt), 'video', 'bw_seed_3.mp4'), keep=[0])[0]
    cv2.imwrite(str(png), frame[..., ::-1])
    out = tmp_path / 'img'
    assert I.main(['--ckpt', tiny_ckpt['ckpt'], '--context', str(png), '--actions', 'strafe_right', '--steps', '3',
                   '--out', str(out), '--upscale', '1']) == 0
    assert count_frames(out / 'rollout.mp4')[0] == 1 + 3
    capsys.readouterr()
    assert I.main(['--ckpt', tiny_ckpt['ckpt'], '--actions', 'forward', '--out', str(tmp_path / 'x')]) == 2
    assert 'no context given' in capsys.readouterr().err
    assert not (tmp_path / 'x').exists()
    assert I.main(['--ckpt', tiny_ckpt['ckpt'], '--context', str(png), '--actions', 'recorded',
                   '--out', str(tmp_path / 'y')]) == 2
    assert 'recorded needs' in capsys.readouterr().err
    assert I.main(['--ckpt', str(tmp_path), '--context', str(png), '--actions', 'idle', '--out', str(tmp_path / 'z')]) == 2
    assert 'no ckpt_' in capsys.readouterr().err
    assert I.main(['--ckpt', tiny_ckpt['ckpt'], '--context', str(png), '--actions', 'idle', '--flow-round', '1',
                   '--out', str(tmp_path / 'w')]) == 2
    assert 'has no learned flow (flow_warp=0)' in capsys.readouterr().err and not (tmp_path / 'w').exists()


def test_mp4_falls_back_to_opencv(tmp_path, monkeypatch):
    import blockworld

    def broken(*a, **k):
        raise RuntimeError('no libx264')
    monkeypatch.setattr(blockworld, 'write_video', broken)
    frames = np.random.default_rng(0).integers(0, 255, (5, 72, 128, 3), dtype=np.uint8)
    assert I.write_mp4(str(tmp_path / 'v.mp4'), frames) == 'mp4v'
    assert count_frames(tmp_path / 'v.mp4') == (5, (72, 128, 3))

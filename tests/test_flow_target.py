"""LATENT_FLOW_TARGET: the frames' optical flow per token cell (opticalflow.py, preprocess.py --flow) and the loss
that teaches a latent model's learned flow to move as the pictures do."""
import json
import os
import sys

import numpy as np
import pytest
import torch

import opticalflow
from model_convGru import WorldModelConvFiLM
from tests.test_latent import D, H, K, W, actions, tiny_latent
from tests.test_train import metrics, run_train
from tokendata import TokenCache, WindowDataset
from train import flow_target_error

pytestmark = pytest.mark.usefixtures('one_thread')   # conftest.py


def texture(seed=0, size=(72, 128)):
    """A smooth random RGB picture (blocks of colour at several scales), uint8."""
    import cv2
    g = np.random.default_rng(seed)
    img = sum(cv2.resize(g.random((size[0] // s, size[1] // s, 3)).astype(np.float32), size[::-1],
                         interpolation=cv2.INTER_CUBIC) for s in (4, 8, 16))
    return (255 * (img - img.min()) / np.ptp(img)).astype(np.uint8)


def moved(img, M):
    import cv2
    return cv2.warpAffine(img, np.float32(M), img.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def test_cell_flow_measures_a_shift_a_zoom_and_no_motion_in_noise():
    a = texture()
    f = opticalflow.cell_flow(np.stack([a, moved(a, [[1, 0, 2], [0, 1, -1]])]), (18, 32)).astype(np.float32)
    assert f.shape == (1, 3, 18, 32) and f.dtype == np.float32
    inner = f[0, :, 2:-2, 2:-2]                              # 2 px right, 1 up = +0.5 / -0.25 cells of 4 px
    assert inner[0].mean() == pytest.approx(0.5, abs=0.06) and inner[1].mean() == pytest.approx(-0.25, abs=0.05)
    assert inner[2].mean() > 0.8                             # forward and backward agree
    # content spreading from the centre (a walk forward): the left cells move left, the right ones right
    z = 1.04
    f = opticalflow.cell_flow(np.stack([a, moved(a, [[z, 0, 64 * (1 - z)], [0, z, 36 * (1 - z)]])]), (18, 32))
    f = f.astype(np.float32)[0]
    assert f[0, 4:-4, 2:8].mean() < -0.2 and f[0, 4:-4, -8:-2].mean() > 0.2
    assert f[1, 2:5, 4:-4].mean() < -0.1 and f[1, -5:-2, 4:-4].mean() > 0.1
    # two unrelated pictures: no motion agrees both ways
    f = opticalflow.cell_flow(np.stack([a, texture(1)]), (18, 32)).astype(np.float32)
    assert f[0, 2].mean() < 0.5 * inner[2].mean()
    with pytest.raises(ValueError, match='whole cells'):
        opticalflow.cell_flow(np.stack([a, a]), (17, 32))


def test_flow_target_error_counts_walks_only_weighted_by_reliability():
    B, T = 2, 3
    a = actions(B, T, keys=(0,))                            # W, camera still: walking
    a[1, 1, 2], a[1, 1, 0] = 0, 1                           # one transition turns: not a walk
    tgt = torch.zeros(B, T, 3, H, W)
    tgt[:, :, 0], tgt[:, :, 2] = 0.3, 1.0
    flow = torch.full((B, T, 2, H, W), 0.0)
    flow[:, :, 0] = 0.3
    assert flow_target_error(flow, tgt, a, 1.0).item() == pytest.approx(0.0, abs=1e-7)
    turning = flow.clone()
    turning[1, 1] = 5.0                                     # any flow on the turn costs nothing
    assert flow_target_error(turning, tgt, a, 1.0).item() == pytest.approx(0.0, abs=1e-7)
    off = flow.clone()
    off[0, 0, 1] = 0.2                                      # dy wrong by 0.2 on one walking transition of 5
    assert flow_target_error(off, tgt, a, 1.0).item() == pytest.approx(0.2 ** 2 / 2 / 5, rel=1e-5)
    unreliable = tgt.clone()
    unreliable[0, 0, 2] = 0.0                               # ... where the target has no weight
    assert flow_target_error(off, unreliable, a, 1.0).item() == pytest.approx(0.0, abs=1e-7)
    far = tgt.clone()
    far[:, :, 0] = 3.0                                      # beyond the flow's reach: clipped to 0.95 flow_warp
    assert flow_target_error(flow, far, a, 0.5).item() == pytest.approx((0.475 - 0.3) ** 2 / 2, rel=1e-4)
    idle = actions(B, T)                                    # no walk in the batch: 0, and still in the graph
    flow.requires_grad_(True)
    e = flow_target_error(flow, tgt, idle, 1.0)
    assert e.item() == 0 and e.requires_grad


def test_the_loss_teaches_the_model_flow_a_walks_motion():
    """Random latents carry no motion: the flow of a gated model learns from the target alone, W's content moving
    right by 0.4 cells and S's left, and stays zero on idle transitions."""
    torch.manual_seed(0)
    m = tiny_latent(flow_warp=1.0, flow_gate=True)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    B, T = 4, 3
    a = torch.cat([actions(2, T, keys=(0,)), actions(2, T, keys=(2,))])
    tgt = torch.zeros(B, T, 3, H, W)
    tgt[:2, :, 0], tgt[2:, :, 0], tgt[:, :, 2] = 0.4, -0.4, 1.0
    for _ in range(150):
        tok, lat = torch.randint(0, K, (B, T, H, W)), torch.randn(B, T, D, H, W)
        flow = m(tok, a, latents=lat, return_flow=True)[2]
        loss = flow_target_error(flow, tgt, a, 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    tok, lat = torch.randint(0, K, (B, T, H, W)), torch.randn(B, T, D, H, W)
    with torch.no_grad():
        flow = m(tok, a, latents=lat, return_flow=True)[2]
        idle = m(tok, actions(B, T), latents=lat, return_flow=True)[2]
    assert flow[:2, :, 0].mean() == pytest.approx(0.4, abs=0.08) and flow[2:, :, 0].mean() == pytest.approx(-0.4, abs=0.08)
    assert flow[:, :, 1].abs().mean() < 0.08 and idle.abs().max() == 0


@pytest.fixture(scope='module')
def flow_data(data, tmp_path_factory):
    """The same clips and VQ-VAE as `data`, preprocessed with --latents --flow."""
    import preprocess
    out = tmp_path_factory.mktemp('flow_data') / 'tokens'
    rc = preprocess.main(['--input', data['raw'], '--output', str(out), '--vqvae', data['vq'], '--workers', '1',
                          '--latents', '--flow'])
    assert not rc
    return dict(data, data=str(out))


def test_preprocess_flow_reaches_the_cache_and_the_windows(flow_data, data):
    import gfdata
    man = json.load(open(os.path.join(flow_data['data'], 'manifest.json')))
    assert man['settings']['flow'] is True
    cache = TokenCache(flow_data['data'])
    assert cache.has_flow and cache.flow.shape == (len(cache.tokens), 3, 18, 32)
    c = man['clips'][0]
    with np.load(os.path.join(flow_data['data'], c['file'])) as z:
        flow = z['flow']
        assert flow.dtype == np.float16 and flow.shape == (len(z['tokens']) - 1, 3, 18, 32)
    frames = gfdata.read_frames(os.path.join(flow_data['raw'], 'video', c['stem'] + '.mp4'))
    np.testing.assert_array_equal(flow, opticalflow.cell_flow(frames, (18, 32)))   # the frames' own flow
    row = next(r for r in cache.clips if r['file'] == c['file'])
    assert np.array_equal(cache.flow[row['start']:row['start'] + row['length'] - 1], flow)
    assert not np.asarray(cache.flow[row['start'] + row['length'] - 1]).any()      # no transition after the last
    ds = WindowDataset(cache, row['split'], 6, latents=True, flow=True)
    s = int(ds.starts[0])
    tok, act, lat, fl = ds[0]
    assert fl.shape == (5, 3, 18, 32) and torch.equal(fl, torch.from_numpy(np.array(cache.flow[s:s + 5])))
    with pytest.raises(ValueError, match='no optical flow'):
        WindowDataset(TokenCache(data['data']), 'train', 6, flow=True)


def test_train_with_flow_target_and_evaluate(flow_data, tmp_path, tmp_path_factory):
    import evaluate as E
    from test_idm import shared_idm
    out = tmp_path / 'run'
    lat = ['--LATENTS=True', '--SEMANTIC_WEIGHT=0.0', '--CORRUPT_MAX=0.0', '--LATENT_FLOW=1.0',
           '--LATENT_FLOW_GATE=True']
    # walks moved by the keys' fields alone (LATENT_FLOW_WALK_KEYS), which learn from the target only
    run_train(flow_data, out, '--MAX_STEPS=12', *lat, '--LATENT_FLOW_TARGET=2.0', '--LATENT_FLOW_KEYS=True',
              '--LATENT_FLOW_WALK_KEYS=True')
    err = [r['train/flow_target_mse'] for r in metrics(out) if 'train/flow_target_mse' in r]
    assert len(err) == 12 and np.isfinite(err).all() and max(err) > 0   # every step has walks in its batch
    ck = torch.load(out / 'ckpt_0000012.pt', weights_only=False)
    assert ck['train_config']['LATENT_FLOW_TARGET'] == 2.0 and ck['config']['flow_walk_keys']
    assert ck['model']['key_flow'].abs().amax() > 0                       # the fields learned from the target
    # evaluate.py puts the pictures' own flow beside the learned one, per kind of transition, on the same windows
    res = E.main(['--ckpt', str(out), '--data', flow_data['data'], '--idm', shared_idm(tmp_path_factory)['path'],
                  '--out', str(tmp_path / 'eval'), '--quick', '--device', 'cpu'])
    learned, true = res['teacher_forced']['flow'], res['teacher_forced']['flow_true']
    assert learned.keys() == true.keys() and all(learned[k]['n'] == true[k]['n'] for k in true)
    assert true['camera']['abs'] > 0.2 and learned != true
    with pytest.raises(AssertionError, match='LATENT_FLOW_TARGET'):   # the flow it teaches must exist
        run_train(flow_data, tmp_path / 'bad', '--MAX_STEPS=2', '--LATENTS=True', '--LATENT_FLOW_TARGET=1.0')
    with pytest.raises(AssertionError, match='LATENT_FLOW_WALK_KEYS'):   # ... and the fields need the target
        run_train(flow_data, tmp_path / 'bad2', '--MAX_STEPS=2', *lat, '--LATENT_FLOW_KEYS=True',
                  '--LATENT_FLOW_WALK_KEYS=True')


def test_walk_fields_are_the_weighted_least_squares_of_the_flow_on_the_keys(flow_data):
    """opticalflow.fit_walk_fields (experiments/walk_fields.py): per cell, the fit is the reliability-weighted least
    squares of the optical flow on the five keys over the train walks (checked against numpy's lstsq on two cells);
    describe() reads a field that points away from the centre as outward and one that points right as dx > 0."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'experiments'))
    import walk_fields
    from model_convGru import MOVEMENT_KEYS, walking_actions
    cache = TokenCache(flow_data['data'])
    fields, n = opticalflow.fit_walk_fields(cache, MOVEMENT_KEYS, ridge=1e-9, chunk=7)   # chunks add up
    assert fields.shape == (5, 2, 18, 32) and n > 0
    rows = np.concatenate([np.arange(c['start'], c['start'] + c['length'] - 1)
                           for c in cache.clips if c['split'] == 'train'])
    act = np.asarray(cache.actions[rows], dtype=np.float32)
    walk = walking_actions(torch.from_numpy(act)).numpy()   # the model's own test of a walk, in torch
    rows = rows[walk]
    assert n == len(rows)
    x = (act[walk][:, list(MOVEMENT_KEYS)] > 0.5).astype(np.float64)
    used = x.any(0)                      # a key never down in these clips has no fit (the ridge leaves it 0)
    big = np.unravel_index(np.abs(fields[used]).max((0, 1)).argmax(), (18, 32))   # the cell that moves most
    assert np.abs(fields[used]).max() > 0.05
    for (h, w) in ((9, 16), tuple(int(i) for i in big)):
        f = np.asarray(cache.flow[rows, :, h, w], dtype=np.float64)
        sw = np.sqrt(f[:, 2])
        for c in range(2):
            ref = np.linalg.lstsq(x[:, used] * sw[:, None], f[:, c] * sw, rcond=None)[0]
            np.testing.assert_allclose(fields[used, c, h, w], ref, atol=1e-6)
    H, W = 18, 32
    ys, xs = np.meshgrid(np.arange(H) - (H - 1) / 2, np.arange(W) - (W - 1) / 2, indexing='ij')
    radial = np.zeros((5, 2, H, W))
    radial[0] = 0.1 * np.stack([xs, ys]) / np.hypot(xs, ys)     # W: outward 0.1
    radial[1, 0] = 0.2                                          # A: content right
    lines = walk_fields.describe(radial)
    assert 'outward +0.100' in lines[0] and 'dx +0.200' in lines[1] and 'outward +0.000' in lines[2]


def test_train_with_the_walk_fields_fitted_and_frozen(flow_data, tmp_path):
    """LATENT_FLOW_WALK_FIT: the keys' fields are the data's fit from the first step to the last (no flow target
    needed) while the rest of the model learns; experiments/walk_fields.py --out writes the same fields.
    LATENT_FLOW_KEYS_WALK_ONLY reaches the model's config."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'experiments'))
    import walk_fields
    from model_convGru import FLOW_REACH, MOVEMENT_KEYS, load_world_model
    out = tmp_path / 'run'
    lat = ['--LATENTS=True', '--SEMANTIC_WEIGHT=0.0', '--CORRUPT_MAX=0.0', '--LATENT_FLOW=1.0',
           '--LATENT_FLOW_GATE=True', '--LATENT_FLOW_KEYS=True', '--LATENT_FLOW_WALK_KEYS=True']
    run_train(flow_data, out, '--MAX_STEPS=4', '--CKPT_STEPS=2', *lat, '--LATENT_FLOW_WALK_FIT=True',
              '--LATENT_FLOW_KEYS_WALK_ONLY=True')
    fit, _ = opticalflow.fit_walk_fields(TokenCache(flow_data['data']), MOVEMENT_KEYS)
    first, _ = load_world_model(out / 'ckpt_0000002.pt', weights_only=False)
    last, ck = load_world_model(out / 'ckpt_0000004.pt', weights_only=False)
    assert ck['train_config']['LATENT_FLOW_WALK_FIT'] and ck['train_config']['LATENT_FLOW_TARGET'] == 0
    assert ck['config']['flow_keys_walk_only']                                # the next experiment's switch
    eye = torch.eye(ck['config']['action_dim'])[list(MOVEMENT_KEYS)]            # each key down alone
    lim = FLOW_REACH * last.config.flow_warp
    np.testing.assert_allclose(last.walk_flow(eye).detach().numpy(), np.clip(fit, -lim, lim), atol=1e-5)
    assert torch.equal(first.key_flow, last.key_flow) and last.key_flow.abs().amax() > 0   # frozen, not zero
    assert not torch.equal(first.head.weight, last.head.weight)                            # the rest learns
    copy = tmp_path / 'copy'
    walk_fields.main([flow_data['data'], '--into', str(out / 'ckpt_0000004.pt'), '--out', str(copy)])
    assert torch.equal(torch.load(copy / 'ckpt_0000004.pt', weights_only=False)['model']['key_flow'], last.key_flow)
    with pytest.raises(AssertionError, match='LATENT_FLOW_WALK_FIT'):   # it fits the fields walk keys use
        run_train(flow_data, tmp_path / 'bad', '--MAX_STEPS=2', *lat[:-1], '--LATENT_FLOW_WALK_FIT=True')

"""train.py on a tiny config and real blockworld tokens (CPU). Runs the script as a subprocess,
as a user would, since its constants are module globals."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import actions as A
from tests.conftest import ROOT, TINY

def run_train(data, out_dir, *extra, timeout=300, wait=True):
    cmd = [sys.executable, os.path.join(ROOT, 'train.py'), f"--DATA_DIR={data['data']}", f"--VQVAE_CKPT={data['vq']}",
           f'--OUT_DIR={out_dir}', *TINY, *extra]
    env = dict(os.environ, WANDB_MODE='disabled', OMP_NUM_THREADS='1')
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout


def metrics(out_dir):
    with open(os.path.join(out_dir, 'metrics.jsonl')) as f:
        return [json.loads(l) for l in f]


def test_fifty_steps_lower_the_loss(data, tmp_path):
    run_train(data, tmp_path, '--MAX_STEPS=50', '--AR_CURRICULUM=False')
    ce = [m['train/ce_tf'] for m in metrics(tmp_path) if 'train/ce_tf' in m]
    assert len(ce) == 50
    first, last = np.mean(ce[:5]), np.mean(ce[-5:])
    assert last < 0.8 * first, (first, last)  # codebook of 32: ln 32 = 3.47 at the start


def test_resume_continues_exactly(data, tmp_path):
    full, part = tmp_path / 'full', tmp_path / 'part'
    run_train(data, full, '--MAX_STEPS=12')
    run_train(data, part, '--MAX_STEPS=12', '--STOP_AFTER=7')
    ckpts = [f for f in os.listdir(part) if f.startswith('ckpt_')]
    assert ckpts == ['ckpt_0000007.pt']
    out = run_train(data, part, '--MAX_STEPS=12')
    assert 'resumed from' in out and 'at step 7' in out
    a = {m['step']: m['train/loss'] for m in metrics(full) if 'train/loss' in m}
    b = {m['step']: m['train/loss'] for m in metrics(part) if 'train/loss' in m}
    assert sorted(b) == list(range(1, 13))  # no step twice, none missing
    for s in range(1, 13):  # the AR tail switches on at step 6: the curriculum state carried over too
        assert b[s] == pytest.approx(a[s], rel=1e-5, abs=1e-6), s
    ar = {m['step']: m['train/ar_len'] for m in metrics(part) if 'train/ar_len' in m}
    assert ar[12] > 0


def test_sigterm_leaves_a_loadable_checkpoint(data, tmp_path):
    from model_convGru import load_world_model
    p = run_train(data, tmp_path, '--MAX_STEPS=100000', wait=False)
    path = tmp_path / 'metrics.jsonl'
    deadline = time.time() + 120
    while time.time() < deadline and not (path.exists() and len(path.read_text().splitlines()) >= 3):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out[-2000:]
    assert 'on signal 15' in out
    ckpts = sorted(f for f in os.listdir(tmp_path) if f.startswith('ckpt_'))
    assert len(ckpts) == 1
    model, ck = load_world_model(str(tmp_path / ckpts[0]), weights_only=False)
    assert ck['step'] >= 3 and ck['train_config']['BATCH_SIZE'] == 4
    assert not [f for f in os.listdir(tmp_path) if f.startswith('.')], 'temp files left behind'


def test_ddp_two_processes_keep_parameters_equal(data, tmp_path):
    torchrun = os.path.join(os.path.dirname(sys.executable), 'torchrun')
    cmd = [torchrun, '--standalone', '--nproc_per_node=2', os.path.join(ROOT, 'train.py'),
           f"--DATA_DIR={data['data']}", f"--VQVAE_CKPT={data['vq']}", f'--OUT_DIR={tmp_path}', *TINY,
           '--MAX_STEPS=4']
    env = dict(os.environ, WANDB_MODE='disabled', OMP_NUM_THREADS='1')
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    m = [x for x in metrics(tmp_path) if 'ddp/param_max_abs_diff' in x]
    assert m and m[-1]['ddp/param_max_abs_diff'] == 0.0 and m[-1]['ddp/world_size'] == 2
    assert m[-1]['ddp/param_change'] > 0  # the ranks agree on parameters that did train


def test_config_overrides_reach_the_loop(data, tmp_path):
    from model_convGru import load_world_model
    run_train(data, tmp_path, '--MAX_STEPS=8', '--LR=0.002', '--WARMUP_STEPS=2', '--MIN_LR=0.002',
              '--AR_CURRICULUM=False', '--BATCH_SIZE=3', '--WARP_CALIBRATE=True')
    ms = [m for m in metrics(tmp_path) if 'lr' in m]
    assert ms[-1]['lr'] == pytest.approx(0.002)
    assert ms[-1]['samples_per_sec'] == pytest.approx(3 * ms[-1]['steps_per_sec'])
    assert all(m['train/ar_len'] == 0 for m in ms)
    _, ck = load_world_model(str(tmp_path / 'ckpt_0000008.pt'), weights_only=False)
    assert ck['train_config']['LR'] == 0.002 and ck['config']['hidden_dim'] == 16
    # WARP_CALIBRATE: the warp moves content by the train clips' mean motion per camera bin
    import train
    with open(os.path.join(data['data'], 'manifest.json')) as f:
        manifest = json.load(f)
    yaw, pitch = train.train_camera_degrees(data['data'], manifest)
    ys, ps = A.camera_warp_shifts(yaw, pitch, A.edges_from_manifest(manifest), 18)
    assert ck['config']['warp_accumulate'] and tuple(ck['config']['warp_yaw_shift']) == ys
    assert tuple(ck['config']['warp_pitch_shift']) == ps and 0 < abs(ys[3]) < 1   # slow turns: sub-cell


def test_curriculum_brake_and_gate():
    from train import ARCurriculum
    c = ARCurriculum(True, warmup=10, min_len=3, max_len=6, brake=True, upper=2.0, lower=1.5, gate=0.5, ema=0.0)
    assert c.update(5, 0.1, 0.1, 50, 100) == 0            # warmup: teacher forcing only
    assert c.update(10) == 3                               # then the minimum
    assert c.update(11, 0.1, 0.12, 80, 100) == 4           # ratio 1.2 < lower, diverse: grow
    assert c.update(12, 0.1, 0.12, 80, 100) == 5
    assert c.update(13, 0.1, 0.12, 30, 100) == 5           # collapsed (30 < 0.5 * 100): the gate holds it
    assert c.update(14, 0.1, 0.17, 80, 100) == 5           # between the thresholds: hold
    assert c.update(15, 0.1, 0.3, 80, 100) == 4            # ratio 3 > upper: brake
    for s in range(16, 30):
        c.update(s, 0.1, 0.3, 80, 100)
    assert c.ar_len == 3                                   # never below the minimum
    for s in range(30, 50):
        c.update(s, 0.1, 0.1, 100, 100)
    assert c.ar_len == 6                                   # nor above the maximum
    assert c.moves['down'] > 0 and c.moves['up'] > 0 and c.moves['hold'] > 0
    d = ARCurriculum(True, 0, 3, 6, True, 2.0, 1.5, 0.5, ema=0.9)
    d.load_state_dict(c.state_dict())
    assert d.ar_len == 6 and d.ratio == c.ratio


def test_action_balanced_window_sampling(data):
    import train
    from tokendata import TokenCache, WindowDataset
    cache = TokenCache(data['data'])
    ds = WindowDataset(cache, 'train', 4)
    p = train.window_probabilities(cache, ds.starts, 4, 1.0)
    assert p.shape == (len(ds),) and abs(p.sum() - 1) < 1e-9
    # the windows' probabilities follow the mean balance weight of their 3 transitions
    w = A.balance_weights(cache.actions)
    i = int(np.argmax(p))
    s = ds.starts[i]
    assert np.isclose(p[i] / p[0], w[s:s + 3].mean() / w[ds.starts[0]:ds.starts[0] + 3].mean())
    assert train.window_probabilities(cache, ds.starts, 4, 0.0) is None          # uniform: the sampler's default
    # the sampler draws by p, and a given step always gives the same batch (resume)
    sam = list(train.StepBatchSampler(len(ds), 64, 0, 0, 0, 200, p))
    assert sam[5] == list(train.StepBatchSampler(len(ds), 64, 0, 0, 5, 6, p))[0]
    drawn = np.bincount(np.concatenate(sam), minlength=len(ds)) / (64 * 200)
    top = np.argsort(p)[-len(ds) // 4:]
    assert drawn[top].sum() > p[top].sum() - 0.03 and p[top].sum() > 0.25 + 0.02


def test_isolated_movement_windows_get_their_share_of_the_draws(data):
    import train
    from tokendata import TokenCache, WindowDataset
    cache = TokenCache(data['data'])
    ds = WindowDataset(cache, 'train', 4)
    iso = A.isolated_movement(cache.actions)
    a = np.asarray(cache.actions) > 0.5
    assert iso.any() and not iso.all()
    assert not (iso & ~(a[:, 2] & a[:, 6])).any()            # never while the camera turns
    assert not (iso & ~a[:, 8:13].any(1)).any()              # always with a key down
    share = np.array([iso[s:s + 3].mean() for s in ds.starts])
    for mix in (0.5, 1.0):
        p = train.window_probabilities(cache, ds.starts, 4, 0.0, mix)
        assert abs(p.sum() - 1) < 1e-9
        # `mix` of the mass goes by isolated share, the rest stays uniform
        assert np.allclose(p, (1 - mix) / len(ds) + mix * share / share.sum())
        assert (p[share == 0] == (1 - mix) / len(ds)).all()
    expected = (share * train.window_probabilities(cache, ds.starts, 4, 0.0, 0.5)).sum()
    assert expected > share.mean() + 0.05                    # the sampled windows hold more isolated movement


def test_change_weight_up_weights_the_cells_that_change():
    import torch
    import train
    from model_convGru import WorldModelConfig, WorldModelConvFiLM
    torch.manual_seed(0)
    model = WorldModelConvFiLM(WorldModelConfig(codebook_size=8, embed_dim=4, hidden_dim=4, n_layers=1, height=4,
                                                width=4, film_dim=4, attn_dim=4, attn_heads=1, use_idm=False,
                                                zero_init_head=False))
    tokens = torch.randint(0, 8, (2, 3, 4, 4))
    tokens[:, 1] = tokens[:, 0]
    tokens[:, 1, 0, :2] = (tokens[:, 0, 0, :2] + 1) % 8          # 2 of 16 cells change at t=0
    acts = torch.zeros(2, 2, 15)
    acts[..., 2] = acts[..., 6] = 1
    loss = train.WindowLoss(model, None, None)
    knobs = dict(corrupt=0.0, feedback='argmax', topk=1, label_smoothing=0.0, change_weight=0.0, ar_weight=1.0,
                 semantic_weight=0.0, semantic_frames=0, lpips_weight=0.0, lpips_frames=0, move_boost=1.0,
                 idm_weight=0.0, idm_span=1, entropy_weight=0.0, tau=1.0, diagnostics=False)
    with torch.no_grad():
        logits, _ = model(tokens[:, :2], acts)
        nll = -logits.float().log_softmax(2).gather(2, tokens[:, 1:3, None]).squeeze(2)   # (B, T, H, W)
        _, plain, _ = loss(tokens, acts, 0, knobs)
        _, weighted, _ = loss(tokens, acts, 0, dict(knobs, change_weight=3.0))
    assert torch.isclose(plain['ce_tf'], nll.mean())
    changed = (tokens[:, 1:3] != tokens[:, :2]).float()
    w = 1 + 3 * changed
    assert torch.isclose(weighted['ce_tf'], ((nll * w).sum((2, 3)) / w.sum((2, 3))).mean())
    assert not torch.isclose(weighted['ce_tf'], plain['ce_tf'])


def test_commit_feedback_feeds_the_ar_tail_what_commit_decoding_would_show():
    import torch
    import train
    from model_convGru import WorldModelConfig, WorldModelConvFiLM
    from rollout import next_tokens, sample_tokens
    torch.manual_seed(0)
    model = WorldModelConvFiLM(WorldModelConfig(codebook_size=8, embed_dim=4, hidden_dim=4, n_layers=1, height=4,
                                                width=4, film_dim=4, attn_dim=4, attn_heads=1, use_idm=False,
                                                zero_init_head=False, copy_gate=True))
    tokens = torch.randint(0, 8, (3, 3, 4, 4))
    acts = torch.zeros(3, 2, 15)
    acts[:, :, 0] = acts[:, :, 6] = 1                      # a fast turn: the commit decision uses warped cells
    loss = train.WindowLoss(model, None, None)
    knobs = dict(corrupt=0.0, feedback='commit', topk=1, label_smoothing=0.0, change_weight=0.0, ar_weight=1.0,
                 semantic_weight=0.0, semantic_frames=0, lpips_weight=0.0, lpips_frames=0, move_boost=1.0,
                 idm_weight=0.0, idm_span=1, entropy_weight=0.0, tau=1.0, diagnostics=False)
    with torch.no_grad():
        logits, state = model(tokens[:, :1], acts[:, :1])
        fb = next_tokens(model, logits[:, -1], tokens[:, 0], acts[:, 0], dict(mode='commit'))
        assert not torch.equal(fb, sample_tokens(logits[:, -1]))   # commit and argmax feed different inputs here
        ar_logits, _ = model.step(fb, acts[:, 1], state)
        want = -ar_logits.float().log_softmax(1).gather(1, tokens[:, 2, None]).mean()
        _, out, _ = loss(tokens, acts, 1, knobs)
        _, out_argmax, _ = loss(tokens, acts, 1, dict(knobs, feedback='argmax'))
    assert torch.isclose(out['ce_ar'], want)
    assert not torch.isclose(out_argmax['ce_ar'], want)


def test_time_reverse_plays_reversible_windows_backwards(data, tmp_path):
    import torch
    import train
    from tokendata import TokenCache, WindowDataset
    cache = TokenCache(data['data'])
    ds = WindowDataset(cache, 'train', 6)
    ok = np.array([A.time_reversible(cache.actions[s:s + 5]).all() for s in ds.starts])
    assert ok.any() and not ok.all()                                  # the data has windows with a jump or sprint
    pick = [int(np.flatnonzero(ok)[0]), int(np.flatnonzero(~ok)[0])]
    tok = torch.stack([ds[i][0] for i in pick])
    act = torch.stack([ds[i][1] for i in pick])
    lat = torch.randn(2, 6, 3, 2, 2)
    t2, a2, l2 = train.time_reverse(tok, act, lat, 1.0)
    assert torch.equal(t2[0], tok[0].flip(0)) and torch.equal(l2[0], lat[0].flip(0))
    assert torch.equal(a2[0, 0], act[0, -1][list(A.V5_TIME_REVERSED)])   # frame 5 -> 4 is the mirror of 4 -> 5
    assert torch.equal(a2[0, 0, 8], act[0, -1, 10]) and torch.equal(a2[0, 0, 0], act[0, -1, 4])   # S -> W, yaw
    assert torch.equal(t2[1], tok[1]) and torch.equal(a2[1], act[1]) and torch.equal(l2[1], lat[1])  # jump: kept
    assert train.time_reverse(tok, act, lat, 0.0)[0] is tok
    t3, a3, _ = train.time_reverse(t2, a2, l2, 1.0)                       # twice backwards is forwards
    assert torch.equal(t3, tok) and torch.equal(a3, act)
    out = run_train(data, tmp_path, '--MAX_STEPS=3', '--TIME_REVERSE=0.5')
    assert 'TIME_REVERSE=0.5' in out and 'can be played backwards' in out
    with pytest.raises(AssertionError, match='KEY_HOLD_BINS is not supported'):
        run_train(data, tmp_path / 'held', '--MAX_STEPS=1', '--TIME_REVERSE=0.5', '--KEY_HOLD_BINS=4')

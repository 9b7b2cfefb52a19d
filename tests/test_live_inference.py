"""live_inference.py under SDL_VIDEODRIVER=dummy with posted pygame events, on the tiny trained
world model of conftest (CPU): key -> action mapping, the model's response, recording, headless mode."""
import json
import os

import cv2
import numpy as np
import pygame
import pytest
import torch

import actions as A
import inference as I
import live_inference as L
import preprocess

torch.set_num_threads(1)
K = 3


def clip(tiny, stem='bw_seed_3'):
    return os.path.join(tiny['data'], stem + '.npz')


@pytest.fixture(scope='module')
def parts(tiny_ckpt):
    model, vq, edges, _ = I.load(tiny_ckpt['ckpt'])
    ctx = I.load_context(clip(tiny_ckpt), vq, edges, frames=K)
    return model, vq, edges, ctx


@pytest.fixture
def screen():
    pygame.init()
    pygame.display.set_mode((64, 36))
    pygame.event.clear()
    yield
    pygame.quit()


def post(kind, key):
    pygame.event.post(pygame.event.Event(kind, key=key, mod=0, unicode='', scancode=0))


def ticks(loop, n):
    return [loop.tick(pygame.event.get()) for _ in range(n)]


def on(action):
    return [A.V5_NAMES[i] for i in np.flatnonzero(action)]


def test_held_keys_give_the_expected_actions(parts, screen):
    model, vq, edges, ctx = parts
    loop = L.LiveLoop(L.Engine(model, vq, edges, ctx))
    assert on(ticks(loop, 1)[0]['action']) == ['yaw_none', 'pitch_level']   # nothing held
    post(pygame.KEYDOWN, pygame.K_w)
    held = ticks(loop, 4)
    assert all(on(r['action']) == ['yaw_none', 'pitch_level', 'W'] for r in held)  # W stays down...
    assert held[-1]['names'] == ['yaw_none', 'pitch_level', 'W']
    post(pygame.KEYUP, pygame.K_w)
    assert on(ticks(loop, 1)[0]['action']) == ['yaw_none', 'pitch_level']          # ...until released
    # arrow right: ARROW_YAW_DEG = 3 deg/frame, between this data's edges 0.361 and 5.327: slow right
    post(pygame.KEYDOWN, pygame.K_RIGHT)
    r = ticks(loop, 2)
    assert all(on(x['action']) == ['yaw_slow_right', 'pitch_level'] for x in r)
    assert r[0]['record']['yaw_deg'] == A.ARROW_YAW_DEG
    post(pygame.KEYUP, pygame.K_RIGHT)
    post(pygame.KEYDOWN, pygame.K_DOWN)   # pitch > 0 looks down (FACTS §5: Down once gave "Up")
    post(pygame.KEYDOWN, pygame.K_SPACE)
    post(pygame.KEYDOWN, pygame.K_a)
    assert on(ticks(loop, 1)[0]['action']) == ['yaw_none', 'pitch_down', 'A', 'jump']
    for k in (pygame.K_DOWN, pygame.K_SPACE, pygame.K_a):
        post(pygame.KEYUP, k)
    post(pygame.KEYDOWN, pygame.K_LEFT)
    post(pygame.KEYDOWN, pygame.K_UP)
    post(pygame.KEYDOWN, pygame.K_LSHIFT)
    post(pygame.KEYDOWN, pygame.K_s)
    assert on(ticks(loop, 1)[0]['action']) == ['yaw_slow_left', 'pitch_up', 'S', 'sneak']
    for k in (pygame.K_LEFT, pygame.K_UP, pygame.K_LSHIFT, pygame.K_s):
        post(pygame.KEYUP, k)
    post(pygame.KEYDOWN, pygame.K_LCTRL)
    post(pygame.KEYDOWN, pygame.K_d)
    assert on(ticks(loop, 1)[0]['action']) == ['yaw_none', 'pitch_level', 'D', 'sprint']
    post(pygame.KEYUP, pygame.K_LCTRL)
    post(pygame.KEYUP, pygame.K_d)
    # mouse: relative motion of one frame turns for that frame only (30 + 20 px x 0.15 = 7.5 deg: fast right)
    pygame.event.post(pygame.event.Event(pygame.MOUSEMOTION, rel=(30, 0), pos=(0, 0), buttons=(0, 0, 0)))
    pygame.event.post(pygame.event.Event(pygame.MOUSEMOTION, rel=(20, -10), pos=(0, 0), buttons=(0, 0, 0)))
    r = ticks(loop, 2)
    assert r[0]['record']['yaw_deg'] == pytest.approx(7.5) and r[0]['record']['pitch_deg'] == pytest.approx(-1.5)
    assert on(r[0]['action']) == ['yaw_fast_right', 'pitch_up']
    assert on(r[1]['action']) == ['yaw_none', 'pitch_level']
    assert loop.stats.summary()['frames'] == 13


def test_commands_reset_toggle_pause_quit(parts, screen):
    model, vq, edges, ctx = parts
    eng = L.Engine(model, vq, edges, ctx)
    start_frame, start_tokens = eng.frame.copy(), eng.tokens.clone()
    loop = L.LiveLoop(eng)
    post(pygame.KEYDOWN, pygame.K_d)
    ticks(loop, 3)
    assert not torch.equal(eng.tokens, start_tokens)
    post(pygame.KEYDOWN, pygame.K_r)          # reset: back to the context, keys still held
    post(pygame.KEYDOWN, pygame.K_g)          # greedy -> sample
    post(pygame.KEYDOWN, pygame.K_RIGHTBRACKET)
    loop.handle(pygame.event.get())
    assert torch.equal(eng.tokens, start_tokens) and np.array_equal(eng.frame, start_frame)
    assert eng.sampling == 'sample' and eng.temperature == pytest.approx(L.TEMPERATURE + L.TEMPERATURE_STEP)
    post(pygame.KEYDOWN, pygame.K_LEFTBRACKET)
    post(pygame.KEYDOWN, pygame.K_LEFTBRACKET)
    post(pygame.KEYDOWN, pygame.K_p)          # pause: no steps
    assert ticks(loop, 2) == [None, None]
    assert eng.temperature == pytest.approx(L.TEMPERATURE - L.TEMPERATURE_STEP)
    assert loop.stats.summary()['frames'] == 3
    post(pygame.KEYDOWN, pygame.K_p)
    r = ticks(loop, 1)[0]
    assert r is not None and 'D' in r['names']
    post(pygame.KEYDOWN, pygame.K_ESCAPE)
    assert ticks(loop, 1) == [None] and loop.quit


def test_keys_change_the_world_and_match_offline_rollouts(parts, screen):
    """Same context, same sampling seed: W and turn-right give different tokens; the same keys give the
    same tokens again after R, and exactly what inference.generate gives for the same actions."""
    model, vq, edges, ctx = parts
    eng = L.Engine(model, vq, edges, ctx, sampling='sample', temperature=1.0, seed=7)
    loop = L.LiveLoop(eng)

    def play(key, n=5):
        eng.reset()
        post(pygame.KEYDOWN, key)
        out = ticks(loop, n)
        post(pygame.KEYUP, key)
        pygame.event.get()
        loop.held.clear()
        return torch.stack([r['tokens'] for r in out]), np.stack([r['action'] for r in out]), \
            np.stack([r['frame'] for r in out])

    w_tokens, w_actions, w_frames = play(pygame.K_w)
    r_tokens, r_actions, _ = play(pygame.K_RIGHT)
    assert not torch.equal(w_tokens, r_tokens)
    w2_tokens, _, w2_frames = play(pygame.K_w)
    assert torch.equal(w_tokens, w2_tokens) and np.array_equal(w_frames, w2_frames)
    for tokens, acts in ((w_tokens, w_actions), (r_tokens, r_actions)):
        off = I.generate(model, ctx.tokens, ctx.actions, acts, 'sample', temperature=1.0, seed=7)
        assert torch.equal(off[0], tokens)
    assert np.abs(w_frames.astype(int) - I.decode_frames(vq, w_tokens)).max() <= 1  # batch-1 vs batched decode


def test_record_passes_check_and_replays_through_inference(tiny_ckpt, tmp_path, capsys):
    # a script with moves, turns both ways, pitch and the three scs keys, for 12 transitions
    recs = [dict(ws=0, ad=0, scs=0, pitch=0.0, yaw=0.0, pitch_delta=0.0, yaw_delta=0.0, pos=[0, 0, 0])]
    plan = [(1, 0, 0, 0.2, 0.0), (1, 2, 3, 0.2, 0.0), (0, 0, 1, -0.5, 0.0), (2, 1, 0, 0.0, 0.1),
            (0, 0, 2, 0.0, -0.2), (1, 0, 0, 0.05, 0.0)] * 2
    for ws, ad, scs, yd, pd in plan:
        recs.append(dict(ws=ws, ad=ad, scs=scs, pitch=0.0, yaw=0.0, pitch_delta=pd, yaw_delta=yd, pos=[0, 0, 0]))
    script = tmp_path / 'script.json'
    script.write_text(json.dumps({'actions': {str(i): r for i, r in enumerate(recs)}}))
    rec_dir, out = tmp_path / 'session', tmp_path / 'headless'
    n = len(plan)
    rc = L.main(['--ckpt', tiny_ckpt['ckpt'], '--context', clip(tiny_ckpt), '--context-frames', str(K),
                 '--script', str(script), '--frames', str(n), '--out', str(out), '--record', str(rec_dir),
                 '--sampling', 'sample', '--temperature', '0.9', '--seed', '11'])
    assert rc == 0
    printed = capsys.readouterr().out
    assert 'summary: 12 frames' in printed and 'p99' in printed and 'FPS' in printed
    # headless outputs: N frames
    frames, tokens = np.load(out / 'frames.npy'), np.load(out / 'tokens.npy')
    assert frames.shape == (n, 72, 128, 3) and tokens.shape == (n, 18, 32)
    cap = cv2.VideoCapture(str(out / 'live.mp4'))
    assert int(sum(1 for _ in iter(lambda: cap.read()[0], False))) == n
    # the recording: a GF-layout clip that preprocess --check accepts
    stems = [f[:-5] for f in os.listdir(rec_dir / 'metadata')]
    assert len(stems) == 1 and os.listdir(rec_dir / 'video') == [stems[0] + '.mp4']
    assert preprocess.main(['--check', str(rec_dir)]) == 0
    assert '1 ok, 0 with problems' in capsys.readouterr().out
    meta = json.loads((rec_dir / 'metadata' / (stems[0] + '.json')).read_text())
    assert {'biome', 'initial_weather', 'start_time', 'actions'} <= set(meta)
    got = [meta['actions'][str(i)] for i in range(n + 1)]
    assert got[0] == recs[0]
    for g, r in zip(got[1:], recs[1:]):
        assert (g['ws'], g['ad'], g['scs'], g['pos']) == (r['ws'], r['ad'], r['scs'], [0, 0, 0])
        assert g['yaw_delta'] == pytest.approx(r['yaw_delta']) and g['pitch_delta'] == pytest.approx(r['pitch_delta'])
    yaw = np.cumsum([r['yaw_delta'] * 15 for r in recs])
    assert [g['yaw'] for g in got] == pytest.approx(list(yaw))              # absolute degrees, accumulated
    assert [g['pitch'] for g in got[3:7]] == pytest.approx([0.0, 1.5, -1.5, -1.5])
    cap = cv2.VideoCapture(str(rec_dir / 'video' / (stems[0] + '.mp4')))
    vid = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        vid.append(f[..., ::-1])
    assert len(vid) == n + 1                                                # frame 0 = the context's last
    assert np.abs(np.stack(vid[1:]).astype(int) - frames).mean() < 8       # H.264 of the same frames
    # replay: the recorded JSON as inference.py's actions, same context and draws -> the same tokens
    rep = tmp_path / 'replay'
    assert I.main(['--ckpt', tiny_ckpt['ckpt'], '--context', clip(tiny_ckpt), '--context-frames', str(K),
                   '--actions', str(rec_dir / 'metadata' / (stems[0] + '.json')), '--out', str(rep),
                   '--sampling', 'sample', '--temperature', '0.9', '--seed', '11', '--upscale', '1']) == 0
    np.testing.assert_array_equal(np.load(rep / 'tokens.npy')[0], tokens)


def test_window_mode_runs_under_the_dummy_driver(tiny_ckpt, tmp_path, capsys):
    shot = tmp_path / 'shot.png'
    assert L.main(['--ckpt', tiny_ckpt['ckpt'], '--context', clip(tiny_ckpt), '--context-frames', str(K),
                   '--frames', '3', '--fps', '0', '--scale', '2', '--screenshot', str(shot)]) == 0
    assert 'summary: 3 frames' in capsys.readouterr().out
    assert cv2.imread(str(shot)).shape == (72 * 2, 128 * 2, 3)
    assert L.main(['--ckpt', tiny_ckpt['ckpt'], '--frames', '3']) == 2
    assert 'no context given' in capsys.readouterr().err
    assert L.main(['--ckpt', tiny_ckpt['ckpt'], '--context', clip(tiny_ckpt), '--frames', '3',
                   '--flow-round', '1']) == 2
    assert 'has no learned flow (flow_warp=0)' in capsys.readouterr().err


def test_pacer_reports_when_the_model_cannot_keep_up(monkeypatch):
    p = L.Pacer(16)
    monkeypatch.setattr(L.time, 'sleep', lambda s: None)
    assert not p.wait(0.01)                      # 10 ms of work fits 62.5 ms
    assert not any(p.wait(0.2) for _ in range(2))  # a couple of slow frames: the average still fits
    for _ in range(40):
        p.wait(0.2)
    assert p.wait(0.2) and p.busy > p.budget     # sustained: reported
    assert not L.Pacer(0).wait(1.0)              # --fps 0: unpaced, never "slow"

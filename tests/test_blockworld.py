import json
import math
import os

import cv2
import numpy as np
import pytest

import actions
import blockworld as bw


def flat_world(ground=10):
    """A blockworld whose terrain is replaced by flat stone with its top at y = ground."""
    w = bw.World(0, 'plains')
    w.grid[:] = bw.AIR
    w.grid[:, :ground + 1, :] = bw.STONE
    w.height[:] = ground
    w.top = ground + 4
    return w


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp('bw')
    bw.main(['--out', str(out), '--clips', '3', '--frames', '20', '--size', '64x36', '--seed', '5'])
    return out


def test_json_follows_gf_schema_and_frame_count_matches(dataset):
    metas = sorted(os.listdir(dataset / 'metadata'))
    assert len(metas) == 3
    for m in metas:
        meta = json.loads((dataset / 'metadata' / m).read_text())
        assert meta['biome'] in ('plains', 'forest', 'desert')
        assert meta['initial_weather'] in ('clear', 'rain', 'thunder')
        assert meta['start_time'] in bw.TIMES
        recs = meta['actions']
        assert list(recs) == [str(i) for i in range(20)]
        for i, r in ((int(k), v) for k, v in recs.items()):
            assert set(r) >= {'ws', 'ad', 'scs', 'pitch', 'yaw', 'pitch_delta', 'yaw_delta', 'pos'}
            assert r['ws'] in (0, 1, 2) and r['ad'] in (0, 1, 2) and r['scs'] in (0, 1, 2, 3)
            assert all(isinstance(r[k], int) for k in ('ws', 'ad', 'scs'))
            assert all(isinstance(r[k], float) for k in ('pitch', 'yaw', 'pitch_delta', 'yaw_delta'))
            assert len(r['pos']) == 3
            if i == 0:
                assert r['pitch_delta'] == 0 and r['yaw_delta'] == 0 and r['ws'] == r['ad'] == r['scs'] == 0
            else:  # record i describes frame i-1 -> i, deltas in units of 15 degrees
                prev = recs[str(i - 1)]
                assert r['yaw_delta'] * 15 == pytest.approx(r['yaw'] - prev['yaw'], abs=1e-9)
                assert r['pitch_delta'] * 15 == pytest.approx(r['pitch'] - prev['pitch'], abs=1e-9)
        cap = cv2.VideoCapture(str(dataset / 'video' / (m[:-5] + '.mp4')))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, frame = cap.read()
        assert ok and frame.shape == (36, 64, 3)
        assert n == len(recs)
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(16, abs=0.01)


def test_video_matches_replay_and_rerun_skips(dataset):
    m = sorted(os.listdir(dataset / 'metadata'))[0]
    meta = json.loads((dataset / 'metadata' / m).read_text())
    frames = bw.replay_clip(meta)
    cap = cv2.VideoCapture(str(dataset / 'video' / (m[:-5] + '.mp4')))
    decoded = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        decoded.append(f[..., ::-1])
    mse = np.mean((np.stack(decoded).astype(float) - frames.astype(float)) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) > 30  # the mp4 is a faithful (lossy) copy of the renders
    before = os.path.getmtime(dataset / 'metadata' / m)
    bw.main(['--out', str(dataset), '--clips', '3', '--frames', '20', '--size', '64x36', '--seed', '5'])
    assert os.path.getmtime(dataset / 'metadata' / m) == before  # finished clips are not redone


def test_same_seed_same_frames_and_replay_is_exact():
    a, meta_a = bw.record_clip(42, frames=24, width=48, height=27)
    b, meta_b = bw.record_clip(42, frames=24, width=48, height=27)
    c, _ = bw.record_clip(43, frames=24, width=48, height=27)
    assert np.array_equal(a, b) and meta_a == meta_b
    assert not np.array_equal(a, c)
    meta = json.loads(json.dumps(meta_a))  # through JSON, as a reader would get it
    assert np.array_equal(bw.replay_clip(meta), a)


def horizontal_shift(a, b, max_shift=12):
    """Shift s (pixels) minimising |a[:, x] - b[:, x - s]|: b's content moved by s columns."""
    a, b = a.astype(float).mean(-1), b.astype(float).mean(-1)
    errs = {s: np.abs(a[:, max_shift:-max_shift] - np.roll(b, -s, axis=1)[:, max_shift:-max_shift]).mean()
            for s in range(-max_shift, max_shift + 1)}
    return min(errs, key=errs.get)


def test_turning_right_increases_yaw_and_moves_content_left():
    w = bw.World(1, 'forest')
    s0 = w.spawn()
    s1 = w.step(s0, bw.Action(yaw_deg=4.0))
    assert s1.yaw > s0.yaw
    img0, img1 = w.render(s0, 128, 72), w.render(s1, 128, 72)
    assert horizontal_shift(img0, img1) < 0  # content slides left on screen when turning right
    _, meta = bw.record_clip(7, frames=80, width=16, height=9)
    recs = [meta['actions'][str(i)] for i in range(1, 80)]
    assert any(r['yaw_delta'] > 0 for r in recs)
    assert all((r['yaw_delta'] > 0) == (r['yaw'] > p['yaw'])
               for r, p in zip(recs, [meta['actions'][str(i)] for i in range(79)]))


def test_looking_down_gives_positive_pitch_and_more_ground():
    w = flat_world()
    s0 = bw.PlayerState(x=5.5, y=11.0, z=5.5)
    s1 = w.step(s0, bw.Action(pitch_deg=10.0))
    assert s1.pitch > s0.pitch
    sky = lambda img: (img[..., 2].astype(int) > img[..., 0].astype(int) + 40).mean()  # blue pixels
    assert sky(w.render(s1, 64, 36)) < sky(w.render(s0, 64, 36))
    # and in the GF record: pitch_delta > 0
    r = bw._record(1, s1, (bw.Action(pitch_deg=10.0), s0))
    assert r['pitch_delta'] == pytest.approx(10 / 15)


@pytest.mark.parametrize('yaw', [0.0, 37.0, 90.0, -135.0])
def test_w_moves_along_the_view_direction(yaw):
    w = flat_world()
    s0 = bw.PlayerState(x=5.5, y=11.0, z=5.5, yaw=yaw)
    s1 = w.step(s0, bw.Action(ws=1))
    d = np.array([s1.x - s0.x, s1.z - s0.z])
    fwd = bw.camera_basis(yaw, 0.0)[0][[0, 2]]
    assert np.linalg.norm(d) == pytest.approx(bw.WALK_SPEED / bw.FPS, rel=1e-6)
    assert d @ fwd / np.linalg.norm(d) > 0.9999
    right = bw.camera_basis(yaw, 0.0)[1][[0, 2]]
    s2 = w.step(s0, bw.Action(ad=2))  # D strafes to the camera's right
    assert np.array([s2.x - s0.x, s2.z - s0.z]) @ right > 0.2
    sprint = w.step(s0, bw.Action(ws=1, scs=3))
    sneak = w.step(s0, bw.Action(ws=1, scs=2))
    assert math.hypot(sprint.x - s0.x, sprint.z - s0.z) == pytest.approx(bw.SPRINT_SPEED / bw.FPS, rel=1e-6)
    assert math.hypot(sneak.x - s0.x, sneak.z - s0.z) == pytest.approx(bw.SNEAK_SPEED / bw.FPS, rel=1e-6)


def test_walls_block_and_one_block_step_needs_a_jump():
    w = flat_world()
    w.grid[:, 11:13, 10] = bw.STONE  # a two-high wall across z = 10
    s = bw.PlayerState(x=5.5, y=11.0, z=5.5, yaw=0.0)  # yaw 0 faces +z
    for _ in range(40):
        s = w.step(s, bw.Action(ws=1))
    assert s.z == pytest.approx(10 - bw.PLAYER_HALF_WIDTH, abs=1e-3)
    x, z = s.x, s.z
    s2 = w.step(s, bw.Action(ws=1))
    assert (s2.x, s2.z) == (x, z)  # walking into a wall changes nothing
    # a one-block step: walking stops, jumping gets over
    w.grid[:, 11:13, 10] = bw.AIR
    w.grid[:, 11, 10:] = bw.STONE
    s = bw.PlayerState(x=5.5, y=11.0, z=5.5, yaw=0.0)
    for _ in range(40):
        s = w.step(s, bw.Action(ws=1))
    assert s.z < 10 and s.y == 11.0
    for _ in range(20):
        s = w.step(s, bw.Action(ws=1, scs=1))
    for _ in range(16):
        s = w.step(s, bw.Action(ws=1))
    assert s.z > 11 and s.y == pytest.approx(12.0) and s.on_ground


def test_trees_are_solid():
    w = flat_world()
    w.grid[5, 11:16, 10] = bw.LOG
    s = bw.PlayerState(x=5.5, y=11.0, z=5.5, yaw=0.0)
    for _ in range(40):
        s = w.step(s, bw.Action(ws=1))
    assert s.z == pytest.approx(10 - bw.PLAYER_HALF_WIDTH, abs=1e-3)


def test_jump_height_is_minecrafts():
    w = flat_world()
    s = bw.PlayerState(x=5.5, y=11.0, z=5.5)
    ys = []
    s = w.step(s, bw.Action(scs=1))
    for _ in range(16):
        ys.append(s.y)
        s = w.step(s, bw.Action())
    assert max(ys) - 11.0 == pytest.approx(1.25, abs=0.05)
    assert s.y == 11.0 and s.on_ground  # lands again within a second


def test_scripted_player_covers_every_action_bin():
    rng = np.random.default_rng(0)
    yaw, pitch, ws, ad, scs = [], [], [], [], []
    for seed in range(3):
        w = bw.World(seed, bw.BIOMES[seed])
        s = w.spawn(rng)
        player = bw.ScriptedPlayer(rng)
        moved = True
        for _ in range(700):
            a = player.act(s, moved)
            s2 = w.step(s, a)
            moved = abs(s2.x - s.x) + abs(s2.z - s.z) > 1e-3 or (a.ws == 0 and a.ad == 0)
            yaw.append(s2.yaw - s.yaw), pitch.append(s2.pitch - s.pitch)
            ws.append(a.ws), ad.append(a.ad), scs.append(a.scs)
            s = s2
    enc = actions.encode_v5(np.array(yaw), np.array(pitch), np.array(ws), np.array(ad), np.array(scs))
    freq = dict(zip(actions.V5_NAMES, enc.mean(0)))
    for name, f in freq.items():
        assert f >= 0.04, f"bin {name} occurs in only {f:.1%} of frames"
    for name in ('yaw_fast_left', 'yaw_slow_left', 'yaw_slow_right', 'yaw_fast_right'):
        assert freq[name] >= 0.05, (name, freq[name])
    assert freq['pitch_up'] >= 0.08 and freq['pitch_down'] >= 0.08
    cam = (enc[:, 2] == 0) | (enc[:, 6] == 0)
    move = enc[:, 8:15].any(1)
    assert ((cam & ~move).mean() >= 0.1 and (move & ~cam).mean() >= 0.1 and (~cam & ~move).mean() >= 0.03)


def test_contact_sheet_has_a_row_per_biome(dataset, tmp_path):
    path = bw.contact_sheet(str(dataset), str(tmp_path / 'sheet.png'), per_biome=4)
    img = cv2.imread(path)
    biomes = {json.loads((dataset / 'metadata' / m).read_text())['biome'] for m in os.listdir(dataset / 'metadata')}
    assert img.shape[0] == len(biomes) * 256 * 36 // 64 and img.shape[1] == 4 * 256


def test_play_window_follows_posted_keys():
    import pygame
    pygame.init()
    pygame.display.set_mode((10, 10))
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_w))
    w = bw.World(1, 'plains')
    s0 = w.spawn()
    s = bw.play(1, 'plains', 32, 18, 2, bw.TIMES[1], 'clear', frames=4)
    fwd = bw.camera_basis(s0.yaw, 0)[0][[0, 2]]
    assert np.array([s.x - s0.x, s.z - s0.z]) @ fwd > 0.5  # held W walked forward

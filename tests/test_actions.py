"""actions.py: bin symmetry, data-driven bin edges, statistics and the encode() glue."""
import json
import math

import numpy as np
import pytest

import actions as A
import blockworld as bw
import gfdata


def test_bins_are_symmetric_in_both_directions():
    edges, pedge = (0.4, 3.0), 0.5
    x = np.concatenate([np.linspace(0, 20, 801), [0.4, 3.0, 0.5, 1e-9, 0.3999999, 3.0000001]])
    yb, ybn = A.yaw_bin(x, edges), A.yaw_bin(-x, edges)
    assert np.array_equal(ybn, 4 - yb)  # left mirrors right, the edges included
    pb, pbn = A.pitch_bin(x, pedge), A.pitch_bin(-x, pedge)
    assert np.array_equal(pbn, 2 - pb)
    assert A.yaw_bin(0.39, edges) == 2 and A.yaw_bin(0.4, edges) == 3 and A.yaw_bin(-0.4, edges) == 1
    assert A.yaw_bin(3.0, edges) == 4 and A.yaw_bin(-3.0, edges) == 0
    assert A.pitch_bin(0.5, pedge) == 2 and A.pitch_bin(-0.5, pedge) == 0 and A.pitch_bin(0.49, pedge) == 1
    # and through the full encoding: names say what they mean (FACTS §5: "Down produced Up")
    v = A.encode_v5([-5.0, 5.0, 0.0, 0.0], [0.0, 0.0, -2.0, 2.0], 0, 0, 0, edges, pedge)
    names = [[A.V5_NAMES[i] for i in np.nonzero(r)[0]] for r in v]
    assert names == [['yaw_fast_left', 'pitch_level'], ['yaw_fast_right', 'pitch_level'],
                     ['yaw_none', 'pitch_up'], ['yaw_none', 'pitch_down']]


def clustered_camera(seed=0, n=4000):
    """GF-like: many still frames with sub-noise jitter, turns at a few speeds in both directions."""
    rng = np.random.default_rng(seed)
    kind = rng.random(n)
    sign = rng.choice([-1, 1], n)
    speeds = rng.choice([0.75, 1.5, 6.0, 10.0], n) * rng.uniform(0.9, 1.1, n)
    yaw = np.where(kind < 0.5, rng.normal(0, 0.02, n), sign * speeds)
    pitch = np.where(rng.random(n) < 0.7, 0.0, rng.choice([-1, 1], n) * rng.uniform(0.3, 2.0, n))
    return yaw, pitch


def test_choose_bin_edges_from_the_distribution_and_symmetric():
    yaw, pitch = clustered_camera()
    info = {}
    (y0, y1), p0 = A.choose_bin_edges(yaw, pitch, info=info)
    assert not info['yaw_default'] and not info['pitch_default']
    assert 0.1 <= y0 < 0.75 * 0.9          # above the jitter, below the slowest real turn
    assert 1.5 * 1.1 < y1 < 6.0 * 0.9      # between speed clusters, not through one
    assert 0.1 <= p0 < 0.3                 # every real pitch move counts
    # direction does not matter: flipping signs (all, or at random) gives the same edges
    flip = np.random.default_rng(1).choice([-1, 1], len(yaw))
    assert A.choose_bin_edges(-yaw, -pitch) == ((y0, y1), p0)
    assert A.choose_bin_edges(yaw * flip, pitch * flip[::-1]) == ((y0, y1), p0)
    # every non-zero bin gets a useful share, and both directions about the same
    v = A.encode_v5(yaw, pitch, 0, 0, 0, (y0, y1), p0)
    share = v.mean(0)
    assert share[[0, 1, 3, 4, 5, 7]].min() > 0.05
    assert abs(share[1] - share[3]) < 0.03 and abs(share[0] - share[4]) < 0.03
    # jitter stays "none"
    assert A.yaw_bin(0.05, (y0, y1)) == 2 and A.pitch_bin(0.05, p0) == 1


def test_small_pitch_moves_are_not_all_level():
    """FACTS §2: the earlier edges (0.2 x 15 = 3 deg) left pitch level on every GF frame."""
    rng = np.random.default_rng(2)
    n = 3000
    pitch = np.where(rng.random(n) < 0.5, 0.0, rng.choice([-1, 1], n) * rng.uniform(0.2, 2.5, n))
    yaw = rng.normal(0, 3, n)
    _, p0 = A.choose_bin_edges(yaw, pitch)
    old = A.encode_v5(yaw, pitch, 0, 0, 0, (1.5, 7.5), 3.0)
    new = A.encode_v5(yaw, pitch, 0, 0, 0, (0.5, 4.0), p0)
    assert old[:, 6].mean() == 1.0      # the bug: pitch always level
    assert new[:, 5].mean() > 0.2 and new[:, 7].mean() > 0.2


def test_too_few_camera_moves_keeps_the_defaults():
    info = {}
    yaw, pitch = np.zeros(500), np.zeros(500)
    yaw[:5] = 3.0  # five turns only
    edges = A.choose_bin_edges(yaw, pitch, info=info)
    assert edges == (tuple(A.DEFAULT_YAW_EDGES), A.DEFAULT_PITCH_EDGE)
    assert info['yaw_default'] and info['pitch_default'] and info['yaw_moving'] == 5


def test_every_v5_bin_occurs_on_blockworld_data():
    """Edges chosen on scripted blockworld play (recorded at a tiny size: only the records matter)."""
    yaw, pitch, ws, ad, scs = [], [], [], [], []
    for seed in range(3):
        _, meta = bw.record_clip(seed, frames=250, width=8, height=5)
        tr = gfdata.transitions(gfdata.validate_metadata(json.loads(json.dumps(meta))))
        yaw.append(tr['yaw_deg']), pitch.append(tr['pitch_deg'])
        ws.append(tr['ws']), ad.append(tr['ad']), scs.append(tr['scs'])
    yaw, pitch, ws, ad, scs = map(np.concatenate, (yaw, pitch, ws, ad, scs))
    (y0, y1), p0 = A.choose_bin_edges(yaw, pitch)
    assert A.choose_bin_edges(-yaw, -pitch) == ((y0, y1), p0)
    assert 0 < y0 < 0.75 * 0.85 and 0.75 * 1.15 < y1 < 10 * 0.85 and 0 < p0 < 0.85
    v = A.encode_v5(yaw, pitch, ws, ad, scs, (y0, y1), p0)
    counts = v.sum(0)
    assert (counts > 0).all(), dict(zip(A.V5_NAMES, counts))
    stats = A.action_stats(v)
    assert all(stats['frequencies'][n] > 0.02 for n in A.V5_NAMES)


def test_action_stats_exact():
    rows = A.encode_v5(yaw_deg=[0, 5, 0, 0.0, -1], pitch_deg=[0, 0, 0, 2.0, 0], ws=[1, 1, 0, 0, 0], ad=[0, 0, 0, 0, 2],
                       scs=[0, 1, 0, 0, 0], yaw_edges=(0.5, 4.0), pitch_edge=0.5)
    s = A.action_stats(rows)
    assert s['transitions'] == 5
    f = s['frequencies']
    assert f['W'] == pytest.approx(0.4) and f['D'] == pytest.approx(0.2) and f['jump'] == pytest.approx(0.2)
    assert f['yaw_fast_right'] == pytest.approx(0.2) and f['yaw_slow_left'] == pytest.approx(0.2)
    assert f['yaw_none'] == pytest.approx(0.6) and f['pitch_down'] == pytest.approx(0.2)
    # rows: move only, camera+move, nothing, camera only, camera+move
    assert s['cooccurrence'] == pytest.approx({'camera+movement': 0.4, 'movement only': 0.2,
                                               'camera only': 0.2, 'nothing': 0.2})
    assert s['counts']['W'] == 2
    assert A.action_stats([rows[:2], rows[2:]]) == s  # a list of clips pools them
    text = A.format_action_stats(s)
    assert 'yaw_fast_right' in text and 'camera only' in text


def test_encode_glue_records_and_arrays_agree():
    recs = [dict(ws=1, ad=2, scs=3, yaw_delta=0.2, pitch_delta=-0.1), dict(ws=2, scs=1, yaw_delta=-0.01)]  # keys missing -> 0
    arrays = dict(yaw_deg=[3.0, -0.15], pitch_deg=[-1.5, 0.0], ws=[1, 2], ad=[2, 0], scs=[3, 1])
    for enc in ('v5', 'v4'):
        a = A.encode(recs, enc, yaw_edges=(0.5, 4.0), pitch_edge=0.5)
        b = A.encode(arrays, enc, yaw_edges=(0.5, 4.0), pitch_edge=0.5)
        assert a.dtype == np.float32 and np.allclose(a, b)
    v4 = A.encode(arrays, 'v4')
    assert np.allclose(v4, [[0.2, -0.1, 1, 1, 0], [-0.01, 0, 0, -1, 1]])
    with pytest.raises(ValueError):
        A.encode(arrays, 'v6')


def test_balance_weights_equalise_action_combinations():
    # 80 transitions walking forward, 10 walking back, 10 idle: each gets the same total weight
    a = np.zeros((100, 15), np.float32)
    a[:, 2] = a[:, 6] = 1
    a[:80, 8] = 1
    a[80:90, 10] = 1
    w = A.balance_weights(a)
    assert abs(w.mean() - 1) < 1e-9
    assert np.allclose([w[:80].sum(), w[80:90].sum(), w[90:].sum()], 100 / 3)
    # co-occurrence: forward while turning right (common) and forward alone (rare) are told apart
    a[:60, 2], a[:60, 4] = 0, 1
    w = A.balance_weights(a)
    assert np.allclose([w[:60].sum(), w[60:80].sum(), w[80:90].sum(), w[90:].sum()], 25)
    assert len(set(A.action_combos(a)[[0, 70, 85, 95]])) == 4
    # sprint and sneak do not make a new combination
    b = a.copy()
    b[:, 13] = 1
    assert np.array_equal(A.action_combos(a), A.action_combos(b))


def test_camera_warp_shifts_are_the_mean_motion_in_cells_per_bin():
    edges = dict(yaw=(0.5, 4.0), pitch=0.5)
    f = 9 / math.tan(math.radians(35))                         # 18 rows, 70 degrees: 12.85 cells a radian
    yaw = np.array([1.0, 3.0, -2.0, 8.0, 0.2, -0.3])          # slow right x2, slow left, fast right, none x2
    pitch = np.array([2.0, 0.0, 0.0, 0.0, 0.1, 0.0])          # one look down, the rest level
    ys, ps = A.camera_warp_shifts(yaw, pitch, edges, 18)
    assert ys[3] == pytest.approx(-f * np.mean(np.tan(np.radians([1.0, 3.0]))), abs=1e-3)   # right: content left
    assert ys[1] == pytest.approx(f * math.tan(math.radians(2.0)), abs=1e-3)
    assert ys[4] == pytest.approx(-f * math.tan(math.radians(8.0)), abs=1e-3)
    assert ys[0] == 2.0 and ps[0] == 1.0                       # no fast-left turn or look up: the defaults
    assert ys[2] == 0.0 and ps[1] == 0.0                       # still bins never drift
    assert ps[2] == pytest.approx(-f * math.tan(math.radians(2.0)), abs=1e-3)                # down: content up
    assert A.camera_warp_shifts(yaw, pitch, edges, 36)[0][3] == pytest.approx(2 * ys[3], abs=2e-3)


def test_time_reversed_actions_replay_the_states_backwards():
    """actions.V5_TIME_REVERSED is the physics run backwards: in blockworld, the mirrored actions played from
    the last state retrace every state of a walk, a turn, a strafe, a look and a diagonal walk back, and their
    v5 encoding is the original's with the columns permuted and time reversed."""
    world = bw.World(5)
    state = world.spawn()
    script = ([bw.Action(ws=1)] * 3 + [bw.Action(yaw_deg=6.0)] * 3 + [bw.Action(ad=2)] * 3
              + [bw.Action(pitch_deg=4.0)] * 2 + [bw.Action(ws=2, ad=1, scs=2)] * 2 + [bw.Action()]
              + [bw.Action(yaw_deg=-2.0, pitch_deg=-1.0)] * 2)
    states = [state]
    for a in script:
        states.append(world.step(states[-1], a))
    moved = math.hypot(states[-1].x - states[0].x, states[-1].z - states[0].z)
    assert moved > 0.5                                            # it walked (no wall in the way)

    def mirror(a):
        return bw.Action(ws=(0, 2, 1)[a.ws], ad=(0, 2, 1)[a.ad], scs=a.scs, yaw_deg=-a.yaw_deg,
                         pitch_deg=-a.pitch_deg)
    back = [mirror(a) for a in reversed(script)]
    s = states[-1]
    for k, a in enumerate(back):
        s = world.step(s, a)
        want = states[len(script) - 1 - k]
        assert np.allclose([s.x, s.y, s.z, s.yaw, s.pitch], [want.x, want.y, want.z, want.yaw, want.pitch],
                           atol=1e-6), k

    def enc(acts):
        return A.encode_v5([a.yaw_deg for a in acts], [a.pitch_deg for a in acts], [a.ws for a in acts],
                           [a.ad for a in acts], [a.scs for a in acts])
    fwd = enc(script)
    assert np.array_equal(enc(back), fwd[::-1][:, list(A.V5_TIME_REVERSED)])
    assert fwd[:, [8, 10, 4, 1, 5, 7]].any(0).all()   # W, S, a fast right and a slow left turn, both looks
    assert A.time_reversible(fwd).all()
    assert A.time_reversible(enc([bw.Action(scs=1), bw.Action(ws=1, scs=3), bw.Action(ws=1)])).tolist() == \
        [False, False, True]

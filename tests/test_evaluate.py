"""evaluate.py: every metric on constructed cases with known answers, the baselines where they must come
out, and the whole script end to end on the tiny checkpoint (--quick)."""
import json
import os

import numpy as np
import pytest
import torch

import actions as A
import blockworld as bw
import evaluate as E
from test_idm import shared_idm

STEPS = 8


pytestmark = pytest.mark.usefixtures('one_thread')   # conftest.py


@pytest.fixture(scope='module')
def lp():
    from perceptual import build_lpips
    return build_lpips('cpu')


@pytest.fixture(scope='module')
def world_rollouts():
    """True blockworld outcomes of every scripted action for STEPS frames from 2 start states [S, A, 1+STEPS],
    the same under the scripted actions permuted across starts, actions and time (a 'model' told the truth
    about the wrong actions), and the actions' records."""
    world = bw.World(5, 'plains', bw.TIMES[1], 'clear')
    starts = [world.spawn(np.random.default_rng(k)) for k in (1, 2)]
    records = [A.preset_records(E.SCRIPTS.get(a, a), STEPS) for a in E.ACTIONS]
    true = np.stack([np.stack([E.true_rollout(world, s, r) for r in records]) for s in starts])
    flat = [r for _ in starts for rec in records for r in rec]
    perm = np.random.default_rng(0).permutation(len(flat))
    shuffled_recs = [flat[i] for i in perm]
    k = iter(range(0, len(flat), STEPS))
    shuffled = np.stack([np.stack([E.true_rollout(world, s, shuffled_recs[next(k):][:STEPS]) for _ in records])
                         for s in starts])
    return dict(true=true, shuffled=shuffled, records=records, world=world, starts=starts)


def frames_like(seed=0, n=2, t=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(n * t, 3, 9, 16, generator=g), size=(72, 128), mode='bilinear')
    return x.view(n, t, 3, 72, 128)


# ---------------------------------------------------------------- constructed cases

def test_identical_frames_score_perfectly(lp):
    x = frames_like()
    assert all(v >= 99 for v in E.psnr_by_horizon(x, x))            # perceptual.psnr caps at 100 dB
    assert E.ssim_by_horizon(x, x) == pytest.approx([1.0] * 3, abs=1e-5)
    assert E.lpips_by_horizon(lp, x, x) == pytest.approx([0.0] * 3, abs=1e-6)
    u8 = E.to_uint8(x)                                                # uint8 HWC frames work the same
    assert all(v >= 99 for v in E.psnr_by_horizon(u8, u8))
    # identical rollouts under every action: no spread, sensitivity 0; still frames: no change
    same = x[:, None].expand(2, 4, 3, 3, 72, 128)
    truth = torch.stack([x + 0.1 * a for a in range(4)], 1).clamp(0, 1)
    s = E.action_sensitivity(same, truth)
    assert s['overall'] == 0 and s['per_horizon'] == [0, 0, 0] and s['aligned_overall'] == 0
    assert E.action_sensitivity(truth, truth)['overall'] == pytest.approx(1.0)
    assert E.action_sensitivity(truth, truth)['aligned_overall'] == pytest.approx(1.0)
    assert E.frame_change(x[:, :1].expand(2, 5, 3, 72, 128)).tolist() == [0, 0, 0, 0]


def test_shifted_frames_score_worse_the_further_they_move(lp, world_rollouts):
    img = world_rollouts['true'][0, 0, 0]                             # a real render, uint8 [72, 128, 3]
    ref = np.stack([img] * 3)[None]
    shifted = np.stack([np.roll(img, k, axis=1) for k in (1, 4, 16)])[None]
    p, l, s = E.psnr_by_horizon(shifted, ref), E.lpips_by_horizon(lp, shifted, ref), E.ssim_by_horizon(shifted, ref)
    assert 10 < p[2] < p[1] < p[0] < 99
    assert 0 < l[0] < l[1] < l[2]
    assert s[2] < s[1] < s[0] < 1


def test_tf_metrics_and_copy_last_on_known_tokens():
    target = torch.randint(0, 8, (2, 3, 4, 5), generator=torch.Generator().manual_seed(0))
    perfect = torch.nn.functional.one_hot(target, 8).permute(0, 1, 4, 2, 3).float() * 50
    m = E.tf_metrics(perfect, target)
    assert m['token_acc'] == 1 and m['ce'] < 1e-6
    uniform = E.tf_metrics(torch.zeros(2, 3, 8, 4, 5), target)
    assert uniform['ce'] == pytest.approx(np.log(8), rel=1e-5)
    still = target[:, :1].expand(2, 4, 4, 5)
    assert E.copy_last_token_acc(still) == 1
    assert E.copy_last_token_acc(target) < 0.5


def test_change_calibration_separates_idle_from_movement():
    # 3 transitions: idle (nothing changes), isolated W (half the cells change), a turn (all change)
    tok = torch.zeros(1, 4, 2, 4, dtype=torch.long)
    tok[0, 2, 0] = 1                       # idle 1 -> 2 keeps frame 1; W changes row 0 (half the cells)
    tok[0, 1] = tok[0, 0]
    tok[0, 3] = 2                          # the turn changes every cell
    acts = torch.zeros(1, 3, 15)
    acts[..., 2] = acts[..., 6] = 1        # camera still ...
    acts[0, 1, 8] = 1                      # ... W down on transition 1
    acts[0, 2, 2], acts[0, 2, 4] = 0, 1    # transition 2 turns fast right
    # a model that gives the current token probability 0.9 everywhere predicts 10% change everywhere
    logits = torch.full((1, 3, 3, 2, 4), float(np.log(0.05)))
    logits.scatter_(2, tok[:, :3, None], float(np.log(0.9)))
    c = E.change_calibration(logits, tok, acts)
    assert set(c) == {'idle', 'isolated_movement', 'camera'} and all(v['n'] == 1 for v in c.values())
    assert c['idle']['true_change'] == 0 and c['isolated_movement']['true_change'] == 0.5
    assert c['camera']['true_change'] == 1
    assert all(v['predicted_change'] == pytest.approx(0.1, abs=1e-5) for v in c.values())
    # which token a changing cell becomes: the first other code on ties, right for W's row (0 -> 1),
    # wrong for the turn (-> 2) until the model puts code 2 above code 0/1 there
    assert c['isolated_movement']['new_token_acc'] == 1 and c['camera']['new_token_acc'] == 0
    assert c['idle']['new_token_acc'] == 0                       # no cell changed: nothing to get right
    logits[0, 2, 2] = float(np.log(0.06))
    assert E.change_calibration(logits, tok, acts)['camera']['new_token_acc'] == 1


def test_drift_summary_flags_a_frozen_texture_and_noise():
    gt_change, gt_unique = 0.05, 200.0
    ok = E.drift_summary([0.05] * 40, [190] * 40, gt_change, gt_unique)
    frozen = E.drift_summary([0.05] * 10 + [0.0] * 30, [200] * 10 + [20] * 30, gt_change, gt_unique)
    noise = E.drift_summary([0.3] * 40, [500] * 40, gt_change, gt_unique)
    assert ok['verdict'] == 'ok' and frozen['verdict'] == 'collapsed codes' and noise['verdict'] == 'noise'
    assert frozen['change_vs_gt'] == 0 and noise['change_vs_gt'] == pytest.approx(6)
    # random inputs that change nothing (copy-last) are 'frozen'; under idle, standing still is right
    assert E.drift_summary([0.0] * 40, [200] * 40, gt_change, gt_unique, moving=True)['verdict'] == 'frozen'
    assert E.drift_summary([0.0] * 40, [200] * 40, gt_change, gt_unique)['verdict'] == 'ok'
    assert E.bucket_means(np.arange(8), 4) == [0.5, 2.5, 4.5, 6.5]
    tok = torch.zeros(2, 3, 4, 4, dtype=torch.long)
    tok[:, 2, 0, :] = torch.arange(4)
    assert E.unique_codes_curve(tok).tolist() == [1, 1, 4]


def test_idm_head_accuracy_against_known_actions():
    from model_convGru import WorldModelConfig, WorldModelConvFiLM
    model = WorldModelConvFiLM(WorldModelConfig(codebook_size=8, embed_dim=4, hidden_dim=4, n_layers=1, height=4,
                                                width=4, film_dim=4, attn_dim=4, attn_heads=1, idm_dim=4,
                                                idm_pool=(1, 1), idm_hidden=4))
    act = torch.zeros(1, 5, 15)
    act[0, :, 2] = act[0, :, 6] = 1                      # yaw none, pitch level...
    act[0, 1, 2], act[0, 1, 4] = 0, 1                     # ...except a fast right turn at t=1
    act[0, :3, 8] = 1                                     # W for 3 of the 5 steps
    top = torch.zeros(1, 5, 4, 4, 4)
    # a head that reads the action exactly (what an "echo" gives) scores 1; the majority baselines
    # are the share of the commonest class among the 4 scored steps (t = 1..4)
    model.idm = lambda h_prev, h_cur, dt: torch.where(act[0, 1:] > 0.5, 5.0, -5.0)
    h = E.idm_head_accuracy(model, top, act)
    assert h['yaw'] == h['pitch'] == h['wasd'] == 1.0
    assert h['yaw_majority'] == 0.75 and h['pitch_majority'] == 1.0
    assert np.isclose(h['wasd_majority'], (0.5 + 1 + 1 + 1) / 4)   # W down at t=1,2 of 1..4


def test_shuffle_actions_permutes_rows():
    acts = torch.from_numpy(np.stack([A.preset_actions(a, 5) for a in E.ACTIONS]))   # [10, 5, 15]
    sh = E.shuffle_actions(acts, torch.Generator().manual_seed(0))
    assert sh.shape == acts.shape and not torch.equal(sh, acts)
    key = lambda t: sorted(map(tuple, t.reshape(-1, t.shape[-1]).tolist()))
    assert key(sh) == key(acts)


def test_isolated_actions_and_following_ratio():
    import idm as I
    t = I.targets([-6, 6, 0, 0, 0, 0, 0, 0, 0, 0, -6], [0, 0, -3, 3, 0, 0, 0, 0, 0, 0, 3],
                  [0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0],
                  [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0], dict(yaw=(0.5, 4.0), pitch=0.5))
    assert E.isolated_action(t).tolist() == ['turn_left', 'turn_right', 'look_up', 'look_down', 'forward', 'back',
                                             'strafe_left', 'strafe_right', 'jump', 'idle', '']
    model = dict(per_action={'idle': dict(acc=0.5), 'jump': dict(acc=0.2)}, overall=0.35)
    ceiling = dict(per_action={'idle': dict(acc=1.0), 'jump': dict(acc=0.0)}, overall=0.5)
    r = E.following_ratio(model, ceiling)
    assert r['per_action'] == {'idle': 0.5, 'jump': None} and r['overall'] == pytest.approx(0.5)
    assert E.weak_ceiling(ceiling) == []
    low = dict(per_action={'idle': dict(acc=0.3), 'jump': dict(acc=0.9)}, overall=0.6)
    assert E.weak_ceiling(low) == ['idle'] and E.following_ratio(model, low)['per_action']['idle'] == pytest.approx(0.5 / 0.3)


def test_replay_state_reproduces_the_recorded_frames():
    frames, meta = bw.record_clip(11, frames=12)
    world = bw.World(11, meta['biome'], meta['start_time'], meta['initial_weather'])
    for t in (0, 5, 11):
        assert np.array_equal(world.render(E.replay_state(world, meta, t), 128, 72, frame_index=t), frames[t])


def test_scripts_at_a_model_step_of_several_frames():
    assert [E.world_frames_per_step(f) for f in (16, 8, 4, 5, 32, None)] == [1, 2, 4, None, None, None]
    turn = A.preset_records(E.SCRIPTS['turn_left'], 32)            # 15 frames at -6 deg, then still
    steps = E.at_step(turn, 2)
    assert len(steps) == 16 and [r['yaw_deg'] for r in steps[:9]] == [-12.0] * 7 + [-6.0, 0.0]
    hop = E.at_step(A.preset_records('jump:1,forward:3', 4), 2)     # a jump in any frame of the step; W held
    assert [(r['scs'], r['ws']) for r in hop] == [(1, 1), (0, 1)]
    assert E.at_step(turn, 1) is turn
    assert E.step_label(8) == 't+8' and E.step_label(4, 2) == 't+4 (8 fr)'


def test_scripted_truth_at_half_the_world_rate(data, lp, tmp_path):
    """Data tokenized at 8 fps: every model step is 2 world frames. The true outcome starts on the real
    frame the start token grid came from, and step j is the world 2j frames on."""
    import preprocess
    from vqvae import load_vqvae
    raw = os.path.join(os.path.dirname(data['data']), 'raw')
    out = str(tmp_path / 'tokens8')
    assert not preprocess.main(['--input', raw, '--output', out, '--vqvae', data['vq'], '--workers', '1', '--fps', '8'])
    clips = E.Clips(out)
    vq = load_vqvae(data['vq'], 'cpu')
    edges = A.edges_from_manifest(json.load(open(os.path.join(out, 'manifest.json'))))
    res, frames = E.eval_scripted({'model': E.CopyLastGen()}, vq, lp, None, clips, 2, 4, (1, 2, 4), 4, 2, edges,
                                  'cpu', 64, real_pairs=8)
    assert res['frame_step'] == 2 and frames['true'].shape[2] == 5
    for i, st in enumerate(res['starts']):
        c = next(c for c in clips.cache.clips if c['stem'] == st['stem'])
        real = clips.real(c, [st['frame']])[0]                         # the mp4 frame at that 8 fps index
        assert E.psnr_by_horizon(real[None, None], frames['true'][i, :1, :1])[0] > 30
        m = clips.meta(c)
        world = bw.World(m['blockworld']['seed'], m['biome'], m['start_time'], m['initial_weather'])
        src = int(clips.npz(c)['frame_index'][st['frame']])
        assert src == 2 * st['frame']
        j = E.ACTIONS.index('turn_left')
        at16 = E.true_rollout(world, E.replay_state(world, m, src), A.preset_records(E.SCRIPTS['turn_left'], 8), src)
        assert np.array_equal(frames['true'][i, j], at16[::2])
    cf = res['counterfactual']
    assert cf['horizons'] == [1, 2, 4] and len(cf['per_action']['idle']['vq_ceiling']['psnr']) == 3


# ---------------------------------------------------------------- the baselines come out where they must

def test_copy_last_holds_idle_better_than_any_move(lp, world_rollouts):
    true = world_rollouts['true']                                     # [S, A, 1+STEPS, H, W, 3]
    copy = np.repeat(true[:, :, :1], STEPS + 1, axis=2)
    psnr = {a: np.array(E.psnr_by_horizon(copy[:, j, 1:], true[:, j, 1:])) for j, a in enumerate(E.ACTIONS)}
    lpips = {a: np.array(E.lpips_by_horizon(lp, copy[:, j, 1:], true[:, j, 1:])) for j, a in enumerate(E.ACTIONS)}
    moving = [a for a in E.ACTIONS if a != 'idle']
    assert (psnr['idle'] > np.mean([psnr[a] for a in moving], 0)).all()
    assert (lpips['idle'] < np.mean([lpips[a] for a in moving], 0)).all()
    assert psnr['idle'].min() >= 99                                   # clear weather: idle is exactly still
    assert E.action_sensitivity(copy, true)['overall'] == 0


def test_sensitivity_oracle_beats_shuffled_beats_ignoring(world_rollouts):
    true, shuffled = world_rollouts['true'], world_rollouts['shuffled']
    oracle = E.action_sensitivity(true, true)
    sh = E.action_sensitivity(shuffled, true)
    ignoring = E.action_sensitivity(np.repeat(true[:, :1], len(E.ACTIONS), axis=1), true)   # idle for everything
    assert oracle['overall'] == pytest.approx(1.0) and oracle['aligned_overall'] == pytest.approx(1.0)
    assert 0 < sh['overall'] < 0.9 * oracle['overall'], sh['overall']
    # the aligned version also tells 'apart in the wrong ways' from 'apart like the world'
    assert sh['aligned_overall'] < 0.5 * oracle['aligned_overall'], sh['aligned_overall']
    assert ignoring['overall'] == 0 and ignoring['aligned_overall'] == 0
    mirrored = true[:, [0, 2, 1, 4, 3, 6, 5, 8, 7, 9]]     # every action's outcome swapped with its opposite's
    assert E.action_sensitivity(mirrored, true)['aligned_overall'] < 0.5


def test_idm_following_oracle_beats_shuffled_and_ignoring_is_at_chance(world_rollouts, tmp_path_factory):
    import idm as I
    idm = I.load_idm(shared_idm(tmp_path_factory)['path'])
    true, shuffled = world_rollouts['true'], world_rollouts['shuffled']
    S, n_act = true.shape[:2]
    tgt_one = [I.targets_from_records(r, idm.edges) for r in world_rollouts['records']]
    tgt = {g: np.tile(np.concatenate([t[g] for t in tgt_one]), S) for g in tgt_one[0]}
    names = np.tile(np.repeat(E.ACTIONS, STEPS), S)

    def follow(frames):
        pred = I.predict(idm, frames[:, :, :-1].reshape(-1, 72, 128, 3), frames[:, :, 1:].reshape(-1, 72, 128, 3))
        return E.idm_following(pred, tgt, names)

    oracle, sh = follow(true), follow(shuffled)
    ignoring = follow(np.repeat(true[:, :1], n_act, axis=1))
    print('oracle', oracle['overall'], 'shuffled', sh['overall'], 'ignoring', ignoring['overall'])
    assert oracle['overall'] > 0.5
    assert sh['overall'] < oracle['overall'] - 0.2
    for g in ('yaw_dir', 'pitch', 'ws', 'ad', 'camera'):
        present = len(np.unique(tgt[g]))
        assert ignoring['groups'][g]['balanced_acc'] <= 1 / present + 1e-9, g   # at or below chance
        assert oracle['groups'][g]['balanced_acc'] > ignoring['groups'][g]['balanced_acc'], g
    assert oracle['per_action']['turn_left']['acc'] > 0.8 and oracle['per_action']['turn_right']['acc'] > 0.8
    r = E.following_ratio(sh, oracle)
    assert r['overall'] < 0.7
    # read_as: what the IDM reads each scripted action's pairs as; the right class's share is the group's accuracy
    for res in (oracle, ignoring):
        for a, v in res['per_action'].items():
            for g, shares in v['read_as'].items():
                assert abs(sum(shares.values()) - 1) < 1e-9, (a, g)
    assert np.isclose(oracle['per_action']['back']['read_as']['ws']['S'], oracle['per_action']['back']['groups']['ws'])
    assert np.isclose(oracle['per_action']['turn_left']['read_as']['yaw_dir']['left'],
                      oracle['per_action']['turn_left']['acc'])
    assert ignoring['per_action']['back']['read_as']['ws']['S'] < oracle['per_action']['back']['read_as']['ws']['S']


def test_rollout_motion_sees_each_walk_move_its_own_way_and_a_still_world_not(world_rollouts):
    true = world_rollouts['true']
    ignoring = np.repeat(true[:, :1], len(E.ACTIONS), axis=1)          # idle for everything
    m = E.rollout_motion(dict(true=true, ignoring=ignoring), E.ACTIONS, STEPS, (18, 32))
    t, i = m['true'], m['ignoring']
    print({a: (round(v['outward'], 3), round(v['dx'], 3), round(v['abs'], 3)) for a, v in t.items()})
    assert t['forward']['outward'] > 0.03 and t['back']['outward'] < -0.03          # spreads out / draws in
    assert t['strafe_left']['dx'] > 0.05 and t['strafe_right']['dx'] < -0.05        # content slides the other way
    assert t['turn_left']['dx'] > 0.5 > -0.5 > t['turn_right']['dx']                  # a turn moves whole cells
    assert t['idle']['abs'] < 0.02 and all(v['abs'] < 0.02 for v in i.values())    # a still world does not move
    assert t['forward']['n'] == len(true) * STEPS
    assert all(0 < v['weight'] <= 1 for v in t.values())                          # cells with a measurable motion
    import cv2                                        # a blurred picture has fewer of them, and still moves its way
    blurred = np.stack([[[cv2.GaussianBlur(f, (9, 9), 3) for f in seq] for seq in s] for s in true])
    b = E.rollout_motion(dict(b=blurred), ('forward', 'strafe_left'), STEPS, (18, 32))['b']
    assert b['forward']['weight'] < t['forward']['weight'] and b['strafe_left']['dx'] > 0.05


# ---------------------------------------------------------------- end to end

def test_evaluate_runs_end_to_end_on_the_tiny_checkpoint(tiny_ckpt, tmp_path, tmp_path_factory):
    idm = shared_idm(tmp_path_factory)
    out = tmp_path / 'eval'
    res = E.main(['--ckpt', tiny_ckpt['run'], '--data', tiny_ckpt['data'], '--idm', idm['path'], '--out', str(out),
                  '--quick', '--device', 'cpu', '--sampling', 'commit', '--change-threshold', '0.4',
                  '--display', 'soft_changed'])
    saved = json.loads((out / 'eval.json').read_text())
    assert saved == json.loads(json.dumps(res))
    assert {'settings', 'teacher_forced', 'open_loop', 'stability', 'scripted', 'report'} <= set(saved)
    s = saved['settings']
    assert s['quick'] and s['step'] == 30 and s['checkpoint'].endswith('ckpt_0000030.pt')
    assert s['sampling']['mode'] == 'commit' and s['sampling']['change_threshold'] == 0.4
    assert s['display'] == 'soft_changed'
    tf = saved['teacher_forced']
    assert {'model', 'shuffled_actions', 'copy_last'} <= set(tf) and 0 <= tf['model']['token_acc'] <= 1
    assert np.isclose(tf['action_ce_gain'], tf['shuffled_actions']['ce'] - tf['model']['ce'])
    assert all(0 <= tf['idm_head'][k] <= 1 for k in ('yaw', 'pitch', 'wasd', 'yaw_majority'))
    assert set(tf['action_ce_gain_by_group']) == {'camera', 'movement_keys'}
    assert all(0 <= v['predicted_change'] <= 1 for v in tf['change_calibration'].values())
    for key in ('ctx1', f"ctx{s['ctx_frames']}"):
        ol = saved['open_loop'][key]
        assert ol['horizon'] == max(s['horizons'])
        for g in ('model', 'copy_last', 'shuffled_actions'):
            assert len(ol[g]['vs_decoded']['psnr']) == ol['horizon']
            assert len(ol[g]['vs_real']['lpips']) == len(ol['perceptual_steps']) and ol['perceptual_steps'][0] == 1
            assert len(ol[g]['vs_decoded']['ssim']) == len(ol['perceptual_steps'])
            assert len(ol[g]['unique_codes']) == ol['horizon']
        assert len(ol['vq_ceiling']['psnr']) == ol['horizon']
        assert 'model/vs_decoded/psnr@1' in ol['summary']
    st = saved['stability']
    assert st['steps'] == s['stability_steps'] and {'frame_change', 'unique_codes'} <= set(st['gt'])
    for mode in ('idle', 'random'):
        assert {'frame_change', 'unique_codes', 'verdict', 'change_vs_gt', 'unique_vs_gt'} <= set(st[mode]['model'])
    sc = saved['scripted']
    assert sc['actions'] == list(E.ACTIONS)
    cf = sc['counterfactual']
    assert cf['horizons'] == list(s['cf_horizons'])
    assert set(cf['per_action']) == set(E.ACTIONS)
    assert set(cf['per_action']['turn_left']) == {'model', 'copy_last', 'shuffled_actions', 'vq_ceiling'}
    assert cf['sensitivity']['copy_last']['overall'] == 0
    assert {'moving', 'idle'} <= set(cf)
    fol = sc['following']
    assert {'model', 'copy_last', 'shuffled_actions', 'ceiling_true_render', 'ceiling_real', 'ratio', 'weak_ceiling'} <= set(fol)
    assert set(fol['model']['per_action']) == set(E.ACTIONS)
    assert fol['ratio']['ceiling'] == 'ceiling_true_render' and 'overall' in fol['ratio']['model']
    files = set(os.listdir(out))
    assert {'eval.json', 'index.html', 'open_loop_metrics.png', 'stability_metrics.png', 'counterfactual_metrics.png',
            'action_following.png', 'counterfactual_turn_left.png'} <= files
    assert set(saved['report']['pngs']) <= files
    html = (out / 'index.html').read_text()
    assert all(p in html for p in saved['report']['pngs'])
    # the experiments table reads the same figures back
    import importlib.util
    spec = importlib.util.spec_from_file_location('summarize', os.path.join(os.path.dirname(E.__file__), 'experiments',
                                                                          'summarize.py'))
    summarize = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summarize)
    f = summarize.figures(str(tmp_path))
    assert f['overall'] == fol['ratio']['model']['overall'] and f['step'] == 30
    assert f['sensitivity'] == cf['sensitivity']['model']['overall']
    assert f['key_gain'] == tf['action_ce_gain_by_group']['movement_keys']
    assert f['pchg_idle'] == tf['change_calibration'].get('idle', {}).get('predicted_change')
    i8 = cf['horizons'].index(8)
    assert f['cf_move_gain8'] == min(cf['per_action'][a]['model']['psnr'][i8] - cf['per_action'][a]['copy_last']['psnr'][i8]
                                     for a in E.ACTIONS if a != 'idle')
    assert f['cf_move_gain8'] <= f['cf_turn_gain8'] == min(
        cf['per_action'][a]['model']['psnr'][i8] - cf['per_action'][a]['copy_last']['psnr'][i8] for a in ('turn_left', 'turn_right'))
    assert f['new_move'] == tf['change_calibration'].get('isolated_movement', {}).get('new_token_acc')
    gains, flow, first = summarize.per_action_gains(str(tmp_path))
    assert flow == tf.get('flow', {}) and first == saved['scripted'].get('flow_first_step', {})
    back = fol['model']['per_action']['back']['read_as']['ws']
    assert f"back: none {back['none']:.2f} W {back['W']:.2f} S {back['S']:.2f}" in summarize.read_as_rows(str(tmp_path))
    motion = saved['scripted']['motion']                     # how far the rollouts' pictures move, model and truth
    assert set(motion) == {'model', 'copy_last', 'shuffled_actions', 'true'} and set(motion['model']) == set(E.ACTIONS)
    assert motion['copy_last']['forward']['abs'] < 1e-3 < motion['true']['forward']['abs']
    assert f"back outward {motion['model']['back']['outward']:+.3f} / {motion['true']['back']['outward']:+.3f}" in \
        summarize.motion_row(str(tmp_path))
    sl = cf['per_action']['strafe_left']
    assert gains['strafe_left'][0] == sl['model']['psnr'][i8] - sl['copy_last']['psnr'][i8]
    assert gains['strafe_left'][1] is None if 16 not in cf['horizons'] else gains['strafe_left'][1] is not None
    assert min(g[0] for a, g in gains.items() if a != 'idle') == f['cf_move_gain8']

"""The experiments table: one row per evaluated run, the figures the targets are about.

    python experiments/summarize.py runs/exp/e0_base runs/exp/e1_coords_actions ...

Reads <run>/eval/eval.json (evaluate.py) and prints a markdown table; `--targets` adds a row of
the issue's targets and marks each figure that meets its target with a check mark; `--per-action` adds a
second table: each scripted action's counterfactual PSNR gain over copy-last at 8 / 16 frames (the
target asks +2 dB of every moving one) and, for flow models, the learned flow per kind of transition. The counterfactual
columns are at 8 and 16 world frames (model steps 4 and 8 for data tokenized at half the world's rate).
"""
import argparse
import json
import os

FOLLOW = ('turn_left', 'turn_right', 'look_up', 'look_down', 'forward', 'back', 'strafe_left', 'strafe_right',
          'jump', 'idle')
SHORT = dict(turn_left='yawL', turn_right='yawR', look_up='pitU', look_down='pitD', forward='W', back='S',
             strafe_left='A', strafe_right='D', jump='jump', idle='idle')
# issue 10's targets: (minimum, None) or (None, maximum)
TARGETS = dict(turn_left=(0.85, None), turn_right=(0.85, None), look_up=(0.85, None), look_down=(0.85, None),
               forward=(0.70, None), back=(0.70, None), strafe_left=(0.70, None), strafe_right=(0.70, None),
               jump=(0.70, None), overall=(0.80, None), cf_move_gain8=(2.0, None), cf_move_gain16=(2.0, None),
               cf_idle_gap=(-1.0, None), sensitivity=(0.8, None), idle_unique=(0.5, None), idle_change=(None, 2.0))


def figures(run):
    r = json.load(open(os.path.join(run, 'eval', 'eval.json')))
    sc, tf, st = r['scripted'], r['teacher_forced'], r['stability']
    ratio = sc['following']['ratio']['model']
    cf = sc['counterfactual']
    k = sc.get('frame_step', 1)                 # world frames per model step (data tokenized at a lower fps)
    hz = [h * k for h in cf['horizons']]        # horizons in world frames: runs at any fps compare at equal time
    at = [hz.index(h) for h in (8, 16) if h in hz]
    per_action = cf['per_action']
    moving = [a for a in per_action if a != 'idle']
    def worst_gain(actions, h):   # the worst of these actions' PSNR gain over copy-last at horizon h
        if h not in hz:
            return None
        i = hz.index(h)
        return min(per_action[a]['model']['psnr'][i] - per_action[a]['copy_last']['psnr'][i] for a in actions)

    # every moving action (the target holds for each) and the turns alone
    gains = {h: worst_gain(moving, h) for h in (8, 16)}
    turn8 = worst_gain([a for a in ('turn_left', 'turn_right') if a in per_action], 8)
    idle = cf['idle']
    idle_gap = min(idle['model']['psnr'][i] - idle['copy_last']['psnr'][i] for i in at) if at else None
    gt, idle_model = st['gt'], st['idle']['model']   # gt: the held-out clips' own change and unique codes
    out = dict(step=r['settings']['step'], overall=ratio['overall'], **{a: ratio['per_action'].get(a) for a in FOLLOW},
               cf_move_gain8=gains[8], cf_move_gain16=gains[16], cf_turn_gain8=turn8, cf_idle_gap=idle_gap,
               sensitivity=cf['sensitivity']['model']['overall'], aligned=cf['sensitivity']['model']['aligned_overall'],
               idle_unique=idle_model['unique_end'] / gt['unique_codes'],
               idle_change=idle_model['change_end'] / gt['frame_change'],
               random_unique=st['random']['model']['unique_end'] / gt['unique_codes'],
               ce_gain=tf.get('action_ce_gain'), tf_acc=tf['model']['token_acc'],
               key_gain=tf.get('action_ce_gain_by_group', {}).get('movement_keys'))
    cal = tf.get('change_calibration', {})   # predicted share of changing cells (true share: same data, same for all)
    out.update(pchg_idle=cal.get('idle', {}).get('predicted_change'),
               pchg_move=cal.get('isolated_movement', {}).get('predicted_change'),
               new_move=cal.get('isolated_movement', {}).get('new_token_acc'))
    return out


def per_action_gains(run):
    """{scripted action: (dB over copy-last at 8 world frames, at 16)} and the learned flow (eval.json
    teacher_forced.flow, {} for models without one)."""
    r = json.load(open(os.path.join(run, 'eval', 'eval.json')))
    cf = r['scripted']['counterfactual']
    hz = [h * r['scripted'].get('frame_step', 1) for h in cf['horizons']]
    gains = {a: tuple(v['model']['psnr'][hz.index(h)] - v['copy_last']['psnr'][hz.index(h)] if h in hz else None
                      for h in (8, 16)) for a, v in cf['per_action'].items()}
    return gains, r['teacher_forced'].get('flow', {}), r['scripted'].get('flow_first_step', {})


READ_AS = (('forward', 'ws'), ('back', 'ws'), ('jump', 'jump'), ('look_down', 'pitch'))


def read_as_rows(run):
    """What the IDM reads the model's rollouts of the missed keys as (eval.json from session 17 on), '' if absent."""
    r = json.load(open(os.path.join(run, 'eval', 'eval.json')))
    per = r['scripted']['following']['model']['per_action']
    cells = [f"{a}: " + ' '.join(f"{c} {v:.2f}" for c, v in per[a]['read_as'][g].items())
             for a, g in READ_AS if 'read_as' in per.get(a, {})]
    return f"| {os.path.basename(run.rstrip('/'))} | " + ' | '.join(cells) + ' |' if cells else ''


MOTION = (('forward', 'outward'), ('back', 'outward'), ('strafe_left', 'dx'), ('strafe_right', 'dx'),
          ('jump', 'dy'), ('idle', 'abs'))


def motion_row(run):
    """How far the rollouts' pictures move against the true renders' (eval.json scripted.motion, session 18 on):
    per action its telling part of the optical flow, model / true, cells a step; '' if absent."""
    r = json.load(open(os.path.join(run, 'eval', 'eval.json')))
    m = r['scripted'].get('motion', {})
    if 'model' not in m or 'true' not in m:
        return ''
    cells = [f"{a} {k} {m['model'][a][k]:+.3f} / {m['true'][a][k]:+.3f}" for a, k in MOTION if a in m['model']]
    if 'weight' in m['true']['idle']:   # how much of the picture has a measurable motion (texture), over actions
        share = {g: sum(v['weight'] for v in m[g].values()) / len(m[g]) for g in ('model', 'true')}
        cells.append(f"measurable {share['model']:.2f} / {share['true']:.2f}")
    return f"| {os.path.basename(run.rstrip('/'))} | " + ' | '.join(cells) + ' |'


def per_action_table(runs):
    rows, flows, firsts, reads, motions = [], [], [], [], []
    for run in runs:
        try:
            gains, flow, first = per_action_gains(run)
            reads.append(read_as_rows(run))
            motions.append(motion_row(run))
        except (OSError, KeyError, ValueError):
            continue
        name = os.path.basename(run.rstrip('/'))
        if not rows:
            rows += ['| run | ' + ' | '.join(f"{SHORT.get(a, a)} +dB@8/16" for a in gains) + ' |',
                     '|---' * (len(gains) + 1) + '|']
        rows.append(f"| {name} | " + ' | '.join('/'.join(fmt(g, 'cf_') for g in gains[a]) for a in gains) + ' |')
        for src, dst in ((flow, flows), (first, firsts)):
            if src:
                dst.append(f"| {name} | " + ' | '.join(f"{k}: {v['abs']:.2f} / {v['dx']:+.2f} / {v['outward']:+.2f}"
                                                     for k, v in src.items()) + ' |')
    if flows:
        rows += ['', 'learned flow, teacher-forced, cells a step: |flow| / dx / outward', ''] + flows
    if firsts:
        rows += ['', 'learned flow one step from the scripted start states, each key alone: |flow| / dx / outward',
                 ''] + firsts
    if any(reads):
        rows += ['', "what the IDM reads the model's pairs as (share of pairs per class)", ''] + [r for r in reads if r]
    if any(motions):
        rows += ['', "how far the rollouts' pictures move (optical flow at the token grid, cells a step): model / true",
                 ''] + [r for r in motions if r]
    return rows


def fmt(v, key=None, mark=False):
    if v is None:
        return '–'
    s = f"{v:.0f}" if key == 'step' else f"{v:+.1f}" if key and key.startswith('cf_') else \
        f"{v:+.3f}" if key == 'key_gain' else f"{v:.2f}"
    if mark and key in TARGETS:
        lo, hi = TARGETS[key]
        if (lo is None or v >= lo) and (hi is None or v <= hi):
            s += ' ✓'
    return s


COLUMNS = ['step', 'overall'] + list(FOLLOW) + ['cf_move_gain8', 'cf_move_gain16', 'cf_turn_gain8', 'cf_idle_gap',
                                                'sensitivity', 'aligned', 'idle_unique', 'idle_change', 'random_unique',
                                                'ce_gain', 'key_gain', 'pchg_idle', 'pchg_move', 'new_move']
HEAD = dict(SHORT, step='steps', overall='follow', cf_move_gain8='CF move +dB@8', cf_move_gain16='CF move +dB@16',
            cf_idle_gap='CF idle dB', sensitivity='sens', aligned='sens aligned', idle_unique='idle uniq', idle_change='idle chg',
            random_unique='rand uniq', ce_gain='CE gain', key_gain='keys CE gain', pchg_idle='p(chg) idle',
            pchg_move='p(chg) move', cf_turn_gain8='CF turns +dB@8', new_move='new token move')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('runs', nargs='+')
    p.add_argument('--targets', action='store_true')
    p.add_argument('--per-action', action='store_true', help="each action's CF gain over copy-last; the flow")
    args = p.parse_args(argv)
    lines = ['| run | ' + ' | '.join(HEAD[c] for c in COLUMNS) + ' |', '|---' * (len(COLUMNS) + 1) + '|']
    if args.targets:
        t = ['target'] + [('≥%g' % TARGETS[c][0] if TARGETS[c][0] is not None else '≤%g' % TARGETS[c][1])
                          if c in TARGETS else '' for c in COLUMNS]
        lines.append('| ' + ' | '.join(t) + ' |')
    for run in args.runs:
        try:
            f = figures(run)
        except (OSError, KeyError, ValueError) as e:
            print(f"skipping {run}: {e}")
            continue
        lines.append(f"| {os.path.basename(run.rstrip('/'))} | " + ' | '.join(fmt(f[c], c, args.targets) for c in COLUMNS) + ' |')
    if args.per_action:
        lines += [''] + per_action_table(args.runs)
    print('\n'.join(lines))


if __name__ == '__main__':
    main()

"""How much of a frame's token grid changes under each isolated action, in a token data folder.

    python experiments/token_change.py runs/exp/tokens [--raw data/blockworld]

The share of cells whose token differs from the previous frame's, per transition class (idle, W
alone, S alone, A/D alone, jump alone, turn alone), over all clips and split by the clip's
weather when the GF metadata is found (rain streaks move on their own). A still world that
flickers in token space, or a key that changes nothing, shows here before any training.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from actions import camera_still, movement_keys_down  # noqa: E402
from tokendata import TokenCache  # noqa: E402


def classes(actions):
    """v5 actions [N, 15] -> {class: bool mask} of isolated transitions."""
    still, nokeys = camera_still(actions), ~movement_keys_down(actions)
    a = actions > 0.5
    w, al, s, d, jump = (a[:, i] for i in range(8, 13))
    return {'idle': still & nokeys, 'W alone': still & w & ~(al | s | d | jump), 'S alone': still & s & ~(w | al | d | jump),
            'A/D alone': still & (al | d) & ~(w | s | jump), 'jump alone': still & jump & ~(w | al | s | d),
            'turn alone': ~a[:, 2] & a[:, 6] & nokeys}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data')
    p.add_argument('--raw', default=None, help='GF layout folder, for the weather split')
    args = p.parse_args(argv)
    cache = TokenCache(args.data)
    tok, act = np.asarray(cache.tokens), np.asarray(cache.actions)
    rows = {}
    for c in cache.clips:
        s, n = c['start'], c['length']
        change = (tok[s + 1:s + n] != tok[s:s + n - 1]).mean((1, 2))         # transition t: frame t -> t+1
        weather = 'all'
        if args.raw:
            meta = os.path.join(args.raw, 'metadata', c['stem'] + '.json')
            if os.path.exists(meta):
                with open(meta) as f:
                    weather = json.load(f).get('initial_weather', 'unknown')
        for name, m in classes(act[s:s + n - 1]).items():
            for key in {('all', name), (weather, name)}:
                rows.setdefault(key, []).extend(change[m].tolist())
    print('| weather | transition | n | tokens changed |\n|---|---|---|---|')
    for (weather, name), v in sorted(rows.items()):
        print(f"| {weather} | {name} | {len(v)} | {100 * np.mean(v):.1f}% |" if v else f"| {weather} | {name} | 0 | – |")


if __name__ == '__main__':
    main()

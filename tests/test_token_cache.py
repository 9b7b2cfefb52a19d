"""The flat token cache (tokendata.build_cache): runs started side by side on one dataset each build it without
tearing the others' files, and a damaged cache is rebuilt, not read."""
import json
import multiprocessing as mp
import os

import numpy as np
import pytest

import tokendata

CLIPS, FRAMES, D, H, W, ADIM = 12, 40, 64, 18, 32, 15


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(0)
    clips, arrays = [], {}
    for i in range(CLIPS):
        z = dict(tokens=rng.integers(0, 512, (FRAMES, H, W)).astype(np.uint16),
                 actions=rng.random((FRAMES - 1, ADIM)).astype(np.float32),
                 latents=rng.standard_normal((FRAMES, D, H, W)).astype(np.float16))
        np.savez(tmp_path / f'clip_{i}.npz', **z)
        clips.append(dict(file=f'clip_{i}.npz', stem=f'clip_{i}', split='val' if i == 0 else 'train'))
        arrays[f'clip_{i}'] = z
    (tmp_path / 'manifest.json').write_text(json.dumps(dict(clips=clips, action_dim=ADIM)))
    return str(tmp_path), arrays


def assert_cache_holds(data_dir, arrays):
    cache = tokendata.TokenCache(data_dir)
    assert cache.latent_dim == D
    for c in cache.clips:
        z, s, n = arrays[c['stem']], c['start'], c['length']
        np.testing.assert_array_equal(cache.tokens[s:s + n], z['tokens'])
        np.testing.assert_array_equal(cache.actions[s:s + n - 1], z['actions'])
        np.testing.assert_array_equal(cache.latents[s:s + n], z['latents'])


def _build(data_dir, barrier, errors):
    barrier.wait()   # every builder starts at once, so their writes overlap
    try:
        tokendata.build_cache(data_dir, progress=False)
    except Exception as e:  # noqa: BLE001  (reported to the parent, which fails the test)
        errors.put(f'{type(e).__name__}: {e}')


def test_builders_side_by_side_each_finish_and_the_cache_is_whole(dataset):
    # Three trainings started at once on a fresh dataset (experiments/gpu_step5.sh, now gpu_side_by_side.sh) once
    # shared one temp name: one builder renamed another's half-written file away (FileNotFoundError) and left arrays
    # shorter than index.json.
    data_dir, arrays = dataset
    ctx = mp.get_context('fork')
    barrier, errors = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_build, args=(data_dir, barrier, errors)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert not found, found
    assert all(p.exitcode == 0 for p in procs)
    assert sorted(os.listdir(os.path.join(data_dir, 'cache'))) == \
        ['actions.npy', 'index.json', 'latents.npy', 'tokens.npy']   # no temp file left behind
    assert_cache_holds(data_dir, arrays)


def test_a_truncated_array_is_rebuilt_not_read(dataset):
    data_dir, arrays = dataset
    tokendata.build_cache(data_dir, progress=False)
    path = os.path.join(data_dir, 'cache', 'latents.npy')
    with open(path, 'r+b') as f:   # index.json still matches the manifest; the array is cut short
        f.truncate(os.path.getsize(path) // 3)
    assert_cache_holds(data_dir, arrays)

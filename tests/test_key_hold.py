"""The keys' hold counts (model key_hold_bins, train.py KEY_HOLD_BINS): counted in the state, read by the movement
FiLM, started from the clip's history in training and evaluation."""
import numpy as np
import pytest
import torch

from model_convGru import (WorldModelConfig, WorldModelConvFiLM, key_hold_counts,  # noqa: E402
                           key_hold_features)
from tests.test_model import action, build, rand_actions, rand_tokens

pytestmark = pytest.mark.usefixtures('one_thread')
JUMP = 4   # W A S D jump sprint sneak


def test_counts_run_while_a_key_is_down_and_restart_from_zero():
    a = torch.cat([action(keys=k)[:, None] for k in ((), (JUMP,), (JUMP,), (JUMP, 0), (0,), (), (JUMP,))], 1)
    c = key_hold_counts(a)
    assert c[0, :, JUMP].tolist() == [0, 1, 2, 3, 0, 0, 1] and c[0, :, 0].tolist() == [0, 0, 0, 1, 2, 0, 0]
    assert c[0, :, 1:4].abs().sum() == 0 and c[0, :, 5:].abs().sum() == 0
    # from a state that has held jump 5 frames already, the run goes on
    held = torch.zeros(1, 7, dtype=torch.long)
    held[0, JUMP] = 5
    assert key_hold_counts(a, held)[0, :, JUMP].tolist() == [0, 1, 2, 3, 0, 0, 1]   # released at once: restarts
    assert key_hold_counts(a[:, 1:], held)[0, :, JUMP].tolist() == [6, 7, 8, 0, 0, 1]
    f = key_hold_features(torch.tensor([[[0, 1, 2, 3, 9, 0, 0]]]), 3).view(7, 3)
    assert f.tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 0, 0], [0, 0, 0]]


def test_state_carries_the_counts_so_steps_equal_the_window_and_the_count_changes_film():
    m = build(key_hold_bins=4)
    tok, act = rand_tokens(3, 6, m.config), rand_actions(3, 6)
    held = torch.tensor([[0] * 7, [2] * 7, [9] * 7])
    with torch.no_grad():
        full, st = m(tok, act, m.init_state(3, held=held))
        s, steps = m.init_state(3, held=held), []
        for t in range(6):
            lg, s = m.step(tok[:, t], act[:, t], s)
            steps.append(lg)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)
    assert torch.equal(st.held, key_hold_counts(act, held)[:, -1]) and torch.equal(s.held, st.held)
    # indexing, device moves and resets keep the counts (a reset sample's keys count as up)
    assert torch.equal(st[1].held, st.held[1:2]) and torch.equal(st.to('cpu').held, st.held)
    assert st.reset(torch.tensor([False, True, False])).held[1].abs().sum() == 0
    # the same action (jump down) gives other FiLM parameters after 1 and after 3 frames held; without the
    # switch the model cannot tell them apart
    jump = action(keys=(JUMP,), B=1)[:, None]
    for bins, differ in ((4, True), (0, False)):
        m = build(key_hold_bins=bins)
        g1, b1 = m.film_params(jump, key_hold_counts(jump))
        g3, b3 = m.film_params(jump, key_hold_counts(jump, torch.tensor([[0, 0, 0, 0, 2, 0, 0]])))
        assert (not torch.allclose(g1, g3) or not torch.allclose(b1, b3)) == differ
    with pytest.raises(ValueError, match='key_hold_bins'):
        WorldModelConfig(key_hold_bins=4, separate_film=False)
    with pytest.raises(ValueError, match='key_hold_bins'):
        WorldModelConfig(key_hold_bins=-1)


def test_only_the_count_tells_a_bounce_and_a_model_with_it_learns_it():
    """A held jump key makes the next frame token 1 on its 1st-2nd frames held, 2 on its 3rd-4th, then again:
    the frame before says nothing of which comes next (token 1 is followed by 1 or 2), nor does the key; windows
    of one step start anywhere in a hold, from the clip's count. Only the count predicts the next frame."""
    def batch(g, B=32):
        held = torch.randint(0, 8, (B,), generator=g)                  # frames already held before the window
        n = held + 1                                                   # frames held after this step
        prev_phase = torch.where(held == 0, torch.zeros_like(held), 1 + ((held - 1) // 2) % 2)
        nxt = 1 + ((n - 1) // 2) % 2
        cfg = m.config
        tok = prev_phase[:, None, None, None].expand(B, 1, cfg.height, cfg.width).clone()
        act = action(keys=(JUMP,), B=B)[:, None]
        h = torch.zeros(B, 7, dtype=torch.long)
        h[:, JUMP] = held
        return tok, act, h, nxt[:, None, None].expand(B, cfg.height, cfg.width)

    losses = {}
    for bins in (0, 8):
        m = build(key_hold_bins=bins, codebook_size=4, use_temporal_attention=False, use_idm=False)
        m.train()
        opt = torch.optim.Adam(m.parameters(), lr=0.01)
        g = torch.Generator().manual_seed(0)
        for _ in range(150):
            tok, act, h, target = batch(g)
            logits, _ = m(tok, act, m.init_state(len(tok), held=h))
            loss = torch.nn.functional.cross_entropy(logits[:, 0], target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            tok, act, h, target = batch(torch.Generator().manual_seed(1), 256)
            logits, _ = m(tok, act, m.init_state(len(tok), held=h))
            losses[bins] = torch.nn.functional.cross_entropy(logits[:, 0], target).item()
    # without the count, token 1 -> {1, 2} is a coin flip for the cells it holds (~half the windows): >= ~0.3
    assert losses[0] > 0.25 and losses[8] < 0.15, losses


def test_cache_starts_each_window_from_its_clips_counts(data):
    from tokendata import TokenCache, WindowDataset
    cache = TokenCache(data['data'])
    act = np.asarray(cache.actions)
    want = np.zeros((len(act), 7), np.int64)
    for c in cache.clips:   # a plain loop over each clip's rows
        run = np.zeros(7, np.int64)
        for r in range(c['start'], c['start'] + c['length']):
            want[r] = run
            run = (run + 1) * (act[r, 8:15] > 0.5)
    assert np.array_equal(cache.held_before, want) and want.max() > 2      # real holds of several frames
    assert all(not cache.held_before[c['start']].any() for c in cache.clips)
    ds = WindowDataset(cache, 'train', 4, held=True)
    i = int(np.argmax(cache.held_before[ds.starts].sum(1)))
    tok, a, held = ds[i]
    assert held.dtype == torch.long and np.array_equal(held.numpy(), want[ds.starts[i]])
    # the counts after the window's first action are where the next window's begin
    after = key_hold_counts(a[None, :1], held[None])[0, 0]
    assert np.array_equal(after.numpy(), want[ds.starts[i] + 1])


def test_jump_phase_finds_the_vertical_shift_that_moved_a_latent():
    import os
    import sys
    from model_convGru import warp_by_flow
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'experiments'))
    import jump_phase
    g = torch.Generator().manual_seed(0)
    z = torch.nn.functional.interpolate(torch.randn(6, 4, 6, 10, generator=g), size=(18, 32), mode='bicubic')
    flow = torch.zeros(6, 2, 18, 32)
    flow[:, 1] = torch.tensor([0.4, 0.2, 0.0, -0.1, -0.3, 0.7])[:, None, None]
    found = jump_phase.best_vertical_shift(z, warp_by_flow(z, flow))
    assert found.tolist() == pytest.approx([0.4, 0.2, 0.0, -0.1, -0.3, 0.7])

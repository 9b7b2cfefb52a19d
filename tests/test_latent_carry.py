"""Snap carry (config.latent_carry): a latent rollout adds back, while a move goes on, the share of what each
snap took off, so a motion of part of a cell a step adds up until the codes flip instead of being taken back
every step. Tiny configs, CPU."""
import math

import pytest
import torch

from model_convGru import WorldModelConfig, WorldModelConvFiLM, moving_actions, shift_maps
from rollout import rollout
from tests.test_latent import D, H, K, W, TINY_LATENT, actions, context, play_and_generate, tiny_latent

pytestmark = pytest.mark.usefixtures('one_thread')   # conftest.py


def carried_by_hand(m, ctx_tok, ctx_act, ctx_lat, acts, snap, carry):
    """The carried rollout written out: v = prediction + residual moved by the camera shift where the step moves;
    tokens = nearest codes of v; fed back v moved `snap` of the way to them; residual = carry (v - fed back),
    zero after an idle step."""
    codes = lambda t: m.codebook[t].movedim(-1, 1)
    toks = []
    with torch.no_grad():
        _, s = m(ctx_tok[:, :-1], ctx_act, latents=ctx_lat[:, :-1])
        lat, cur, r = ctx_lat[:, -1], ctx_tok[:, -1], torch.zeros_like(ctx_lat[:, -1])
        for n in range(acts.shape[1]):
            a = acts[:, n]
            dx, dy, _ = m.camera_shifts(a[:, None], s.warp_offset)
            _, s = m.step(cur, a, s, latent_t=lat)
            mov = moving_actions(a).float().view(-1, 1, 1, 1)
            v = s.latent + mov * shift_maps(r, dx[:, 0], dy[:, 0])
            cur = m.latent_logits(m.normalise_latent(v)).argmax(1)
            toks.append(cur)
            lat = (1 - snap) * v + snap * codes(cur)
            r = carry * mov * (v - lat)
    return torch.stack(toks, 1), s


def test_carried_rollout_adds_back_what_the_snap_took_off_and_an_idle_rollout_is_unchanged():
    ctx_tok, ctx_act, ctx_lat, _ = context(Tc=2, N=6)
    acts = torch.cat([actions(1, 6), actions(1, 6, keys=(1,))])          # sample 0 idle, sample 1 strafes ...
    acts[1, 2] = actions(1, 1, yaw=4)[0, 0]                             # ... turns (a 2-cell camera shift) ...
    acts[1, 4] = actions(1, 1)[0, 0]                                    # ... stops for a step, strafes again
    m = tiny_latent(zero_init_head=False, latent_snap=1.0, latent_carry=0.75)
    got, st = rollout(m, ctx_tok, ctx_act, acts, context_latents=ctx_lat)
    want, st_want = carried_by_hand(m, ctx_tok, ctx_act, ctx_lat, acts, snap=1.0, carry=0.75)
    assert torch.equal(got, want)
    torch.testing.assert_close(st.latent, st_want.latent)
    m.config.latent_carry = 0.0
    plain, _ = rollout(m, ctx_tok, ctx_act, acts, context_latents=ctx_lat)
    assert torch.equal(plain, carried_by_hand(m, ctx_tok, ctx_act, ctx_lat, acts, snap=1.0, carry=0.0)[0])
    assert torch.equal(plain[0], got[0])          # idle: nothing is carried, the rollout is the plain one
    assert not torch.equal(plain[1], got[1])


def column_shift(tokens, ref, max_shift):
    """The whole-cell shift s (content moved s columns right) that best matches tokens (H, W) to ref (H, W)."""
    match = [(tokens[:, s:] == ref[:, :W - s]).float().mean() for s in range(max_shift + 1)]
    return int(torch.stack(match).argmax())


def test_a_sub_cell_flow_moves_the_picture_only_when_the_snap_residual_is_carried():
    """A model whose prediction is its input moved 0.3 cells right a step (a fixed flow, no correction), fed back
    snapped fully to its codes: without carry every step's 0.3 cell is taken back and the picture never moves;
    carried, it moves a whole cell about every 3 steps, never more than a cell from the true 0.3 n."""
    m = WorldModelConvFiLM(WorldModelConfig(**{**TINY_LATENT, 'latent_dim': K}, flow_warp=1.0, latent_snap=1.0)).eval()
    m.set_latent_space(torch.eye(K) * 4, torch.zeros(K), torch.ones(K))   # orthogonal codes: a blend of two is
    torch.nn.init.zeros_(m.flow_head.weight)                              # nearest the one it holds more of
    with torch.no_grad():
        m.flow_head.bias.copy_(torch.tensor([math.atanh(0.3), 0.0]))
    cols = torch.arange(W) % K
    ctx_tok = cols.view(1, 1, 1, W).expand(1, 2, H, W).clone()            # each column its own code
    ctx_lat = m.codebook[ctx_tok].movedim(-1, 2)
    N = 10
    acts = actions(1, N, keys=(3,))                                       # a strafe key held: moving
    still, _ = rollout(m, ctx_tok, actions(1, 1), acts, context_latents=ctx_lat)
    assert all(column_shift(still[0, n], ctx_tok[0, -1], 4) == 0 for n in range(N))
    m.config.latent_carry = 1.0
    moved, _ = rollout(m, ctx_tok, actions(1, 1), acts, context_latents=ctx_lat)
    shifts = [column_shift(moved[0, n], ctx_tok[0, -1], 4) for n in range(N)]
    assert all(abs(s - 0.3 * (n + 1)) <= 1 for n, s in enumerate(shifts)), shifts
    assert shifts[-1] == 3 and shifts == sorted(shifts), shifts
    m.config.latent_carry = 0.5      # half of it carried: the residual settles under the flip, nothing moves
    half, _ = rollout(m, ctx_tok, actions(1, 1), acts, context_latents=ctx_lat)
    assert torch.equal(half, still)


def test_latent_carry_config_errors():
    with pytest.raises(ValueError, match='latent_carry'):
        WorldModelConfig(latent_carry=0.5)                                 # a token model: no latent to carry
    with pytest.raises(ValueError, match='latent_carry'):
        WorldModelConfig(latent_dim=D, latent_carry=1.5)
    with pytest.raises(ValueError, match='latent_carry'):
        WorldModelConfig(latent_dim=D, latent_carry=0.5, action_dim=8, camera_warp='none')


def test_live_play_carries_the_snap_residual_as_offline_rollouts_do():
    m = tiny_latent(zero_init_head=False, latent_snap=1.0)
    played = {}
    for carry in (0.0, 1.0):
        m.config.latent_carry = carry
        played[carry], offline = play_and_generate(m)
        assert torch.equal(offline, played[carry])
    assert not torch.equal(played[0.0], played[1.0])


def test_train_refuses_a_carry_without_latents(data, tmp_path):
    from tests.test_train import run_train
    p = run_train(data, tmp_path / 'run', '--MAX_STEPS=2', '--LATENT_CARRY=1.0', wait=False)
    out = p.communicate(timeout=120)[0]
    assert p.returncode != 0 and 'LATENT_CARRY=1.0' in out and 'LATENTS=True' in out, out[-2000:]

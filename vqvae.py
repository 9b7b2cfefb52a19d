"""VQ-VAE tokenizer (design v2.1.6): 128x72 RGB frames <-> 32x18 grids of codebook indices.

    from vqvae import load_vqvae
    vq = load_vqvae('checkpoints/vqvae.pt', 'cpu')   # eval mode
    tokens = vq.encode(images)          # (B, 3, 72, 128) float in [0, 1] -> (B, 18, 32) long
    images = vq.decode_code(tokens)     # (H, W) or (B, H, W) long -> (3, 72, 128) / (B, 3, 72, 128)
    emb = vq.embed_codes(tokens)        # (B, D, H, W) codebook vectors
    images = vq.decode_soft(probs)      # (B, K, H, W) probabilities over codes -> images, differentiable

Encoder: conv 3->C1 (k4 s2), ReLU, residual block, conv C1->C2 (k4 s2), ReLU, residual block
(+ a 1x1 projection when C2 != code dim). The decoder mirrors it with transposed convs and ends in a
sigmoid. The quantizer is an EMA codebook (no codebook gradients), initialised by k-means++ on the
first training batch, re-seeding dead codes from the current batch, always computed in fp32.

Also here: `split_of(stem, val_fraction)` / `split_stems(stems, val_fraction)`, the deterministic
train/val split of clips shared by train_vqvae.py and preprocessing.
"""
import dataclasses
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from atomicio import atomic_torch_save


# ----------------------------------------------------------------------------- config

@dataclasses.dataclass
class VQConfig:
    in_channels: int = 3
    hidden1: int = 128          # channels at 1/2 resolution (64x36)
    hidden2: int = 384          # channels at 1/4 resolution (32x18)
    res_hidden1: int = 0        # inner width of the residual block at hidden1 (0 = hidden1)
    res_hidden2: int = 0        # inner width of the residual block at hidden2 (0 = hidden2)
    embedding_dim: int = 384    # code vector size; a 1x1 projection is added when != hidden2
    codebook_size: int = 1024
    decay: float = 0.99         # EMA decay of the codebook statistics
    eps: float = 1e-5           # Laplace smoothing of the EMA cluster sizes
    beta: float = 0.05          # commitment weight (0.25 collapsed to grey in v2.1.x)
    dead_threshold: float = 1.0  # a code whose usage EMA (vectors per batch) falls below this is re-seeded
    usage_decay: float = 0.9    # decay of that usage EMA: ~10-step memory, so collapse is caught early
    kmeans_iters: int = 10      # Lloyd iterations after k-means++ seeding of the codebook
    kmeans_max_points: int = 20000  # subsample of the first batch's vectors used for the k-means init

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in names})


# ----------------------------------------------------------------------------- modules

class ResBlock(nn.Module):
    """Pre-activation residual block: x + conv3x3(relu(conv3x3(relu(x)))). Output is unconstrained,
    so the encoder's last block can feed the quantizer directly."""

    def __init__(self, ch, hidden=0):
        super().__init__()
        hidden = hidden or ch
        self.conv1 = nn.Conv2d(ch, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, ch, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(cfg.in_channels, cfg.hidden1, 4, stride=2, padding=1), nn.ReLU(),
            ResBlock(cfg.hidden1, cfg.res_hidden1),
            nn.Conv2d(cfg.hidden1, cfg.hidden2, 4, stride=2, padding=1), nn.ReLU(),
            ResBlock(cfg.hidden2, cfg.res_hidden2),
        )
        self.proj = nn.Conv2d(cfg.hidden2, cfg.embedding_dim, 1) if cfg.hidden2 != cfg.embedding_dim else nn.Identity()

    def forward(self, x):
        return self.proj(self.net(x))


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.proj = nn.Conv2d(cfg.embedding_dim, cfg.hidden2, 1) if cfg.hidden2 != cfg.embedding_dim else nn.Identity()
        self.net = nn.Sequential(
            ResBlock(cfg.hidden2, cfg.res_hidden2), nn.ReLU(),
            nn.ConvTranspose2d(cfg.hidden2, cfg.hidden1, 4, stride=2, padding=1), nn.ReLU(),
            ResBlock(cfg.hidden1, cfg.res_hidden1), nn.ReLU(),
            nn.ConvTranspose2d(cfg.hidden1, cfg.in_channels, 4, stride=2, padding=1),
        )

    def forward(self, z):
        return torch.sigmoid(self.net(self.proj(z)))


def kmeans_pp(x, k, iters=10, generator=None):
    """k-means++ seeding then `iters` Lloyd steps on rows of x (N, D). Returns (centers (k, D), counts (k,))."""
    n = x.shape[0]
    centers = torch.empty(k, x.shape[1], dtype=x.dtype, device=x.device)
    i = torch.randint(n, (1,), generator=generator, device='cpu').item()
    centers[0] = x[i]
    d2 = (x - x[i]).pow(2).sum(1)
    for j in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct points than codes: pick uniformly, tiny jitter keeps codes apart
            i = torch.randint(n, (1,), generator=generator, device='cpu').item()
            centers[j] = x[i] + 1e-4 * torch.randn(x.shape[1], generator=generator).to(x)
        else:
            i = torch.multinomial((d2 / total).cpu(), 1, generator=generator).item()
            centers[j] = x[i]
        d2 = torch.minimum(d2, (x - centers[j]).pow(2).sum(1))
    counts = torch.zeros(k, dtype=x.dtype, device=x.device)
    for _ in range(max(iters, 1)):
        idx = torch.cdist(x, centers).argmin(1)
        counts = torch.bincount(idx, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centers).index_add_(0, idx, x)
        live = counts > 0
        centers[live] = sums[live] / counts[live, None]
    return centers, counts


class EMAQuantizer(nn.Module):
    """Vector quantizer with an EMA-updated codebook, straight-through gradients and dead-code re-seeding.

    Runs in fp32 with autocast disabled: bf16 distances pick wrong codes and EMA sums lose precision.
    """

    def __init__(self, cfg):
        super().__init__()
        self.codebook_size, self.dim = cfg.codebook_size, cfg.embedding_dim
        self.decay, self.eps, self.beta = cfg.decay, cfg.eps, cfg.beta
        self.dead_threshold, self.usage_decay = cfg.dead_threshold, cfg.usage_decay
        self.kmeans_iters, self.kmeans_max_points = cfg.kmeans_iters, cfg.kmeans_max_points
        embed = torch.randn(cfg.codebook_size, cfg.embedding_dim)
        self.register_buffer('embed', embed)
        self.register_buffer('cluster_size', torch.ones(cfg.codebook_size))
        self.register_buffer('embed_sum', embed.clone())
        self.register_buffer('usage', torch.ones(cfg.codebook_size))  # fast EMA of vectors/batch per code
        self.register_buffer('initted', torch.tensor(False))
        self.register_buffer('reseeded_total', torch.tensor(0, dtype=torch.long))

    @torch.no_grad()
    def init_codebook(self, flat):
        """k-means++ (+ Lloyd) on encoder outputs: codes start where the data is, not at random."""
        if flat.shape[0] > self.kmeans_max_points:
            flat = flat[torch.randperm(flat.shape[0], device=flat.device)[:self.kmeans_max_points]]
        centers, counts = kmeans_pp(flat.float(), self.codebook_size, self.kmeans_iters)
        self.embed.copy_(centers)
        # EMA counts start at 1, not at the k-means counts: the encoder drifts fast early in training and
        # small counts let the codes follow it within a few steps instead of hundreds.
        self.cluster_size.fill_(1.0)
        self.embed_sum.copy_(centers)
        self.usage.fill_(2 * self.dead_threshold)  # the fast usage EMA finds the real counts in ~10 steps
        self.initted.fill_(True)

    def nearest(self, flat):
        """Index of the nearest code for each row of flat (N, D)."""
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed.t() + self.embed.pow(2).sum(1)[None]
        return d.argmin(1)

    @torch.no_grad()
    def _ema_update(self, flat, idx):
        counts = torch.bincount(idx, minlength=self.codebook_size).float()
        sums = torch.zeros_like(self.embed_sum).index_add_(0, idx, flat)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.usage.mul_(self.usage_decay).add_(counts, alpha=1 - self.usage_decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
        self.embed.copy_(self.embed_sum / smoothed[:, None])

    @torch.no_grad()
    def reseed_dead(self, flat):
        """Move codes whose usage EMA fell below the threshold onto random vectors of this batch.
        Their usage restarts at twice the threshold: a few steps' grace to be picked up. Returns the count."""
        dead = self.usage < self.dead_threshold
        n_dead = int(dead.sum())
        if n_dead == 0:
            return 0
        pick = torch.randint(flat.shape[0], (n_dead,), device=flat.device)
        samples = flat[pick]
        self.embed[dead] = samples
        self.cluster_size[dead] = 1.0
        self.embed_sum[dead] = samples
        self.usage[dead] = 2 * self.dead_threshold
        self.reseeded_total += n_dead
        return n_dead

    def lookup(self, idx):
        return F.embedding(idx, self.embed)

    def forward(self, z):
        """z (B, D, H, W) -> (z_q straight-through, vq loss, indices (B, H, W) long, stats dict)."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float()
            B, D, H, W = z.shape
            flat = z.permute(0, 2, 3, 1).reshape(-1, D)
            if self.training and not bool(self.initted):
                self.init_codebook(flat.detach())
            idx = self.nearest(flat.detach())
            zq = self.lookup(idx).view(B, H, W, D).permute(0, 3, 1, 2)
            loss = self.beta * F.mse_loss(z, zq.detach())  # commitment only: the codebook follows by EMA
            stats = {}
            with torch.no_grad():
                counts = torch.bincount(idx, minlength=self.codebook_size).float()
                p = counts / counts.sum()
                stats['perplexity'] = float(torch.exp(-(p * torch.log(p.clamp_min(1e-10))).sum()))
                stats['batch_usage'] = float((counts > 0).float().mean())
            if self.training:
                self._ema_update(flat.detach(), idx)
                stats['reseeded'] = self.reseed_dead(flat.detach())
                stats['live_codes'] = float((self.usage >= self.dead_threshold).float().mean())
            zq = z + (zq - z).detach()  # straight-through: decoder gradients pass to the encoder
        return zq, loss, idx.view(B, H, W), stats


def moved_images(x, max_px, zoom_max, gen=None):
    """Each image of x (B, 3, H, W) shifted by up to max_px pixels per axis and zoomed by up to
    zoom_max about its centre, uniformly at random (bilinear, edges repeated): one batched grid_sample.
    The moved copies for VQVAE.forward's phase-stability term."""
    B, _, H, W = x.shape
    r = torch.rand(B, 3, generator=gen) * 2 - 1
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / (1 + zoom_max * r[:, 0])
    theta[:, 0, 2] = -r[:, 1] * max_px * 2 / W   # grid coordinates span 2 over the width: content moves +r px
    theta[:, 1, 2] = -r[:, 2] * max_px * 2 / H
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)


def shift_distance(z, z_moved):
    """Phase stability: mean squared distance between the latents (B, D, h, w) of frames and of the same
    frames moved by less than a cell, in units of the latents' variance (so rescaling the latents cannot
    shrink it). Both sides get gradient (matching the moved latents to the unmoved ones' codes instead
    kept more codes moving for the same reconstruction cost in a toy run). The outer ring of cells, where
    the move brings in repeated edge pixels, is left out."""
    z, z_moved = z.float()[:, :, 1:-1, 1:-1], z_moved.float()[:, :, 1:-1, 1:-1]
    return F.mse_loss(z_moved, z) / z.detach().var().clamp_min(1e-8)


class VQVAE(nn.Module):
    def __init__(self, cfg=None):
        super().__init__()
        self.cfg = cfg if isinstance(cfg, VQConfig) else VQConfig.from_dict(cfg)
        self.encoder = Encoder(self.cfg)
        self.quantizer = EMAQuantizer(self.cfg)
        self.decoder = Decoder(self.cfg)

    @property
    def codebook_size(self):
        return self.cfg.codebook_size

    @property
    def embedding_dim(self):
        return self.cfg.embedding_dim

    def forward(self, x, x_moved=None):
        """x (B, 3, H, W) in [0, 1] -> (reconstruction, vq loss, indices, stats). With x_moved (the same
        frames moved by less than a cell, moved_images), stats['shift_consistency'] is the phase-stability
        term (a tensor with gradient): both batches go through the encoder in one call."""
        if x_moved is None:
            z = self.encoder(x)
        else:
            z, z_moved = self.encoder(torch.cat([x, x_moved])).chunk(2)
        zq, vq_loss, idx, stats = self.quantizer(z)
        if x_moved is not None:
            stats['shift_consistency'] = shift_distance(z, z_moved)
        return self.decoder(zq), vq_loss, idx, stats

    @torch.no_grad()
    def codes_changed_by_one_pixel(self, images, tokens=None):
        """Phase stability, per image: the share of interior cells (outer ring left out) whose code changes
        when the picture (B, 3, H, W) moves one pixel right, its left edge repeated. `tokens`: the images'
        codes, when the caller has them already."""
        tokens = self.encode(images) if tokens is None else tokens
        moved = F.pad(images[..., :-1], (1, 0, 0, 0), mode='replicate')
        return (self.encode(moved) != tokens)[:, 1:-1, 1:-1].float().mean((1, 2))

    @torch.no_grad()
    def encode(self, images, return_latents=False):
        """(B, 3, 72, 128) float in [0, 1] -> (B, 18, 32) long token grid. Never updates the codebook.
        return_latents: also the continuous pre-quantization latents (B, D, 18, 32) fp32."""
        z = self.encoder(images)
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float()
            B, D, H, W = z.shape
            idx = self.quantizer.nearest(z.permute(0, 2, 3, 1).reshape(-1, D)).view(B, H, W)
        return (idx, z) if return_latents else idx

    def embed_codes(self, tokens):
        """(B, H, W) or (H, W) long -> (B, D, H, W) codebook vectors (fp32)."""
        if tokens.dim() == 2:
            tokens = tokens[None]
        return self.quantizer.lookup(tokens.long()).permute(0, 3, 1, 2).contiguous()

    def decode_code(self, tokens):
        """(H, W) long -> (3, H*4, W*4); (B, H, W) long -> (B, 3, H*4, W*4); values in [0, 1]."""
        single = tokens.dim() == 2
        out = self.decoder(self.embed_codes(tokens))
        return out[0] if single else out

    def decode_soft(self, probs):
        """(B, K, H, W) probabilities over codes -> (B, 3, H*4, W*4). Embeds as the probability-weighted
        sum of code vectors, so gradients reach `probs` (the world model's LPIPS path)."""
        return self.decoder(self.expected_embedding(probs))

    def expected_embedding(self, probs):
        """(B, K, H, W) probabilities over codes -> (B, D, H, W) probability-weighted code vectors."""
        return torch.einsum('bkhw,kd->bdhw', probs, self.quantizer.embed.to(probs.dtype))


# ----------------------------------------------------------------------------- checkpoints

def save_vqvae(path, model, optimizer=None, step=0, extra=None):
    """Write a component-wise checkpoint atomically (temp file in the same folder + os.replace).
    `extra` (a dict) is merged at the top level, e.g. {'train_config': ..., 'metrics': ...}."""
    ckpt = {
        'encoder': model.encoder.state_dict(),
        'quantizer': model.quantizer.state_dict(),
        'decoder': model.decoder.state_dict(),
        'config': dataclasses.asdict(model.cfg),
        'optimizer': optimizer.state_dict() if optimizer is not None else None,
        'step': int(step),
    }
    for k, v in (extra or {}).items():
        if k in ckpt:
            raise KeyError(f"save_vqvae: extra key {k!r} would overwrite a checkpoint field")
        ckpt[k] = v
    atomic_torch_save(ckpt, path)
    return path


def load_checkpoint(path, device='cpu'):
    return torch.load(path, map_location=device, weights_only=True)


def load_vqvae(path, device='cpu'):
    """Model from a save_vqvae checkpoint, on `device`, in eval mode."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"VQ-VAE checkpoint not found: {path}")
    ckpt = load_checkpoint(path, device)
    model = VQVAE(VQConfig.from_dict(ckpt.get('config')))
    model.encoder.load_state_dict(ckpt['encoder'])
    model.quantizer.load_state_dict(ckpt['quantizer'])
    model.decoder.load_state_dict(ckpt['decoder'])
    return model.to(device).eval()


def count_params(module):
    return sum(p.numel() for p in module.parameters())


if __name__ == '__main__':
    m = VQVAE()
    print(f"encoder {count_params(m.encoder)/1e6:.2f}M, decoder {count_params(m.decoder)/1e6:.2f}M params")
    x = torch.rand(2, 3, 72, 128)
    print('tokens', tuple(m.encode(x).shape), 'recon', tuple(m(x)[0].shape))

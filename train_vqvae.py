"""Train the VQ-VAE tokenizer on frames sampled straight from GF-layout videos.

    python train_vqvae.py config/vqvae_demo.py --MAX_STEPS=100
    python train_vqvae.py config/vqvae_v216.py --DATA_DIR=/data/gf/data_2003

DATA_DIR holds <root>/video/<stem>.mp4 (metadata is not needed here). Clips go to train or val by
gfdata.split_stems (a sha1 of the stem), the same split preprocessing uses. Every video is decoded
once into a uint8 frame bank in RAM (every FRAME_STRIDE-th frame, resized to 128x72 with
cv2.INTER_AREA); batches are drawn from the bank. Loss: MSE + lambda * LPIPS(alex) + VQ commitment,
lambda ramped 0 -> LPIPS_WEIGHT, plus SHIFT_CONSISTENCY * the phase-stability term (vqvae.shift_distance:
each frame's latents against those of a copy moved by under a cell). Validation also reports how many
codes a one-pixel move of the picture changes (codes_changed_1px). Writes to OUT_DIR: ckpt_*.pt
(+ vqvae.pt at the end), metrics.jsonl, recon_*.png (input row over reconstruction row), eval.json.
"""
import glob
import json
import math
import os
import re
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import configurator
from perceptual import build_lpips, lpips_distance, psnr, ssim
from rollout import amp_dtype, autocast
from gfdata import split_stems
from vqvae import VQVAE, VQConfig, count_params, load_checkpoint, moved_images, save_vqvae

# ----------------------------------------------------------------------------- config
# data
DATA_DIR = 'data/blockworld'    # GF layout: <DATA_DIR>/video/<stem>.mp4
VAL_FRACTION = 0.1              # share of clips (by stem hash) held out for validation
FRAME_STRIDE = 1                # keep every Nth decoded frame (GF: consecutive frames are near-duplicates)
MAX_FRAMES_PER_CLIP = 0         # cap on kept frames per clip, evenly spaced (0 = no cap)
MAX_CLIPS = 0                   # use at most this many clips (0 = all); keeps big datasets in RAM
FRAME_W = 128                   # frames are resized to FRAME_W x FRAME_H (the tokenizer's input size)
FRAME_H = 72
VAL_MAX_FRAMES = 256            # val frames scored at each eval (evenly spaced over the val bank)
DECODE_WORKERS = 1              # videos decoded in parallel threads while building the bank (PyAV releases the GIL)
FLIP_AUG = True                 # random horizontal flips: free extra data for a tokenizer
# model (design v2.1.6 defaults: ~3.7M params each for encoder and decoder)
HIDDEN1 = 128                   # channels at 64x36
HIDDEN2 = 384                   # channels at 32x18
RES_HIDDEN1 = 0                 # residual block inner widths (0 = same as the block)
RES_HIDDEN2 = 0
EMBEDDING_DIM = 384             # code vector size
CODEBOOK_SIZE = 1024
EMA_DECAY = 0.99
COMMITMENT_BETA = 0.05          # 0.25 collapsed to grey in v2.1.x
DEAD_THRESHOLD = 1.0            # usage EMA (vectors per batch) below which a code is re-seeded; keep it well
                                # under the fair share BATCH_SIZE*576/CODEBOOK_SIZE (18 in the demo)
KMEANS_ITERS = 10               # Lloyd steps after the k-means++ codebook init on the first batch
# optimisation
BATCH_SIZE = 32
LR = 3e-4
MIN_LR = 3e-5                   # cosine decay floor
WARMUP_STEPS = 200
WEIGHT_DECAY = 0.0              # conv weights of a small autoencoder gain nothing from decay
GRAD_CLIP = 1.0
MAX_STEPS = 50000
TIME_LIMIT_MIN = 0.0            # stop training after this many minutes (0 = off); LR schedule follows time too
LPIPS_WEIGHT = 0.15             # final lambda; more burned patterns into flat sky in v2.1.x
LPIPS_RAMP_STEPS = 2000         # lambda ramps linearly 0 -> LPIPS_WEIGHT (MSE shapes colours first)
LPIPS_BATCH = 0                 # LPIPS on the first N images of the batch only (0 = all): saves CPU time
# phase stability: a frame moved by less than a cell should keep its codes (experiments item 24: with
# this off, a 1-px shift re-codes 44% of the cells, so a slow walk looks like noise in token space)
SHIFT_CONSISTENCY = 0.0         # weight of the term pulling the encoder's latents of a randomly moved copy
                                # of each frame onto the unmoved frame's latents (vqvae.shift_distance; 0 = off)
SHIFT_MAX_PX = 1.5              # largest random shift of that copy, pixels per axis (a cell is 4 px)
ZOOM_MAX = 0.02                 # largest random zoom about the centre (one frame of W is about 2%)
# logging / checkpoints
OUT_DIR = 'checkpoints/vqvae'
RESUME = 'auto'                 # 'auto': newest ckpt_*.pt in OUT_DIR if any; '' : fresh; or a checkpoint path
LOG_INTERVAL = 50
EVAL_INTERVAL = 1000
SAMPLE_INTERVAL = 1000          # reconstruction PNG of val frames
SAMPLE_COUNT = 8                # frames per PNG row
CKPT_INTERVAL = 1000
KEEP_CHECKPOINTS = 2            # older ckpt_*.pt files are deleted
WANDB_LOG = True                # mode: $WANDB_MODE if set, else online when logged in, else offline
WANDB_PROJECT = 'ochre'
WANDB_RUN_NAME = ''
# system
DEVICE = 'auto'                 # 'auto' = cuda when available, else cpu
DTYPE = 'bf16'                  # autocast: bf16 | fp32 (CPU: bf16 only where it has native bf16, see rollout.autocast)
NUM_THREADS = 2                 # torch CPU threads (the dev machines have 2 cores; 0 = torch default)
SEED = 1337
# -----------------------------------------------------------------------------
config = configurator.apply_config(globals(), sys.argv[1:])


def log(msg):
    print(msg, flush=True)


# ----------------------------------------------------------------------------- data

def list_stems(data_dir):
    vdir = os.path.join(data_dir, 'video')
    if not os.path.isdir(vdir):
        raise SystemExit(f"DATA_DIR error: {os.path.abspath(vdir)} does not exist. DATA_DIR must be a "
                         f"GF-layout dataset (<root>/video/<stem>.mp4), e.g. made with "
                         f"`python blockworld.py --out data/blockworld`; pass --DATA_DIR=...")
    stems = sorted(os.path.splitext(f)[0] for f in os.listdir(vdir) if f.endswith('.mp4'))
    if not stems:
        raise SystemExit(f"DATA_DIR error: no .mp4 files in {os.path.abspath(vdir)}")
    return stems


def decode_clip(path, stride, max_frames, size):
    """Decode one video once; keep every `stride`-th frame, resized to size=(W, H) with INTER_AREA."""
    import av
    import cv2
    W, H = size
    out = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = 'AUTO'
        n = stream.frames or 0
        if max_frames and n > 0:
            stride = max(stride, math.ceil(n / max_frames))  # don't decode-and-keep far more than we need
        for i, frame in enumerate(container.decode(stream)):
            if i % stride:
                continue
            arr = frame.to_ndarray(format='rgb24')
            if arr.shape[0] != H or arr.shape[1] != W:
                arr = cv2.resize(arr, (W, H), interpolation=cv2.INTER_AREA)  # anti-aliased downscale
            out.append(arr)
    if max_frames and len(out) > max_frames:
        keep = np.linspace(0, len(out) - 1, max_frames).round().astype(int)
        out = [out[i] for i in keep]
    return out


def build_bank(data_dir, stems, desc):
    """All kept frames of `stems` as one (N, H, W, 3) uint8 array, in stem order."""
    from concurrent.futures import ThreadPoolExecutor
    from tqdm import tqdm
    decode = lambda stem: decode_clip(os.path.join(data_dir, 'video', stem + '.mp4'), FRAME_STRIDE,
                                      MAX_FRAMES_PER_CLIP, (FRAME_W, FRAME_H))
    frames = []
    bar = tqdm(total=len(stems), desc=desc, unit='clip', dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 30)
    with ThreadPoolExecutor(max(1, DECODE_WORKERS)) as pool:
        for clip in pool.map(decode, stems):
            frames += clip
            bar.update(1)
            bar.set_postfix(frames=len(frames), refresh=False)
    bar.close()
    if not frames:
        return np.zeros((0, FRAME_H, FRAME_W, 3), np.uint8)
    return np.stack(frames)


def to_tensor(frames_uint8, device):
    return torch.from_numpy(frames_uint8).to(device).permute(0, 3, 1, 2).float().div_(255)


# ----------------------------------------------------------------------------- helpers

def lr_at(step, progress):
    if step < WARMUP_STEPS:
        return LR * (step + 1) / WARMUP_STEPS
    return MIN_LR + 0.5 * (LR - MIN_LR) * (1 + math.cos(math.pi * min(progress, 1.0)))


def lpips_lambda(step):
    return LPIPS_WEIGHT * min(1.0, step / LPIPS_RAMP_STEPS) if LPIPS_RAMP_STEPS > 0 else LPIPS_WEIGHT


def checkpoints_in(out_dir):
    found = []
    for p in glob.glob(os.path.join(out_dir, 'ckpt_*.pt')):
        m = re.fullmatch(r'ckpt_(\d+)\.pt', os.path.basename(p))
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


@torch.no_grad()
def evaluate(model, lp, val_frames, device, batch=32):
    """Tokenize + decode the val frames the way consumers will (encode -> decode_code) and score them."""
    model.eval()
    ps, ss, ls, moved1 = [], [], [], []
    hist = torch.zeros(model.codebook_size, dtype=torch.long)
    for i in range(0, len(val_frames), batch):
        x = to_tensor(val_frames[i:i + batch], device)
        tokens = model.encode(x)
        moved1.append(model.codes_changed_by_one_pixel(x, tokens).cpu())
        recon = model.decode_code(tokens).float()
        ps.append(psnr(recon, x).cpu())
        ss.append(ssim(recon, x).cpu())
        ls.append(lpips_distance(lp, recon, x).float().cpu())
        hist += torch.bincount(tokens.flatten().cpu(), minlength=model.codebook_size)
    model.train()
    p = hist.float() / hist.sum()
    return {
        'psnr': float(torch.cat(ps).mean()),
        'ssim': float(torch.cat(ss).mean()),
        'lpips': float(torch.cat(ls).mean()),
        'codes_used': int((hist > 0).sum()),
        'code_usage': float((hist > 0).float().mean()),
        'perplexity': float(torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())),
        'codes_changed_1px': float(torch.cat(moved1).mean()),
        'frames': int(len(val_frames)),
    }


@torch.no_grad()
def save_sample_png(model, frames, path, device):
    """Top row: inputs; bottom row: reconstructions (encode -> decode_code); 2x nearest upscale."""
    import cv2
    model.eval()
    x = to_tensor(frames, device)
    recon = model.decode_code(model.encode(x)).float().clamp(0, 1)
    model.train()
    pad = 2
    rows = []
    for t in (x, recon):
        imgs = (t.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
        cells = []
        for im in imgs:
            cells += [im, np.full((im.shape[0], pad, 3), 255, np.uint8)]
        rows += [np.concatenate(cells[:-1], 1), np.full((pad, sum(c.shape[1] for c in cells[:-1]), 3), 255, np.uint8)]
    grid = np.concatenate(rows[:-1], 0)
    grid = cv2.resize(grid, (grid.shape[1] * 2, grid.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    tmp = path + '.tmp.png'
    cv2.imwrite(tmp, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    os.replace(tmp, path)


def init_wandb():
    if not WANDB_LOG:
        return None
    mode = os.environ.get('WANDB_MODE')
    if mode is None:
        netrc = os.path.join(os.path.expanduser('~'), '.netrc')
        logged_in = bool(os.environ.get('WANDB_API_KEY')) or (
            os.path.isfile(netrc) and 'api.wandb.ai' in open(netrc).read())
        mode = 'online' if logged_in else 'offline'
    if mode == 'disabled':
        return None
    import wandb
    return wandb.init(project=WANDB_PROJECT, name=WANDB_RUN_NAME or None, config=config, dir=OUT_DIR,
                      mode=mode, resume='allow')


# ----------------------------------------------------------------------------- main

def main():
    t_start = time.time()
    log('config:\n' + configurator.format_config(config))
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    if NUM_THREADS > 0:
        torch.set_num_threads(NUM_THREADS)
    device = ('cuda' if torch.cuda.is_available() else 'cpu') if DEVICE == 'auto' else DEVICE
    amp = autocast(torch.device(device), DTYPE)
    use_bf16 = amp_dtype(torch.device(device), DTYPE) is not None
    os.makedirs(OUT_DIR, exist_ok=True)

    # data: decode each video once into RAM
    stems = list_stems(DATA_DIR)
    if MAX_CLIPS:
        stems = stems[:MAX_CLIPS]
    train_stems, val_stems = split_stems(stems, VAL_FRACTION)
    if not train_stems:
        raise SystemExit(f"DATA_DIR error: no training clips in {DATA_DIR} (need at least 2 clips for a train/val split)")
    t0 = time.time()
    train_bank = build_bank(DATA_DIR, train_stems, 'decode train')
    val_bank = build_bank(DATA_DIR, val_stems, 'decode val') if val_stems else train_bank[:0]
    if len(val_bank) == 0:
        log('warning: no val clips; scoring on training frames instead')
        val_bank = train_bank
    keep = np.linspace(0, len(val_bank) - 1, min(VAL_MAX_FRAMES, len(val_bank))).round().astype(int)
    val_frames = val_bank[keep]
    sample_frames = val_frames[np.linspace(0, len(val_frames) - 1, min(SAMPLE_COUNT, len(val_frames))).round().astype(int)]
    load_s = time.time() - t0
    log(f"data: {len(train_stems)} train clips / {len(train_bank)} frames, {len(val_stems)} val clips / "
        f"{len(val_bank)} frames ({(train_bank.nbytes + val_bank.nbytes) / 2**20:.0f} MiB in RAM), decoded in {load_s:.1f}s")

    # model, optimizer, resume
    mcfg = VQConfig(hidden1=HIDDEN1, hidden2=HIDDEN2, res_hidden1=RES_HIDDEN1, res_hidden2=RES_HIDDEN2,
                    embedding_dim=EMBEDDING_DIM, codebook_size=CODEBOOK_SIZE, decay=EMA_DECAY,
                    beta=COMMITMENT_BETA, dead_threshold=DEAD_THRESHOLD, kmeans_iters=KMEANS_ITERS)
    resume_path = None
    if RESUME == 'auto':
        found = checkpoints_in(OUT_DIR)
        resume_path = found[-1] if found else None
    elif RESUME:
        resume_path = RESUME
    ckpt = None
    if resume_path:
        ckpt = load_checkpoint(resume_path, 'cpu')
        saved = VQConfig.from_dict(ckpt['config'])
        if saved != mcfg:
            log(f"warning: resuming with the checkpoint's model config {saved}, not the script's {mcfg}")
        mcfg = saved
    model = VQVAE(mcfg).to(device)
    optimizer = torch.optim.AdamW(list(model.encoder.parameters()) + list(model.decoder.parameters()),
                                  lr=LR, betas=(0.9, 0.99), weight_decay=WEIGHT_DECAY)
    step, elapsed_before = 0, 0.0
    if ckpt is not None:
        model.encoder.load_state_dict(ckpt['encoder'])
        model.quantizer.load_state_dict(ckpt['quantizer'])
        model.decoder.load_state_dict(ckpt['decoder'])
        if ckpt.get('optimizer') is not None:
            optimizer.load_state_dict(ckpt['optimizer'])
        step = int(ckpt['step'])
        elapsed_before = float(ckpt.get('train_seconds', 0.0))
        log(f"resumed from {resume_path} at step {step}")
        del ckpt
    model.train()
    log(f"model: encoder {count_params(model.encoder)/1e6:.2f}M, decoder {count_params(model.decoder)/1e6:.2f}M params, "
        f"{mcfg.codebook_size} codes x {mcfg.embedding_dim}; device {device}{' bf16' if use_bf16 else ''}")
    lp = build_lpips(device)
    log(f"lpips backbone: {lp.backbone_source}")
    run = init_wandb()
    metrics_path = os.path.join(OUT_DIR, 'metrics.jsonl')

    def write_metrics(rec):
        with open(metrics_path, 'a') as f:
            f.write(json.dumps(rec) + '\n')
        if run is not None:
            run.log({f"{rec['split']}/{k}": v for k, v in rec.items() if k not in ('split', 'step')}, step=rec['step'])

    def checkpoint(final=False):
        train_s = elapsed_before + (time.time() - t_loop)
        extra = {'train_config': config, 'train_seconds': train_s, 'val_stems': val_stems}
        path = save_vqvae(os.path.join(OUT_DIR, f'ckpt_{step:07d}.pt'), model, optimizer, step, extra)
        for old in checkpoints_in(OUT_DIR)[:-KEEP_CHECKPOINTS]:
            os.remove(old)
        if final:
            save_vqvae(os.path.join(OUT_DIR, 'vqvae.pt'), model, None, step, extra)
        return path

    from tqdm import tqdm
    gen = torch.Generator().manual_seed(SEED + step)
    time_limit = TIME_LIMIT_MIN * 60
    t_loop = time.time()
    bar = tqdm(total=MAX_STEPS, initial=step, desc='train', unit='step', dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 30)
    last_val, last_val_step = None, -1
    acc, acc_n, t_log = {}, 0, time.time()
    while step < MAX_STEPS:
        train_s = elapsed_before + (time.time() - t_loop)
        if time_limit and train_s >= time_limit:
            log(f"time limit of {TIME_LIMIT_MIN} min reached at step {step}")
            break
        progress = max(step / MAX_STEPS, train_s / time_limit if time_limit else 0.0)
        lr = lr_at(step, progress)
        for g in optimizer.param_groups:
            g['lr'] = lr
        idx = torch.randint(len(train_bank), (BATCH_SIZE,), generator=gen).numpy()
        x = to_tensor(train_bank[idx], device)
        if FLIP_AUG:
            flip = torch.rand(BATCH_SIZE, generator=gen) < 0.5
            x[flip.to(device)] = x[flip.to(device)].flip(-1)
        lam = lpips_lambda(step)
        with amp:
            x_moved = moved_images(x, SHIFT_MAX_PX, ZOOM_MAX, gen) if SHIFT_CONSISTENCY > 0 else None
            recon, vq_loss, _, stats = model(x, x_moved)
            recon = recon.float()
            mse = F.mse_loss(recon, x)
            loss = mse + vq_loss
            lp_loss = None
            shift_loss = stats.pop('shift_consistency', None)
            if shift_loss is not None:
                loss = loss + SHIFT_CONSISTENCY * shift_loss
            if lam > 0:
                nb = LPIPS_BATCH or BATCH_SIZE
                lp_loss = lpips_distance(lp, recon[:nb], x[:nb]).float().mean()
                loss = loss + lam * lp_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        step += 1

        rec = {'loss': loss.item(), 'mse': mse.item(), 'vq_loss': vq_loss.item(), 'grad_norm': float(gnorm),
               'perplexity': stats['perplexity'], 'live_codes': stats['live_codes'], 'reseeded': stats['reseeded']}
        if lp_loss is not None:
            rec['lpips'] = lp_loss.item()
        if shift_loss is not None:
            rec['shift_consistency'] = shift_loss.item()
        for k, v in rec.items():
            acc[k] = acc.get(k, 0.0) + v
        acc_n += 1
        bar.update(1)
        if step % LOG_INTERVAL == 0 or step == MAX_STEPS:
            avg = {k: v / acc_n for k, v in acc.items()}
            avg['reseeded'] = acc.get('reseeded', 0)  # a total over the interval, not a mean
            avg['psnr'] = float(10 * math.log10(1 / max(avg['mse'], 1e-10)))
            now = time.time()
            write_metrics({'split': 'train', 'step': step, 'lr': lr, 'lpips_lambda': lam,
                           'steps_per_s': acc_n / max(now - t_log, 1e-9),
                           'train_seconds': elapsed_before + (now - t_loop), **avg})
            bar.set_postfix(loss=f"{avg['loss']:.4f}", psnr=f"{avg['psnr']:.1f}", ppl=f"{avg['perplexity']:.0f}",
                            refresh=False)
            acc, acc_n, t_log = {}, 0, now
        if step % EVAL_INTERVAL == 0:
            last_val = evaluate(model, lp, val_frames, device)
            last_val_step = step
            write_metrics({'split': 'val', 'step': step, **last_val})
            tqdm.write(f"step {step}: val psnr {last_val['psnr']:.2f} ssim {last_val['ssim']:.3f} lpips "
                       f"{last_val['lpips']:.3f} codes {last_val['code_usage']:.0%} ppl {last_val['perplexity']:.0f} "
                       f"1-px move re-codes {last_val['codes_changed_1px']:.0%}")
        if step % SAMPLE_INTERVAL == 0:
            save_sample_png(model, sample_frames, os.path.join(OUT_DIR, f'recon_{step:07d}.png'), device)
        if step % CKPT_INTERVAL == 0:
            checkpoint()
    bar.close()

    # final: checkpoint, metrics, picture, summary
    if last_val_step == step:
        final_val = last_val
    else:
        final_val = evaluate(model, lp, val_frames, device)
        write_metrics({'split': 'val', 'step': step, **final_val})
    save_sample_png(model, sample_frames, os.path.join(OUT_DIR, 'recon_final.png'), device)
    ckpt_path = checkpoint(final=True)
    train_s = elapsed_before + (time.time() - t_loop)
    summary = {'step': step, 'val': final_val, 'train_seconds': round(train_s, 1),
               'wall_seconds': round(time.time() - t_start, 1), 'data_seconds': round(load_s, 1),
               'device': device, 'train_frames': int(len(train_bank)), 'val_frames_total': int(len(val_bank)),
               'train_clips': len(train_stems), 'val_clips': len(val_stems),
               'checkpoint': os.path.join(OUT_DIR, 'vqvae.pt'), 'last_ckpt': ckpt_path,
               'recon_png': os.path.join(OUT_DIR, 'recon_final.png'), 'config': config}
    tmp = os.path.join(OUT_DIR, 'eval.json.tmp')
    with open(tmp, 'w') as f:
        json.dump(summary, f, indent=2)
    os.replace(tmp, os.path.join(OUT_DIR, 'eval.json'))
    if run is not None:
        run.summary.update({f'final/{k}': v for k, v in final_val.items()})
        run.finish()
    log(f"done: step {step}, val psnr {final_val['psnr']:.2f} dB, ssim {final_val['ssim']:.3f}, lpips "
        f"{final_val['lpips']:.3f}, codes in use {final_val['codes_used']}/{model.codebook_size} "
        f"({final_val['code_usage']:.0%}), perplexity {final_val['perplexity']:.1f}, a 1-px move re-codes "
        f"{final_val['codes_changed_1px']:.0%} of the cells; train {train_s/60:.1f} min, "
        f"wall {(time.time()-t_start)/60:.1f} min -> {os.path.join(OUT_DIR, 'vqvae.pt')}")


if __name__ == '__main__':
    main()

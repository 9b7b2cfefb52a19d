"""bench.py: the figures users compare, measured on this machine and appended to bench/RESULTS.md.

    python bench.py                 # everything
    python bench.py --only train,live --quick

Every figure is the median of several timed runs after warm-up, with CUDA synchronised.
Models are randomly initialised at the sizes of the presets: speed does not depend on weights.
"""
import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

# ---- defaults ----
RESULTS = 'bench/RESULTS.md'
REPEATS = 5                  # timed runs per figure (the median is reported)
WARMUP = 2                   # untimed runs first
TRAIN_PRESETS = ('config/demo_cpu.py', 'config/gf_v62.py',        # '+' applies presets in turn
                 'config/demo_cpu.py+config/blockworld_latent_gpu.py',   # the latent model (LATENTS)
                 'config/demo_cpu.py+config/blockworld_latent_flow_60min.py')   # + the learned flow
CPU_V62_BATCH = 2            # the v6.2 batch (20) takes minutes per step on a CPU
LIVE_STEPS = 40              # steps per timed live run
ROLLOUT_BATCH_GPU, ROLLOUT_BATCH_CPU = 32, 8


def machine():
    cpu = platform.processor() or ''
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next((l.split(':', 1)[1].strip() for l in f if l.startswith('model name')), cpu)
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'
    return dict(cpu=f"{cpu} ({os.cpu_count()} logical cores)", gpu=gpu, torch=torch.__version__,
                threads=torch.get_num_threads(), python=platform.python_version())


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn, device, repeats=REPEATS, warmup=WARMUP):
    """Median and all wall times (s) of fn() over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def script_config(script, preset):
    """A script's constants with a preset (or 'a.py+b.py': presets in turn) applied, as the script would
    resolve them."""
    from configurator import apply_config, script_defaults
    g = script_defaults(script)
    apply_config(g, preset.split('+'))
    return g


def vq_for(cfg_name):
    """A VQ-VAE at the demo (config/vqvae_demo.py) or the v2.1.6 size, randomly initialised."""
    from vqvae import VQConfig, VQVAE
    if cfg_name != 'demo':
        return VQVAE(VQConfig())
    g = script_config('train_vqvae.py', 'config/vqvae_demo.py')
    return VQVAE(VQConfig(hidden1=g['HIDDEN1'], hidden2=g['HIDDEN2'], res_hidden1=g['RES_HIDDEN1'],
                          res_hidden2=g['RES_HIDDEN2'], embedding_dim=g['EMBEDDING_DIM'],
                          codebook_size=g['CODEBOOK_SIZE']))


def build(preset, device):
    """(train config, world model, VQ-VAE) for a train preset."""
    from model_convGru import PRESETS, WorldModelConvFiLM
    from train import model_overrides
    cfg = script_config('train.py', preset)
    vq = vq_for('demo' if cfg['MODEL_PRESET'] == 'demo' else 'v216').to(device).eval()
    for p in vq.parameters():
        p.requires_grad_(False)
    over = dict(cfg['MODEL_OVERRIDES'], codebook_size=vq.codebook_size, **model_overrides(cfg, vq))
    model = WorldModelConvFiLM(PRESETS[cfg['MODEL_PRESET']](**over)).to(device)
    if cfg['LATENTS']:
        D = vq.embedding_dim
        model.set_latent_space(vq.quantizer.embed, torch.zeros(D, device=device), torch.ones(D, device=device))
    return cfg, model, vq


def train_step(preset, device, dtype='bf16', channels_last=False):
    """A preset's whole training step (all losses on, schedules at their end values, optimizer step) on
    random tokens. Returns (step function, resolved config, model, batch, AR length, autocast dtype or None)."""
    import train
    from perceptual import build_lpips
    from rollout import amp_dtype, autocast
    cfg, model, vq = build(preset, device)
    if channels_last:
        model.to_channels_last()
        vq.to(memory_format=torch.channels_last)
    batch = cfg['BATCH_SIZE'] if device.type == 'cuda' else min(cfg['BATCH_SIZE'], CPU_V62_BATCH
                                                                 if cfg['MODEL_PRESET'] != 'demo' else cfg['BATCH_SIZE'])
    ar = cfg['AR_MIN_LEN'] if cfg['AR_CURRICULUM'] else 0
    T = cfg['SEQ_LEN'] + ar
    mc = model.config
    tokens = torch.randint(0, mc.codebook_size, (batch, T + 1, mc.height, mc.width), device=device)
    acts = torch.zeros(batch, T, mc.action_dim, device=device)
    acts[:, :, 2] = acts[:, :, 6] = 1
    acts[:, :, 8] = 1
    latents = (torch.randn(batch, T + 1, mc.latent_dim, mc.height, mc.width, device=device)
               if mc.latent_dim else None)
    lp = build_lpips(device) if cfg['LPIPS_WEIGHT'] > 0 else None
    if lp is not None and channels_last:
        lp.to(memory_format=torch.channels_last)
    loss_fn = train.WindowLoss(model, vq, lp)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == 'cuda')
    amp = autocast(device, dtype)
    knobs = train.make_knobs(cfg, step=10 ** 9)  # schedules at their end values

    def step():
        with amp:
            loss, _, _ = loss_fn(tokens, acts, ar, knobs, latents)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, cfg, model, batch, ar, amp_dtype(device, dtype)


def bench_train(preset, device, quick, dtype='bf16', channels_last=False):
    """One training step of a preset, timed."""
    import train
    step, cfg, model, batch, ar, dt = train_step(preset, device, dtype, channels_last)
    med, times = timed(step, device, repeats=2 if quick else 3 if device.type == 'cpu' else REPEATS,
                       warmup=1 if device.type == 'cpu' else WARMUP)
    T = cfg['SEQ_LEN'] + ar
    flops = 3 * model.flops_per_step(batch) * T
    peak = next((v for k, v in train.PEAKS.items() if k in torch.cuda.get_device_name(device)), 0) \
        if device.type == 'cuda' else 0
    out = {'steps/s': 1 / med, 'samples/s': batch / med, 'TFLOP/s': flops / med / 1e12,
           'autocast': str(dt).replace('torch.', '') if dt else 'off',
           'batch': batch, 'window (TF+AR)': f"{cfg['SEQ_LEN']}+{ar}", 'params (M)': sum(p.numel() for p in model.parameters()) / 1e6}
    if peak:
        out['MFU'] = flops / med / peak
    return out


def bench_vq_train(device, quick, dtype):
    """One demo VQ-VAE training step (config/vqvae_demo.py: batch, LPIPS on its sub-batch), timed."""
    from perceptual import build_lpips, lpips_distance
    from rollout import amp_dtype, autocast
    g = script_config('train_vqvae.py', 'config/vqvae_demo.py')
    vq = vq_for('demo').to(device).train()
    lp = build_lpips(device)
    x = torch.rand(g['BATCH_SIZE'], 3, 72, 128, device=device)
    opt = torch.optim.AdamW(vq.parameters(), lr=1e-4)
    amp = autocast(device, dtype)

    def step():
        with amp:
            recon, vq_loss, _, _ = vq(x)
            recon = recon.float()
            nb = g['LPIPS_BATCH'] or g['BATCH_SIZE']
            loss = F.mse_loss(recon, x) + vq_loss + 0.1 * lpips_distance(lp, recon[:nb], x[:nb]).float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    med, _ = timed(step, device, repeats=3 if quick else REPEATS)
    return 1 / med, amp_dtype(device, dtype) is not None


def profile_train(preset, device, dtype, rows=8):
    """Where a training step's time goes: the top ops by self time over 2 profiled steps (after 1 warm-up)."""
    from torch.profiler import ProfilerActivity, profile
    step = train_step(preset, device, dtype)[0]
    step()
    acts_ = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with profile(activities=acts_) as prof:
        for _ in range(2):
            step()
        sync(device)
    key = 'self_device_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    ev = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)
    total = sum(getattr(e, key) for e in ev) or 1
    return {f"{dtype}: {e.key}": f"{100 * getattr(e, key) / total:.1f}% of self time" for e in ev[:rows]}


SPEEDUP_VARIANTS = (('fp32', False), ('bf16', False), ('bf16', True))   # (DTYPE, channels_last)


def bench_speedups(device, quick):
    """Before/after in one run: the demo training step with each speed switch, as a ratio to fp32."""
    out, base = {}, None
    for dtype, cl in SPEEDUP_VARIANTS:
        r = bench_train('config/demo_cpu.py', device, quick, dtype, cl)
        name = f"DTYPE={dtype}{' + channels_last' if cl else ''}"
        base = base or r['steps/s']
        out[f'{name}: steps/s'] = r['steps/s']
        out[f'{name}: x fp32'] = r['steps/s'] / base
        if dtype != 'fp32' and r['autocast'] == 'off':
            out[f'{name}: note'] = 'no native bf16 here: ran in fp32'
    fp32, _ = bench_vq_train(device, quick, 'fp32')
    bf16, on = bench_vq_train(device, quick, 'bf16')
    out['VQ-VAE demo train step, DTYPE=fp32: steps/s'] = fp32
    out['VQ-VAE demo train step, DTYPE=bf16: steps/s'] = bf16
    out['VQ-VAE demo train step, DTYPE=bf16: x fp32'] = bf16 / fp32 if on else 1.0
    return out


def bench_live(preset, device, quick):
    """Batch-1 live loop: one model step + one VQ decode per frame; and batched rollouts."""
    from rollout import sample_tokens
    _, model, vq = build(preset, device)
    model.eval()
    mc = model.config
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == 'cuda')
    out = {}
    big_on_cpu = device.type == 'cpu' and mc.hidden_dim > 256  # the v6.2 model: ~0.3 s a step on 2 cores
    for b, label in ((1, 'live'), (ROLLOUT_BATCH_GPU if device.type == 'cuda' else 2 if big_on_cpu else ROLLOUT_BATCH_CPU, 'rollout')):
        tok = torch.randint(0, mc.codebook_size, (b, mc.height, mc.width), device=device)
        act = torch.zeros(b, mc.action_dim, device=device)
        act[:, 2] = act[:, 6] = 1
        state = [model.init_state(b, device)]
        lat = []

        @torch.inference_mode()
        def frame():
            t = time.perf_counter()
            with amp:
                # a latent model reads its own last latent (None on the first step: the tokens' codes)
                logits, state[0] = model.step(tok, act, state[0], latent_t=state[0].latent)
                img = vq.decode_code(sample_tokens(logits))
            img.float().mean().item()  # the frame must reach the host, as for display
            lat.append(time.perf_counter() - t)

        n = LIVE_STEPS // 4 if quick or (device.type == 'cpu' and mc.hidden_dim > 256) else LIVE_STEPS
        med, _ = timed(lambda: [frame() for _ in range(n)], device, repeats=3, warmup=1)
        if label == 'live':
            lat = np.array(lat[n:]) * 1000  # without the warm-up run
            out.update({'live frames/s': n / med, 'step p50 (ms)': float(np.percentile(lat, 50)),
                        'step p99 (ms)': float(np.percentile(lat, 99))})
        else:
            out[f'rollout frames/s (batch {b})'] = n * b / med
    return out


def bench_vq(name, device, quick):
    vq = vq_for(name).to(device).eval()
    b = 64
    imgs = torch.rand(b, 3, 72, 128, device=device)
    tokens = torch.randint(0, vq.codebook_size, (b, 18, 32), device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == 'cuda')
    with torch.inference_mode(), amp:
        enc, _ = timed(lambda: vq.encode(imgs), device, repeats=3 if quick else REPEATS)
        dec, _ = timed(lambda: vq.decode_code(tokens), device, repeats=3 if quick else REPEATS)
    return {'encode frames/s': b / enc, 'decode frames/s': b / dec}


def bench_preprocess_and_loader(device, quick):
    """End-to-end preprocess of a small blockworld set (demo VQ-VAE), then DataLoader samples/s."""
    import blockworld
    from vqvae import save_vqvae
    out = {}
    with tempfile.TemporaryDirectory() as d:
        clips, frames = (4, 64) if quick else (8, 160)
        blockworld.main(['--out', f'{d}/raw', '--clips', str(clips), '--frames', str(frames), '--seed', '900',
                         '--workers', '2'])
        save_vqvae(f'{d}/vq.pt', vq_for('demo').eval())
        cmd = [sys.executable, 'preprocess.py', '--input', f'{d}/raw', '--output', f'{d}/tok', '--vqvae', f'{d}/vq.pt',
               '--workers', '2', '--device', device.type]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        out['preprocess frames/s (demo VQ, end to end)'] = clips * frames / (time.perf_counter() - t)
        from tokendata import TokenCache, WindowDataset
        import train
        ds = WindowDataset(TokenCache(f'{d}/tok'), 'train', 17)
        loader = torch.utils.data.DataLoader(ds, batch_sampler=train.StepBatchSampler(len(ds), 20, 0, 0, 0, 10 ** 9),
                                             num_workers=2, persistent_workers=True)
        it = iter(loader)
        n = 20 if quick else 100
        med, _ = timed(lambda: [next(it) for _ in range(n)], torch.device('cpu'), repeats=3, warmup=1)
        out['data-loader samples/s (17-frame windows, 2 workers)'] = n * 20 / med
    return out


def bench_render(quick):
    """blockworld frames/s in one process (ray casting only), at the training size and GF's size."""
    import blockworld as bw
    world = bw.World(5, 'forest')
    state = world.spawn()
    out = {}
    for w, h, n in ((128, 72, 5 if quick else 20), (640, 360, 1 if quick else 3)):
        states = [state]
        for _ in range(n - 1):  # a short walk so frames differ
            states.append(world.step(states[-1], bw.Action(ws=1, yaw_deg=3.0)))
        med, _ = timed(lambda: [world.render(s, w, h) for s in states], torch.device('cpu'),
                       repeats=2 if quick else 3, warmup=1)
        out[f'render {w}x{h} frames/s'] = n / med
    return out


def fmt(v):
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--only', default='train,speedups,live,vq,data,render',
                   help='comma list of: train, speedups, profile, live, vq, data, render')
    p.add_argument('--quick', action='store_true', help='fewer repeats (a smoke test, not for RESULTS.md)')
    p.add_argument('--device', default='auto')
    p.add_argument('--out', default=RESULTS)
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: torch default)')
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(('cuda' if torch.cuda.is_available() else 'cpu') if args.device == 'auto' else args.device)
    only = set(args.only.split(','))
    m = machine()
    rows = []
    if 'train' in only:
        for preset in TRAIN_PRESETS:
            print(f"train {preset} ...", flush=True)
            rows.append((f"train step, {preset}", bench_train(preset, device, args.quick)))
    if 'profile' in only:
        print("profile of the demo step ...", flush=True)
        for dtype in ('fp32', 'bf16'):
            rows.append(("profile, config/demo_cpu.py step", profile_train('config/demo_cpu.py', device, dtype)))
    if 'speedups' in only:
        print("speed switches on the demo step ...", flush=True)
        rows.append(("train step, config/demo_cpu.py", bench_speedups(device, args.quick)))
    if 'live' in only:
        for preset in TRAIN_PRESETS:
            print(f"live {preset} ...", flush=True)
            rows.append((f"live inference, {preset} model + VQ decode", bench_live(preset, device, args.quick)))
    if 'vq' in only:
        for name in ('demo', 'v216'):
            print(f"vq {name} ...", flush=True)
            rows.append((f"VQ-VAE {name}, batch 64", bench_vq(name, device, args.quick)))
    if 'data' in only:
        print("preprocess + data loader ...", flush=True)
        rows.append(("data", bench_preprocess_and_loader(device, args.quick)))
    if 'render' in only:
        print("blockworld render ...", flush=True)
        rows.append(("blockworld", bench_render(args.quick)))
    stamp = datetime.datetime.now().strftime('%Y-%m-%d %H:%M')
    lines = [f"\n## {stamp} — {m['gpu'] if device.type == 'cuda' else m['cpu']}{' (quick)' if args.quick else ''}\n",
             f"CPU {m['cpu']}; GPU {m['gpu']}; torch {m['torch']}; {m['threads']} CPU threads; device {device}\n",
             "| what | figure | value |", "|---|---|---|"]
    for what, figs in rows:
        for k, v in figs.items():
            lines.append(f"| {what} | {k} | {fmt(v)} |")
    text = '\n'.join(lines) + '\n'
    print(text)
    os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
    if not os.path.exists(args.out):
        with open(args.out, 'w') as f:
            f.write("# Benchmark results\n\nAppended by `python bench.py`; each figure is the median of several "
                    "timed runs after warm-up (CUDA synchronised). Randomly initialised models at the preset sizes.\n")
    with open(args.out, 'a') as f:
        f.write(text)
    print(f"appended to {args.out}")


if __name__ == '__main__':
    main()

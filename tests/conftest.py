import json
import os
import subprocess
import sys

import pytest

# Real libraries, headless: wandb without a network, pygame without a display.
os.environ.setdefault('WANDB_MODE', 'disabled')
os.environ.setdefault('SDL_VIDEODRIVER', 'dummy')
os.environ.setdefault('SDL_AUDIODRIVER', 'dummy')
os.environ.setdefault('PYGAME_HIDE_SUPPORT_PROMPT', '1')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope='module')
def one_thread():
    """One torch thread for a module (pytestmark = pytest.mark.usefixtures('one_thread')): on a CPU
    shared with other jobs two OpenMP threads ran 10x slower than one."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# A tiny world-model config for tests that train (train.py flags).
TINY = ['--MODEL_PRESET=demo',
        "--MODEL_OVERRIDES={'embed_dim': 16, 'hidden_dim': 16, 'n_layers': 2, 'dilations': (1, 2), "
        "'film_dim': 16, 'attn_dim': 16, 'attn_heads': 2, 'temporal_context': 4, 'idm_dim': 16, 'idm_hidden': 32}",
        '--BATCH_SIZE=4', '--SEQ_LEN=4', '--NUM_WORKERS=0', '--LR=3e-3', '--MIN_LR=3e-4', '--WARMUP_STEPS=5',
        '--AR_WARMUP_STEPS=6', '--AR_MIN_LEN=2', '--AR_MAX_LEN=3', '--LPIPS_FRAMES=2', '--LOG_STEPS=1',
        '--IMAGE_LOG_STEPS=0', '--EVAL_STEPS=0', '--CKPT_STEPS=1000', '--DEVICE=cpu']


@pytest.fixture(scope='session')
def data(tmp_path_factory):
    """4 blockworld clips -> a tiny VQ-VAE (codebook from data) -> preprocess.py -> token data."""
    import torch
    import blockworld
    import preprocess
    from vqvae import VQConfig, VQVAE, save_vqvae
    import gfdata
    root = tmp_path_factory.mktemp('train_data')
    raw, out = root / 'raw', root / 'tokens'
    blockworld.main(['--out', str(raw), '--clips', '4', '--frames', '40', '--size', '128x72', '--seed', '3'])
    torch.manual_seed(0)
    vq = VQVAE(VQConfig(hidden1=8, hidden2=16, embedding_dim=8, codebook_size=32))
    frames = gfdata.read_frames(str(raw / 'video' / (gfdata.list_clips(str(raw))[0] + '.mp4')))
    vq.train()
    with torch.no_grad():
        vq(torch.from_numpy(frames[:16]).permute(0, 3, 1, 2).float() / 255)  # k-means init from data
    ckpt = str(root / 'vq.pt')
    save_vqvae(ckpt, vq.eval())
    rc = preprocess.main(['--input', str(raw), '--output', str(out), '--vqvae', ckpt, '--workers', '1'])
    assert not rc
    # make sure both splits have a clip, whatever the hash says
    man = json.loads((out / 'manifest.json').read_text())
    assert len(man['clips']) == 4
    return dict(data=str(out), vq=ckpt, raw=str(raw))


@pytest.fixture(scope='session')
def latent_data(data, tmp_path_factory):
    """The same clips and VQ-VAE as `data`, preprocessed with --latents."""
    import preprocess
    out = tmp_path_factory.mktemp('latent_data') / 'tokens'
    rc = preprocess.main(['--input', data['raw'], '--output', str(out), '--vqvae', data['vq'], '--workers', '1',
                          '--latents'])
    assert not rc
    return dict(data, data=str(out), plain=data['data'])



@pytest.fixture(scope='session')
def tiny_ckpt(data, tmp_path_factory):
    """A world model trained for 30 steps on `data` by train.py (checkpoint path, run folder)."""
    out = tmp_path_factory.mktemp('tiny_run')
    cmd = [sys.executable, os.path.join(ROOT, 'train.py'), f"--DATA_DIR={data['data']}",
           f"--VQVAE_CKPT={data['vq']}", f'--OUT_DIR={out}', *TINY, '--MAX_STEPS=30']
    p = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, WANDB_MODE='disabled', OMP_NUM_THREADS='1'),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return dict(ckpt=str(out / 'ckpt_0000030.pt'), run=str(out), **data)

#!/usr/bin/env bash
# Next step (5) of experiments/README.md in one device call: on a lent GPU, z3r's recipe (the best preset) and z5's
# with a 16-step tail, each at batch 32, side by side for MINUTES; the checkpoints come back under $OUT and are
# evaluated on this machine with run.sh's command (EVAL_ONLY=1). The 916 MB token cache does not travel: the GPU
# machine rebuilds it from the 13 MB of clips with the same tokenizer and bin edges as `make experiments-data`.
#   run (carry: .venv data/blockworld runs/vqvae_demo_check):  MINUTES=5 STEPS=2600 bash experiments/gpu_step5.sh
#   then here: cp -r <files_at>/runs/exp/* runs/exp/ && DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt \
#       EVAL_ONLY=1 experiments/run.sh z3g_latent_flow_gpu 5 (and z5g_tail16_gpu)
# STEPS sets where the cosine ends: measure steps/s in a first short call (STEPS=200) and size it to MINUTES.
set -euo pipefail
PY=${PY:-.venv/bin/python}
MINUTES=${MINUTES:-5}
STEPS=${STEPS:-2600}
OUT=${OUT:-runs/gpu_out}
DATA=${DATA:-runs/exp/tokens_lat}
VQ=runs/vqvae_demo_check/vqvae.pt
[ -f "$DATA/manifest.json" ] || $PY preprocess.py --input data/blockworld --output "$DATA" --vqvae "$VQ" --latents \
    --yaw-edges 0.325,4.285 --pitch-edge 0.433 --workers 8
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
train() {   # NAME, then extra presets / overrides
    local name=$1; shift
    WANDB_MODE=offline $PY train.py config/demo_cpu.py config/blockworld_latent_flow_60min.py \
        experiments/n0_gpu_batch32.py "$@" --DATA_DIR="$DATA" --VQVAE_CKPT="$VQ" --OUT_DIR="$OUT/runs/exp/$name" \
        --TIME_LIMIT_MIN="$MINUTES" --MAX_STEPS="$STEPS" --EVAL_STEPS="$STEPS" > "$OUT/$name.log" 2>&1
}
mkdir -p "$OUT"
train z3g_latent_flow_gpu &
train z5g_tail16_gpu experiments/z5_latent_snap_moving_cpu.py experiments/z5g_tail16.py &
wait
for f in "$OUT"/*.log; do echo "== $f"; grep '^step' "$f" | tail -2; done
for d in "$OUT"/runs/exp/*/; do   # only each run's last checkpoint comes back
    ls "$d"ckpt_*.pt | sort | head -n -1 | xargs -r rm -f
done

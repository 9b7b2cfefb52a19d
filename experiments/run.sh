#!/usr/bin/env bash
# One experiment: train the demo-scale world model for MINUTES with extra presets/overrides, then
# evaluate it. Every experiment in experiments/README.md was run by this script.
#
#   experiments/run.sh NAME MINUTES [preset.py | --NAME=value] ...
#   DATA=runs/exp/tokens VQ=runs/vqvae/vqvae.pt IDM=runs/idm.pt experiments/run.sh e1_coords 15 experiments/e1_coords.py
#
# Defaults are the outputs of `make demo`. Results: runs/exp/NAME/ (checkpoints, metrics.jsonl,
# train.log) and runs/exp/NAME/eval/ (eval.json, index.html, contact sheets). EVAL=0 trains only (the
# GPU runs: trained on the lent GPU, evaluated here afterwards with EVAL_ONLY=1, the same eval command).
set -euo pipefail
name=$1; minutes=$2; shift 2
PY=${PY:-.venv/bin/python}
DATA=${DATA:-runs/demo/tokens}
VQ=${VQ:-runs/demo/vqvae/vqvae.pt}
IDM=${IDM:-runs/demo/idm.pt}
out=runs/exp/$name
mkdir -p "$out"
if [ "${EVAL_ONLY:-0}" != 1 ]; then
WANDB_MODE=${WANDB_MODE:-offline} $PY train.py config/demo_cpu.py "$@" --DATA_DIR="$DATA" --VQVAE_CKPT="$VQ" \
    --OUT_DIR="$out" --TIME_LIMIT_MIN="$minutes" 2>&1 | tee -a "$out/train.log"
fi
[ "${EVAL:-1}" = 0 ] && exit 0
$PY evaluate.py --ckpt "$out" --data "$DATA" --idm "$IDM" --out "$out/eval" --threads 1 \
    --open-loop-samples 8 --stability-samples 2 --cf-starts 4 2>&1 | tee -a "$out/eval.log"

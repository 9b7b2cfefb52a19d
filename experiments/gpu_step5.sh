#!/usr/bin/env bash
# Next step (5) of experiments/README.md in one device call: on a lent GPU, three demo-size latent trainings side by
# side at batch 32 until TRAIN_END seconds after the call starts: z3r's recipe (the best preset), the same with the
# rounded flow trained in (zr2's LATENT_FLOW_ROUND) and z5's with a 16-step tail; then bench.py on the same card.
# The 916 MB token cache does not travel: the GPU machine rebuilds it from the 13 MB of clips with the same
# tokenizer and bin edges as `make experiments-data`. The GPU image has torch, opencv and tqdm but not lpips: its
# wheel and the converted AlexNet backbone travel in .gpu/ (git-ignored through .git/info/exclude):
#   mkdir -p .gpu/cache && cp ~/.cache/ochre/lpips_alexnet_backbone.pt .gpu/cache/
#   .venv/bin/python -m pip download --no-deps --only-binary=:all: -d .gpu/whl lpips==0.1.4
#   device run (carry: .gpu data/blockworld runs/vqvae_demo_check):  PY=python3 bash experiments/gpu_step5.sh
# What comes back (the device returns at most 8 files, 2 folders down): $OUT/NAME/{ckpt_*.pt,metrics.jsonl} for each
# run, $OUT/logs.txt, $OUT/RESULTS_gpu.md. Then here: mkdir -p runs/exp/NAME && cp <files_at>/NAME/* runs/exp/NAME/
# and evaluate with the command in experiments/README.md.
# MAX_STEPS (where each cosine ends) = the minutes left x RATE8 / RATE16, the steps/s guessed for three runs sharing
# the card (session 9: 8.2-9.8 steps/s for 8-step tails on an H100); the time limit stops a run that is slower.
set -uo pipefail
T0=$(date +%s)
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/gpu_out}
TRAIN_END=${TRAIN_END:-430}
RATE8=${RATE8:-7}
RATE16=${RATE16:-4}
DATA=${DATA:-/tmp/tokens_lat}
RUNS=${RUNS:-/tmp/gpu_runs}
VQ=runs/vqvae_demo_check/vqvae.pt
mkdir -p "$OUT" "$RUNS"
if ls .gpu/whl/*.whl > /dev/null 2>&1 && ! $PY -c 'import lpips' 2> /dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl
    export PYTHONPATH=/tmp/site
fi
[ -d .gpu/cache ] && export OCHRE_CACHE_DIR=$PWD/.gpu/cache
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
[ -f "$DATA/manifest.json" ] || { $PY preprocess.py --input data/blockworld --output "$DATA" --vqvae "$VQ" --latents \
    --yaw-edges 0.325,4.285 --pitch-edge 0.433 --workers 12 > "$RUNS/preprocess.log" 2>&1; tail -3 "$RUNS/preprocess.log"; }
echo "tokens ready at $(( $(date +%s) - T0 )) s"
minutes=$($PY -c "print(round(max(0.5, ($TRAIN_END - $(date +%s) + $T0) / 60), 2))")
steps() { $PY -c "print(int($1 * $minutes * 60))"; }
train() {   # NAME STEPS, then extra presets / overrides
    local name=$1 n=$2; shift 2
    WANDB_MODE=disabled $PY train.py config/demo_cpu.py config/blockworld_latent_flow_60min.py \
        experiments/n0_gpu_batch32.py "$@" --DATA_DIR="$DATA" --VQVAE_CKPT="$VQ" --OUT_DIR="$RUNS/$name" \
        --TIME_LIMIT_MIN="$minutes" --MAX_STEPS="$n" --EVAL_STEPS="$n" > "$RUNS/$name.log" 2>&1
}
names="z3g_latent_flow_gpu zr2g_flow_round_gpu z5g_tail16_gpu"
train z3g_latent_flow_gpu "$(steps "$RATE8")" &
train zr2g_flow_round_gpu "$(steps "$RATE8")" experiments/zr_flow_round_cpu.py &
train z5g_tail16_gpu "$(steps "$RATE16")" experiments/z5_latent_snap_moving_cpu.py experiments/z5g_tail16.py &
wait
echo "trained at $(( $(date +%s) - T0 )) s ($minutes min each)"
timeout 120 $PY bench.py --only train,speedups,live,vq --out "$OUT/RESULTS_gpu.md" > "$RUNS/bench.log" 2>&1
echo "benched at $(( $(date +%s) - T0 )) s"
for n in $names; do   # only each run's last checkpoint comes back
    mkdir -p "$OUT/$n"
    last=$(ls "$RUNS/$n"/ckpt_*.pt 2> /dev/null | sort | tail -1)
    [ -n "$last" ] && cp "$last" "$RUNS/$n/metrics.jsonl" "$OUT/$n/"
done
for f in "$RUNS"/*.log; do echo "== $f"; grep -E -i 'error|traceback|leaving|saved|model |throughput|appended|val' "$f" \
    | tail -8; grep '^step' "$f" | tail -3; tail -4 "$f"; done \
    > "$OUT/logs.txt" 2>&1
tail -60 "$OUT/logs.txt"

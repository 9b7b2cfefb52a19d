#!/usr/bin/env bash
# Several demo-size latent trainings side by side on one lent GPU, in one device call, until TRAIN_END seconds after
# the call starts; each run's last checkpoint is copied out; then a short bench.py on the same card.
#   PY=python3 bash experiments/gpu_side_by_side.sh NAME[:EXTRA[,EXTRA...]] ...
# Every run starts from the GPU preset (config/demo_cpu.py + config/blockworld_latent_flow_60min.py +
# config/blockworld_latent_flow_gpu.py); EXTRA is a preset file or an --OVERRIDE=value, e.g.
#   zkg2:--SEED=2   z3g2:--LATENT_FLOW_KEYS=False,--SEED=2
# Session 16 ran z3g / zr2g / z5g this way (then experiments/gpu_step5.sh); session 19 z3g's seeds and the key
# fields (z3g1 / z3g2 / zkg, when the preset had no key fields: zkg added experiments/zk_flow_keys_cpu.py).
# The 916 MB token cache does not travel: the GPU machine rebuilds it from the 13 MB of clips with the same
# tokenizer and bin edges as `make experiments-data`. The GPU image has torch, opencv and tqdm but not lpips: its
# wheel and the converted AlexNet backbone travel in .gpu/ (git-ignored through .git/info/exclude):
#   mkdir -p .gpu/cache && cp ~/.cache/ochre/lpips_alexnet_backbone.pt .gpu/cache/
#   .venv/bin/python -m pip download --no-deps --only-binary=:all: -d .gpu/whl lpips==0.1.4
#   device run (carry: .gpu data/blockworld runs/vqvae_demo_check)
# What comes back (the device returns at most 8 files, 2 folders down): $OUT/NAME/{ckpt_*.pt,metrics.jsonl} for each
# run (three runs at most), $OUT/logs.txt, $OUT/RESULTS_gpu.md. Then here: mkdir -p runs/exp/NAME &&
# cp <files_at>/NAME/* runs/exp/NAME/ and evaluate with the command in experiments/README.md.
# MAX_STEPS (where each cosine ends) = the minutes left x RATE, the steps/s of one of three runs sharing the card
# (session 16, H200: 5.7-6.1 steps/s for 8-step tails at batch 32); the time limit stops a run that is slower.
set -uo pipefail
T0=$(date +%s)
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/gpu_out}
TRAIN_END=${TRAIN_END:-430}
RATE=${RATE:-5.5}
BENCH_S=${BENCH_S:-90}
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
steps=$($PY -c "print(int($RATE * $minutes * 60))")
names=()
for spec in "$@"; do
    name=${spec%%:*}; extra=(); [ "$spec" != "$name" ] && IFS=, read -r -a extra <<< "${spec#*:}"
    names+=("$name")
    WANDB_MODE=disabled $PY train.py config/demo_cpu.py config/blockworld_latent_flow_60min.py \
        config/blockworld_latent_flow_gpu.py "${extra[@]}" --DATA_DIR="$DATA" --VQVAE_CKPT="$VQ" \
        --OUT_DIR="$RUNS/$name" --TIME_LIMIT_MIN="$minutes" --MAX_STEPS="$steps" --EVAL_STEPS="$steps" \
        > "$RUNS/$name.log" 2>&1 &
done
wait
echo "trained at $(( $(date +%s) - T0 )) s ($minutes min each, cosine of $steps steps)"
for n in "${names[@]}"; do   # only each run's last checkpoint comes back; copied before the bench can be cut short
    mkdir -p "$OUT/$n"
    last=$(ls "$RUNS/$n"/ckpt_*.pt 2> /dev/null | sort | tail -1)
    [ -n "$last" ] && cp "$last" "$RUNS/$n/metrics.jsonl" "$OUT/$n/"
done
logs() { for f in "$RUNS"/*.log; do echo "== $f"; grep -E -i 'error|traceback|leaving|saved|model |throughput|appended|val' "$f" \
    | tail -8; grep '^step' "$f" | tail -3; tail -4 "$f"; done > "$OUT/logs.txt" 2>&1; }
logs
timeout "$BENCH_S" $PY bench.py --only train,live --out "$OUT/RESULTS_gpu.md" > "$RUNS/bench.log" 2>&1
echo "benched at $(( $(date +%s) - T0 )) s"
logs
tail -60 "$OUT/logs.txt"

#!/usr/bin/env bash
# One GPU session in one call: continue the long sketch-rnn run on CUDA from its CPU checkpoint,
# then a CUDA smoke run (train a few steps, validate, evaluate, draw) of each model family.
#
# The device machine starts bare and reaches no network: it has python3 with torch, numpy, scipy,
# matplotlib, scikit-learn and tqdm, but not pyro-ppl or arviz, and it does not see ../shared/data.
# `prepare` (here, with registry access) puts what it needs into .device/ (git-ignored):
#
#   bash examples/device_session.sh prepare ~/.cache/pyro-draw/runs/sketch_sheep_medium_clip_value
#   # then, with the device tool:  run(command="bash examples/device_session.sh run",
#   #                                  carry=[".device"], timeout_s=600)
#
# `run` writes to $OUT: train.log, smoke.log, and the continued run's checkpoint.pt, best.pt,
# metrics.jsonl and eval.json; resume it here with the same train command and
# `--resume <that checkpoint.pt>` after copying the four files back into the run's folder.
# Test the whole thing on a CPU: DEVICE=cpu TRAIN_SECONDS=20 OUT=/tmp/out bash examples/device_session.sh run
set -u -o pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
STORE="$HERE/.device"
# The command the run was started with (README "sketch-rnn"); --resume/--out are added below.
RUN_ARGS=${RUN_ARGS:-"sketch-rnn --config medium --dataset aaron_sheep --steps 30000 --w-kl 0.5 \
--kl-decay 0.99995 --clip-norm 0 --clip-value 1 --validate-every 500 --checkpoint-every 500 \
--eval-examples 300 --iwae-samples 100 --no-pictures"}

prepare() {
    local run_dir=${1:?usage: device_session.sh prepare RUN_DIR (holding checkpoint.pt)}
    [[ -f "$run_dir/checkpoint.pt" ]] || { echo "prepare: no $run_dir/checkpoint.pt" >&2; exit 2; }
    local data=${PYRO_DRAW_DATA_DIR:-$HERE/../shared/data}
    rm -rf "$STORE" && mkdir -p "$STORE/data" "$STORE/wheels" "$STORE/run"
    cp "$run_dir/checkpoint.pt" "$run_dir/metrics.jsonl" "$STORE/run/"
    [[ -f "$run_dir/best.pt" ]] && cp "$run_dir/best.pt" "$STORE/run/"
    mkdir -p "$STORE/data/strokes"
    cp "$data/strokes/aaron_sheep.npz" "$STORE/data/strokes/"
    cp -r "$data/mnist" "$data/binarized_mnist" "$STORE/data/"
    # pure-Python wheels of what the device image lacks, at the versions installed here
    python -m pip download --quiet --no-deps -d "$STORE/wheels" \
        "pyro-ppl==$(pip_version pyro-ppl)" "pyro-api==$(pip_version pyro-api)" \
        "arviz==$(pip_version arviz)" "h5netcdf==$(pip_version h5netcdf)" \
        "xarray-einstats==$(pip_version xarray-einstats)" \
        "platformdirs==$(pip_version platformdirs)"
    du -sh "$STORE"
}

pip_version() { python -m pip show "$1" | sed -n 's/^Version: //p'; }

run() {
    local out=${OUT:?run: set OUT (the device tool sets it)} device=${DEVICE:-cuda}
    local train_seconds=${TRAIN_SECONDS:-330} deadline=$((SECONDS + ${TOTAL_SECONDS:-540}))
    local py=${PYTHON:-python3}
    export PYTHONUNBUFFERED=1 PYRO_DRAW_DATA_DIR="$STORE/data" PYTHONPATH="$HERE:/tmp/pydeps"
    cd "$HERE" || exit 2
    if ! "$py" -c "import pyro, arviz" 2>/dev/null; then
        "$py" -m pip install --quiet --no-index --no-deps --target /tmp/pydeps "$STORE"/wheels/*.whl
    fi
    "$py" -c "import torch, pyro; print('torch', torch.__version__, 'pyro', pyro.__version__, \
'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')" \
        | tee "$out/smoke.log"

    # 1. the long run, resumed from the carried checkpoint (its metrics.jsonl continues)
    rm -rf /tmp/pyro-draw-run && cp -r "$STORE/run" /tmp/pyro-draw-run
    # shellcheck disable=SC2086  # RUN_ARGS is a word list
    "$py" -m tasks.cli train $RUN_ARGS --device "$device" --no-progress \
        --out /tmp/pyro-draw-run --resume /tmp/pyro-draw-run/checkpoint.pt \
        --max-seconds "$train_seconds" >"$out/train.log" 2>&1
    echo "long run: rc $?" | tee -a "$out/smoke.log"
    for f in checkpoint.pt best.pt metrics.jsonl eval.json; do
        [[ -f /tmp/pyro-draw-run/$f ]] && cp "/tmp/pyro-draw-run/$f" "$out/"
    done

    # 2. every family's training, validation, evaluation and pictures on the device
    local smoke=(
        "draw --steps 3 --batch-size 20 --num-train 200 --num-valid 40 --validate-every 2 --eval-examples 20 --iwae-samples 4"
        "draw --config mnist --dataset binarized_mnist --steps 3 --batch-size 20 --num-train 200 --num-valid 40 --validate-every 2 --eval-examples 20 --iwae-samples 4"
        "sketch-rnn --steps 3 --batch-size 10 --valid-examples 20 --validate-every 2 --eval-examples 10 --iwae-samples 4"
        "sketch-rnn-decoder --steps 3 --batch-size 10 --valid-examples 20 --validate-every 2 --eval-examples 10"
        "dood --steps 2 --batch-size 8 --num-train 64 --num-valid 16 --validate-every 1 --eval-examples 8 --iwae-samples 2"
        "difference-air --steps 2 --batch-size 8 --num-train 64 --num-valid 16 --validate-every 1 --eval-examples 8 --iwae-samples 2"
        "ram --steps 3 --batch-size 20 --num-train 200 --num-valid 40 --validate-every 2 --eval-examples 40"
        "dram --steps 3 --batch-size 20 --num-train 200 --num-valid 40 --validate-every 2 --eval-examples 40"
        "ram-catch --steps 3 --batch-size 8 --validate-every 2"
    )
    local failed=0 i=0 args
    for args in "${smoke[@]}"; do
        i=$((i + 1))
        if ((SECONDS > deadline)); then
            echo "SKIPPED (out of time): $args" | tee -a "$out/smoke.log"
            continue
        fi
        # shellcheck disable=SC2086
        if timeout 120 "$py" -m tasks.cli train $args --device "$device" --no-progress \
            --out "/tmp/pyro-draw-smoke/$i" --overwrite >"/tmp/pyro-draw-smoke-$i.log" 2>&1; then
            echo "ok: $args" | tee -a "$out/smoke.log"
        else
            failed=$((failed + 1))
            { echo "FAILED: $args"; tail -n 25 "/tmp/pyro-draw-smoke-$i.log"; } | tee -a "$out/smoke.log"
        fi
    done
    echo "smoke: $failed of ${#smoke[@]} failed" | tee -a "$out/smoke.log"
    return "$failed"
}

case "${1:-}" in
    prepare) shift && prepare "$@" ;;
    run) run ;;
    *) echo "usage: $0 prepare RUN_DIR | run" >&2 && exit 2 ;;
esac

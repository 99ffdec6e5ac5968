#!/usr/bin/env bash
# The GPU checks of issue 14 in one go (a few minutes on an H100/H200), from the repository root
# or anywhere:
#
#   bash benchmarks/gpu_check.sh
#
# 1. the device (nvidia-smi, torch, CUDA, cuDNN);
# 2. throughput: pure compute vs lnm's pipeline vs the DataLoader + PIL pipeline, ResNet-18 at
#    28 px and ResNet-50 at 224 px (benchmarks/throughput.py --compare --device cuda);
# 3. grid cost: images/s per (method, backbone, size) measured on this GPU, and the projected
#    device-hours of config.yaml (the paper grid: ResNet-50, 224 px), of the paper grid at 28 px
#    with ResNet-18 (the issue's <= 8 H100-hours target) and of presets/demo.yaml, each with the
#    GPUs needed to finish in 8 hours (benchmarks/grid_cost.py);
# 4. several runs per GPU: separate processes (gpu_slots_per_device) against one process
#    training them one after another (runtime.pack_seeds) (benchmarks/pack_runs.py);
# 5. torch.compile of each method's training step: eager vs compiled images/s, bf16, CUDA
#    graphs (reduce-overhead), bit-identity and exact resume (benchmarks/compile_bench.py);
# 6. python -m pytest -q -m gpu (the CUDA-only tests).
#
# Every step runs under a time limit and the script goes on after a failed step; it exits 1 if
# any step failed, 0 otherwise. Without CUDA it says so and exits 0 having checked nothing.
#
# Environment: PYTHON (default: python), OUT (a folder: the log gpu_check.log and the
# measurement file grid_cost.json go there; default benchmarks/), ROUNDS (throughput rounds,
# default 3), BATCHES (grid_cost's timed batches per epoch, default 5).
# To project a grid on this GPU's numbers later, on any machine:
#   python benchmarks/grid_cost.py --measurements <OUT>/grid_cost.json --use cuda --no-measure ...
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
PY=${PYTHON:-python}
OUTDIR=${OUT:-benchmarks}
mkdir -p "$OUTDIR"
LOG="$OUTDIR/gpu_check.log"
MEAS="$OUTDIR/grid_cost.json"
ROUNDS=${ROUNDS:-3}
BATCHES=${BATCHES:-5}
exec > >(tee "$LOG") 2>&1

failed=()
step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo
    echo "=== $name ($(date -u +%H:%M:%S) UTC, limit ${limit}s): $*"
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@"
    local rc=$?
    echo "=== $name: exit $rc after $((SECONDS - t0))s"
    [ "$rc" -eq 0 ] || failed+=("$name (exit $rc)")
}

echo "=== device"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null ||
    echo "(nvidia-smi not available)"
"$PY" - <<'EOF'
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f"cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs")
EOF
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device visible: nothing to check here (run this on a GPU machine)"
    exit 0
fi
echo "CPUs: $(nproc)"

step throughput 300 "$PY" benchmarks/throughput.py --compare --device cuda --rounds "$ROUNDS"

GC=("$PY" benchmarks/grid_cost.py --device cuda --measurements "$MEAS" --batches "$BATCHES"
    --wall-hours 8)
step "grid_cost config.yaml" 300 "${GC[@]}"
step "grid_cost paper grid at 28 px, ResNet-18" 180 "${GC[@]}" \
    --set size=28 --set 'backbones=[resnet18]' --set pretrained=false
step "grid_cost presets/demo.yaml" 120 "${GC[@]}" presets/demo.yaml

step "pack_runs: 4 runs, separate vs packed, 1 and 2 per GPU" 360 "$PY" benchmarks/pack_runs.py \
    --device cuda --runs 4 --epochs 1 --slots 1 2 --repeats 1 --json "$OUTDIR/pack_runs.json"
step "compile_bench: CE, Co-teaching, DivideMix; bf16; default and reduce-overhead" 420 \
    "$PY" benchmarks/compile_bench.py --device cuda --methods ce,coteaching,dividemix \
    --modes default,reduce-overhead --precisions bf16 --steps 20 --repeats 3

step "pytest -m gpu" 300 "$PY" -m pytest -q -m gpu -p no:cacheprovider

echo
if [ ${#failed[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "all GPU checks ran (log: $LOG, measurements: $MEAS)"

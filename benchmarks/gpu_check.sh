#!/usr/bin/env bash
# The GPU check: every CUDA path tested and the GPU targets measured, in one call of at most
# 8 minutes on one H100, ending with a table of each check, its figure and its verdict.
#
#   bash benchmarks/gpu_check.sh [--python PY] [--out DIR] [--raw-dir DIR] [--wheels DIR] [--full]
#
# It cannot pass without checking. Exit status:
#   0  every step ran and every GPU target is met;
#   1  a step failed, ran past its budget, or was skipped for a reason other than "not
#      applicable" (e.g. a package it needs is missing), or `pytest -m gpu` failed, skipped a
#      test or ran none: the figures cannot be trusted;
#   2  nothing checked: torch does not import, or no CUDA device ("no GPU: nothing checked");
#   3  every step ran, but a GPU target is missed (the table says which).
#
# Steps (the table STEPS below; each has a time budget, printed before it runs):
#   1. pytest -m gpu (first): the CUDA tests (resume on CUDA, the pool in fresh processes, two
#      slots on one GPU, determinism, every method under deterministic algorithms, ...);
#   2. throughput: lnm's pipeline vs pure compute vs DataLoader + PIL, ResNet-18 at 28 px and
#      ResNet-50 at 224 px (benchmarks/throughput.py --compare);
#   3. grid cost: the paper grid at 28 px with ResNet-18 measured on this GPU and projected in
#      device-hours (benchmarks/grid_cost.py);
#   4. reproduce: clean CE with MedMNIST v2's ResNet-18 (28) recipe on BreastMNIST and
#      RetinaMNIST held against the published test accuracy and AUC (benchmarks/reproduce_cell.py;
#      a verdict row per dataset and number: met when it agrees);
#   then benchmarks/gpu_summary.py prints the table (targets: >= 10x the DataLoader and >= 85 %
#   of pure compute at 28 px, >= 2.5x and >= 85 % at 224 px, <= 8 H100-hours for the grid).
# --full adds pack_runs, compile_bench and the grid cost of config.yaml (not within 8 minutes).
#
# A machine with its own PyTorch and no network (e.g. Python 3.12, torch 2.11, torchvision,
# timm, h5py, pandas, scikit-learn, scipy, matplotlib; no snakemake, jsonschema, medmnist,
# cleanlab; lnm not installed) is fine: the repository is put on PYTHONPATH, and
# `--wheels DIR` installs what is missing from a folder of wheels (pip install --no-index
# --find-links DIR) into a virtual environment under the output folder that sees the
# machine's packages (nothing is installed into the machine's Python). docs/gpu.md says how to
# fill that folder (`pip download ... --python-version 3.12 --only-binary=:all: -d wheels/`);
# without it the check names what is missing and which steps that skips, and exits 1.
#
# Options (or environment): --python PY (PYTHON; default python3), --out DIR (OUT; default
# benchmarks/gpu_check: gpu_check.log, steps.tsv, the JSON figures, the JUnit report), --raw-dir
# DIR (LNM_RAW_DIR; the MedMNIST .npz files; default ../shared/data/medmnist beside the
# repository, else shared/data/medmnist inside it; elsewhere pass it), --wheels DIR, --full,
# --rounds N (throughput rounds, default 3), --batches N (grid_cost's batches, default 5).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 2
PY=${PYTHON:-python3}
OUT=${OUT:-$REPO/benchmarks/gpu_check}
RAW_DIR=${LNM_RAW_DIR:-$REPO/../shared/data/medmnist}
# (a copy of the repository that carries shared/ inside it)
[ -z "${LNM_RAW_DIR:-}" ] && [ ! -d "$RAW_DIR" ] && [ -d "$REPO/shared/data/medmnist" ] &&
    RAW_DIR=$REPO/shared/data/medmnist
WHEELS=""
FULL=0
ROUNDS=${ROUNDS:-3}
BATCHES=${BATCHES:-5}
while [ $# -gt 0 ]; do
    case "$1" in
        --python) PY=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --raw-dir) RAW_DIR=$2; shift 2 ;;
        --wheels) WHEELS=$2; shift 2 ;;
        --full) FULL=1; shift ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --batches) BATCHES=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
RAW_DIR=$(cd "$RAW_DIR" 2>/dev/null && pwd || echo "$RAW_DIR")
if [ -n "$WHEELS" ] && [ ! -d "$WHEELS" ]; then
    echo "gpu_check: --wheels $WHEELS is not a folder" >&2
    exit 2
fi
rm -rf "$OUT/checks" "$OUT/steps.tsv" "$OUT/pytest_gpu.xml" "$OUT/throughput.json" \
    "$OUT/grid_cost_28.json"
mkdir -p "$OUT/checks"
exec > >(tee "$OUT/gpu_check.log") 2>&1

# ---------------------------------------------------------------------------------- the steps
# One line per step: NAME|BUDGET (seconds)|NEEDS|COMMAND. NEEDS: Python modules the step
# imports, and "data" for the MedMNIST files in $RAW_DIR; a step whose needs are missing is
# skipped (a failure). COMMAND runs in bash from the repository root with PY, OUT, RAW_DIR,
# ROUNDS, BATCHES, GPU_TESTS exported; a step may write rows of its own into
# $OUT/checks/<name>.json (benchmarks/gpu_summary.py says how). Budgets plus RESERVED must stay
# within LIMIT: the whole check runs in 8 minutes on one H100.
LIMIT=480
# Seconds kept for what runs before the steps (imports, the device, installing wheels).
PREFLIGHT=40
# Seconds kept for nothing else (every step has its own budget).
RESERVED=0
STEPS=(
    "pytest -m gpu|150|pytest|\"\$PY\" -m pytest -q -m gpu -p no:cacheprovider -rs --junitxml=\"\$OUT/pytest_gpu.xml\" \$GPU_TESTS"
    "throughput: ResNet-18 28 px, ResNet-50 224 px|90|torchvision timm PIL|\"\$PY\" benchmarks/throughput.py --compare --device cuda --rounds \"\$ROUNDS\" --json \"\$OUT/throughput.json\""
    "grid cost: paper grid at 28 px, ResNet-18|100|yaml jsonschema medmnist timm|\"\$PY\" benchmarks/grid_cost.py --device cuda --measurements \"\$OUT/grid_cost.json\" --batches \"\$BATCHES\" --wall-hours 8 --set size=28 --set 'backbones=[resnet18]' --set pretrained=false --json \"\$OUT/grid_cost_28.json\""
    "reproduce: clean CE, MedMNIST v2 ResNet-18 (28) recipe, BreastMNIST + RetinaMNIST|90|timm pandas scipy data|\"\$PY\" benchmarks/reproduce_cell.py --device cuda --raw-dir \"\$RAW_DIR\" --time-limit 70 --json \"\$OUT/reproduce_cell.json\" --checks \"\$OUT/checks/reproduce_cell.json\""
)
FULL_STEPS=(
    "grid cost: config.yaml (224 px, ResNet-50)|600|yaml jsonschema medmnist timm|\"\$PY\" benchmarks/grid_cost.py --device cuda --measurements \"\$OUT/grid_cost.json\" --batches \"\$BATCHES\" --wall-hours 8"
    "pack_runs: 4 runs, separate vs packed, 1 and 2 per GPU|600|yaml jsonschema medmnist data|\"\$PY\" benchmarks/pack_runs.py --device cuda --runs 4 --epochs 1 --slots 1 2 --repeats 1 --raw-dir \"\$RAW_DIR\" --json \"\$OUT/pack_runs.json\""
    "compile_bench: CE, Co-teaching, DivideMix; bf16|600|timm|\"\$PY\" benchmarks/compile_bench.py --device cuda --methods ce,coteaching,dividemix --modes default,reduce-overhead --precisions bf16 --steps 20 --repeats 3"
)

# ---------------------------------------------------------------------------------- preflight
# module -> the package pip installs it from
PACKAGES="torch:torch torchvision:torchvision timm:timm PIL:pillow numpy:numpy h5py:h5py \
pandas:pandas scipy:scipy sklearn:scikit-learn matplotlib:matplotlib yaml:pyyaml \
jsonschema:jsonschema snakemake:snakemake medmnist:medmnist cleanlab:cleanlab \
tabulate:tabulate pytest:pytest"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"  # lnm from this repository, installed or not
export LNM_RAW_DIR="$RAW_DIR"

missing_modules() {  # the modules of PACKAGES that do not import with $PY
    local mods=()
    for pair in $PACKAGES; do mods+=("${pair%%:*}"); done
    "$PY" - "${mods[@]}" 2>/dev/null <<'EOF' | sed -n 's/^lnm-missing-module //p'
import contextlib, importlib, io, sys
missing = []
for name in sys.argv[1:]:
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # what a package prints on import
            importlib.import_module(name)
    except Exception:
        missing.append(name)
print("\n".join(f"lnm-missing-module {m}" for m in missing))
EOF
}

pip_name() {
    for pair in $PACKAGES; do [ "${pair%%:*}" = "$1" ] && echo "${pair#*:}" && return; done
    echo "$1"
}

echo "=== gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname): repository $REPO, output $OUT"
if ! command -v "$PY" >/dev/null 2>&1; then
    echo "no GPU: nothing checked (Python '$PY' not found; pass --python)"
    exit 2
fi
if ! "$PY" -c "import torch" 2>"$OUT/torch_import.err"; then
    echo "torch fails to import with $PY:"
    tail -n 5 "$OUT/torch_import.err"
    echo "no GPU: nothing checked (torch does not import)"
    exit 2
fi
"$PY" - <<'EOF'
import platform, torch
print(f"Python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None})")
EOF

mapfile -t MISSING < <(missing_modules)
if [ ${#MISSING[@]} -gt 0 ] && [ -n "$WHEELS" ]; then
    VENV="$OUT/venv"
    echo "=== installing what is missing (${MISSING[*]}) from $WHEELS into $VENV"
    PKGS=()
    for m in "${MISSING[@]}"; do PKGS+=("$(pip_name "$m")"); done
    if [ ! -x "$VENV/bin/python" ]; then
        "$PY" -m venv "$VENV" || { echo "gpu_check: cannot create a venv with $PY"; exit 1; }
        # the venv sees the machine's packages (after its own): only what is missing goes in
        # (an "import" line of a .pth file runs: addsitedir also reads those folders' .pth files)
        "$PY" -c "import site; print('\n'.join(f'import site; site.addsitedir({d!r})' for d in site.getsitepackages() + [site.getusersitepackages()]))" \
            >"$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')/_machine_site.pth"
    fi
    # medmnist without its dependencies: lnm reads its dataset table; what else it asks for
    # (scikit-image, fire, ...) nothing here uses
    WITH=() BARE=()
    for p in "${PKGS[@]}"; do
        if [ "$p" = medmnist ]; then BARE+=("$p"); else WITH+=("$p"); fi
    done
    ok=1
    if [ ${#WITH[@]} -gt 0 ]; then
        "$VENV/bin/python" -m pip install -q --no-index --find-links "$WHEELS" "${WITH[@]}" || ok=0
    fi
    if [ ${#BARE[@]} -gt 0 ]; then
        "$VENV/bin/python" -m pip install -q --no-index --no-deps --find-links "$WHEELS" \
            "${BARE[@]}" || ok=0
    fi
    if [ "$ok" = 0 ]; then
        echo "gpu_check: could not install all of ${PKGS[*]} from $WHEELS (see above;" \
            "benchmarks/gpu_wheels.sh fills such a folder)"
    fi
    PY="$VENV/bin/python"
    mapfile -t MISSING < <(missing_modules)
fi
export PY OUT RAW_DIR ROUNDS BATCHES

if [ ${#MISSING[@]} -gt 0 ]; then
    PKGS=()
    for m in "${MISSING[@]}"; do PKGS+=("$(pip_name "$m")"); done
    echo "MISSING Python packages: ${PKGS[*]}"
fi
ALL_STEPS=("${STEPS[@]}")
[ "$FULL" = 1 ] && ALL_STEPS+=("${FULL_STEPS[@]}")
total=$((RESERVED + PREFLIGHT))
for s in "${STEPS[@]}"; do
    IFS='|' read -r _ budget _ _ <<<"$s"
    total=$((total + budget))
done
if [ "$total" -gt "$LIMIT" ]; then
    echo "gpu_check: the step budgets add up to ${total}s, over the ${LIMIT}s limit: fix STEPS"
    exit 1
fi

# needs_missing NEEDS: what of NEEDS is missing here (empty: nothing)
needs_missing() {
    local out=()
    for need in $1; do
        if [ "$need" = data ]; then
            [ -f "$RAW_DIR/breastmnist.npz" ] || out+=("the MedMNIST files in $RAW_DIR (--raw-dir)")
        else
            for m in "${MISSING[@]}"; do [ "$m" = "$need" ] && out+=("$(pip_name "$m")"); done
        fi
    done
    echo "${out[*]}"
}
echo
echo "=== plan: $((total - RESERVED - PREFLIGHT))s of step budgets + ${RESERVED}s kept for the" \
    "reproduction step + ${PREFLIGHT}s for the start = ${total}s of at most ${LIMIT}s"
skips=0
for s in "${ALL_STEPS[@]}"; do
    IFS='|' read -r name budget needs _ <<<"$s"
    lack=$(needs_missing "$needs")
    if [ -n "$lack" ]; then
        echo "  ${budget}s  $name  -- SKIPPED: needs $lack"
        skips=1
    else
        echo "  ${budget}s  $name"
    fi
done
if [ "$skips" = 1 ]; then
    echo "On a machine with network, put what is missing into a folder of wheels and rerun with"
    echo "--wheels DIR (docs/gpu.md, 'Running the GPU check'); skipped steps fail the check."
fi

# ---------------------------------------------------------------------------------- CUDA?
echo
echo "=== device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null ||
    echo "(nvidia-smi not available)"
if ! "$PY" - <<'EOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(1)
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs")
EOF
then
    echo "no GPU: nothing checked (torch.cuda.is_available() is False with $PY)"
    exit 2
fi
echo "CPUs: $(nproc)"
GPU_TESTS=$(grep -l "pytest.mark.gpu" tests/test_*.py | tr '\n' ' ')
export GPU_TESTS

# ---------------------------------------------------------------------------------- run
: >"$OUT/steps.tsv"
i=0
for s in "${ALL_STEPS[@]}"; do
    i=$((i + 1))
    IFS='|' read -r name budget needs cmd <<<"$s"
    lack=$(needs_missing "$needs")
    echo
    if [ -n "$lack" ]; then
        echo "=== [$i/${#ALL_STEPS[@]}] $name: SKIPPED (needs $lack)"
        printf '%s\t%s\t0\tskipped\tneeds %s\n' "$name" "$budget" "$lack" >>"$OUT/steps.tsv"
        continue
    fi
    echo "=== [$i/${#ALL_STEPS[@]}] $name (budget ${budget}s, $(date -u +%H:%M:%S) UTC)"
    t0=$SECONDS
    timeout --kill-after=10 "$budget" bash -c "$cmd"
    rc=$?
    dt=$((SECONDS - t0))
    case $rc in
        0) status=ok detail="" ;;
        124 | 137) status=timeout detail="over its ${budget}s budget" ;;
        *) status=failed detail="exit $rc" ;;
    esac
    echo "=== $name: $status after ${dt}s of ${budget}s${detail:+ ($detail)}"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$budget" "$dt" "$status" "$detail" >>"$OUT/steps.tsv"
done

echo
echo "=== summary (log: $OUT/gpu_check.log; measurements: $OUT)"
"$PY" benchmarks/gpu_summary.py "$OUT"
exit $?

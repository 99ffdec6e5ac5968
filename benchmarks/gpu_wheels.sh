#!/usr/bin/env bash
# Fill a folder with the wheels benchmarks/gpu_check.sh --wheels needs on a GPU machine that has
# its own PyTorch but no network: what the check (and the workflow's tests) use beyond torch,
# torchvision, timm, numpy, h5py, pandas, scipy, scikit-learn, matplotlib and pillow.
#
#   bash benchmarks/gpu_wheels.sh DIR [PYTHON_VERSION]      # e.g. wheels/ 3.12
#
# Run it on any machine with network and pip (any Python version): it downloads binary wheels
# for the GPU machine's Python (`pip download --python-version X.Y --only-binary=:all:`, Linux
# x86-64), and builds a wheel for every dependency that PyPI has only as source (pure Python,
# e.g. connection_pool) with `pip wheel --no-deps`. medmnist comes without its dependencies
# (lnm uses its dataset table; they are the machine's torch, torchvision, pandas, ...).
# Then copy DIR to the GPU machine: bash benchmarks/gpu_check.sh --wheels DIR
set -euo pipefail
DIR=${1:?usage: gpu_wheels.sh DIR [PYTHON_VERSION]}
PYV=${2:-3.12}
PIP=${PIP:-python3 -m pip}
# the pinned versions of requirements.txt
PKGS=(snakemake==9.27.1 jsonschema==4.26.0 cleanlab==2.9.0 tabulate==0.10.0 PyYAML==6.0.4
    pytest==9.2.0)
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
    --platform manylinux2014_x86_64 --platform any)
mkdir -p "$DIR"
for attempt in $(seq 1 20); do
    log=$(mktemp)
    if $PIP download -q -d "$DIR" --find-links "$DIR" --python-version "$PYV" \
        --only-binary=:all: "${PLATFORMS[@]}" "${PKGS[@]}" 2>"$log"; then
        rm -f "$log"
        break
    fi
    # a dependency without a wheel: build one (pure Python) and try again
    req=$(grep -oP "No matching distribution found for \K[^ ]+" "$log" | head -n 1 || true)
    if [ -z "$req" ]; then
        cat "$log" >&2
        exit 1
    fi
    echo "building a wheel of $req (PyPI has only its source)"
    $PIP wheel -q --no-deps -w "$DIR" "$req"
    rm -f "$log"
done
$PIP download -q --no-deps -d "$DIR" --python-version "$PYV" --only-binary=:all: medmnist==3.0.2
echo "$(ls "$DIR" | wc -l) wheels in $DIR for Python $PYV"

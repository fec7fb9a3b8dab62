#!/usr/bin/env bash
# The demo: set up (first time only), then the whole search on the built-in tiny zoo
# (trained here on first use), local Ray, MLflow in a sqlite file in the run folder.
# Extra arguments go to `jradievo search` (e.g. --out runs/demo, --set search.generations=4).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
export RAY_USAGE_STATS_ENABLED=0
exec "${JRADIEVO_VENV:-$ROOT/.venv}/bin/jradievo" search "$@"

#!/usr/bin/env bash
# The tests: set up (first time only), then pytest (slow-marked tests are excluded by default;
# pass `-m slow` or `-m ""` to run them). Fails when pytest collects nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
export RAY_USAGE_STATS_ENABLED=0
cd "$ROOT"
set +e
"${JRADIEVO_VENV:-$ROOT/.venv}/bin/python" -m pytest "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit $rc

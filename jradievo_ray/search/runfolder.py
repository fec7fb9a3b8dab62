"""The files of a search run folder, named in one place.

Every file is written atomically (export/ is moved into place whole), so a run killed
at any moment leaves a folder that `jradievo search --resume` continues. `result.json` is
written last: its presence means the run is finished.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONFIG = "config.yaml"  # the resolved config; --resume reads it
CHECKPOINT = "checkpoint.pkl"
JOURNAL = "evaluations.jsonl"  # every genome evaluation, as it arrives
INFLIGHT = "inflight.json"  # steady-state dispatch: genomes sent and not yet returned
RESULT = "result.json"
EXPORT = "export"
FITNESS_PLOT = "fitness.png"
PARETO_PLOT = "pareto.png"


def finished_result(out_dir: Path) -> dict[str, Any] | None:
    """The result of a finished run, or None while it is not finished."""
    path = out_dir / RESULT
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def holds_search(out_dir: Path) -> bool:
    """Whether a search has started in this folder (finished or not)."""
    return any((out_dir / name).exists() for name in (RESULT, CHECKPOINT, JOURNAL))

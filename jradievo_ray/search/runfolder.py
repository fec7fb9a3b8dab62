"""The files of a search run folder, named in one place.

Every file is written atomically (or, for export/, moved into place whole), so a run killed
at any moment leaves a folder that `jradievo search --resume` continues. `result.json` is
written last: its presence means the run is finished.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

CONFIG = "config.yaml"  # the resolved config; --resume reads it
CHECKPOINT = "checkpoint.pkl"
RESULT = "result.json"
EXPORT = "export"
FITNESS_PLOT = "fitness.png"


def finished_result(out_dir: Path) -> dict[str, Any] | None:
    """The result of a finished run, or None while it is not finished."""
    path = out_dir / RESULT
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def partial_export(out_dir: Path) -> Path:
    """Where the export is written before it is moved to export/ (cleared first)."""
    partial = out_dir / f".{EXPORT}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    return partial


def move_export_into_place(partial: Path, out_dir: Path) -> Path:
    final = out_dir / EXPORT
    if final.exists():  # a complete export of an earlier, killed attempt: same recipe
        shutil.rmtree(final)
    partial.rename(final)
    return final

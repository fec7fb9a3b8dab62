"""Search state after each generation, written atomically so a killed driver resumes.

Holds the strategy's state, hall of fame, the search's RNG state, the per-generation log,
the MLflow run id, and once scored the held-out rows. Every genome's result is in the journal
(journal.py), which the search reads back beside it. Pickle: it is written and read only
by the driver.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jradievo_ray.errors import UserError
from jradievo_ray.search.runfolder import CHECKPOINT
from jradievo_ray.storage import write_atomic

VERSION = 4


@dataclass
class SearchState:
    gen: int = -1  # last completed generation; -1 = nothing evaluated yet
    strategy: Any = None  # what the strategy learned (strategy.py), after `gen`
    hall_of_fame: list[tuple[list[float], float]] = field(default_factory=list)
    rng_state: Any = None
    journaled: int = 0  # distinct genomes in the journal at this checkpoint
    generations: list[dict[str, Any]] = field(default_factory=list)
    genome_table: list[dict[str, Any]] = field(default_factory=list)
    mlflow_run_id: str | None = None
    seconds: float = 0.0
    final_rows: dict[str, Any] | None = None  # held-out table etc., once scored


def save(state: SearchState, out_dir: Path) -> Path:
    payload = pickle.dumps({"version": VERSION, "state": state})
    return write_atomic(out_dir / CHECKPOINT, payload)


def load(out_dir: Path) -> SearchState | None:
    path = out_dir / CHECKPOINT
    if not path.is_file():
        return None
    with path.open("rb") as fh:
        payload = pickle.load(fh)
    if payload.get("version") != VERSION:
        raise UserError(
            f"{path}: checkpoint version {payload.get('version')}, this jradievo reads "
            f"{VERSION}: resume it with the jradievo that wrote it"
        )
    return payload["state"]

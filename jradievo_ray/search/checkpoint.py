"""Search state after each generation, written atomically so a killed driver resumes.

Holds population, hall of fame, the GA's RNG state, the genome->result cache, the
per-generation log and the MLflow run id. Pickle: it is written and read only by the driver.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHECKPOINT = "checkpoint.pkl"
VERSION = 1


@dataclass
class SearchState:
    gen: int = -1  # last completed generation; -1 = nothing evaluated yet
    population: list[tuple[list[float], float]] = field(default_factory=list)
    hall_of_fame: list[tuple[list[float], float]] = field(default_factory=list)
    rng_state: Any = None
    cache: dict[tuple[float, ...], dict[str, Any]] = field(default_factory=dict)
    generations: list[dict[str, Any]] = field(default_factory=list)
    genome_table: list[dict[str, Any]] = field(default_factory=list)
    mlflow_run_id: str | None = None
    seconds: float = 0.0


def save(state: SearchState, out_dir: Path) -> Path:
    path = out_dir / CHECKPOINT
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        pickle.dump({"version": VERSION, "state": state}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def load(out_dir: Path) -> SearchState | None:
    path = out_dir / CHECKPOINT
    if not path.is_file():
        return None
    with path.open("rb") as fh:
        payload = pickle.load(fh)
    if payload.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {payload.get('version')} != {VERSION}")
    return payload["state"]

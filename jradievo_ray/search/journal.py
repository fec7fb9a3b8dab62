"""The evaluation journal: every finished genome evaluation, appended and flushed to disk
as it arrives, one JSON object a line (`evaluations.jsonl` in the run folder):

    {"genome": [...], "fitness": float, "metrics": {...} | null, "error": null | str,
     "actor": int, "node": str | null, "attempt": int,
     "seconds": {"merge", "weight_load", "generate", "score"} | null}

`fitness` is the one the search used (a failed genome's is the penalty). The search's
genome -> result cache is rebuilt from the journal on resume, so a killed driver
re-evaluates nothing the journal holds; a line cut short by the kill is dropped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jradievo_ray.errors import UserError
from jradievo_ray.search.evaluation import Failure, Outcome

FIELDS = ("genome", "fitness", "metrics", "error", "actor", "node", "attempt", "seconds")


@dataclass(frozen=True)
class Placement:
    """Where an evaluation ran: the pool's actor slot, its Ray node, and which try it was."""

    actor: int
    node: str | None
    attempt: int


def entry(genome: list[float], outcome: Outcome, placement: Placement, penalty: float) -> dict:
    """The journal line of one finished evaluation."""
    failed = isinstance(outcome, Failure)
    return {
        "genome": [float(g) for g in genome],
        "fitness": penalty if failed else outcome.fitness,
        "metrics": None if failed else outcome.metrics,
        "error": outcome.error if failed else None,
        "actor": placement.actor,
        "node": placement.node,
        "attempt": placement.attempt,
        "seconds": None if failed else outcome.seconds,
    }


def read(path: Path) -> list[dict[str, Any]]:
    """The journal's entries; [] when there is none. A last line without its newline was
    cut short by a kill and is dropped; any other bad line is an error naming it."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    complete = lines[:-1]  # the part after the last newline is a torn write (or empty)
    out = []
    for number, line in enumerate(complete, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: not a journal line ({exc.msg})") from None
        if not isinstance(row, dict) or any(k not in row for k in FIELDS):
            raise UserError(f"{path}:{number}: a journal line needs {', '.join(FIELDS)}")
        out.append(row)
    return out


class Journal:
    """Appends entries to the journal file, each on disk before `append` returns."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_torn_tail()
        self._file = path.open("a", encoding="utf-8")

    def _drop_torn_tail(self) -> None:
        """Cut a last line left without its newline by a kill, so the next entry starts on
        a line of its own."""
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep < len(data):
            with self.path.open("r+b") as fh:
                fh.truncate(keep)

    def append(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

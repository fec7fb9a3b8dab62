"""Progress of a long stage with an ETA: a live bar on a terminal, a few lines in a log."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def format_eta(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """`update()` once per step. On a terminal (stderr) a tqdm bar with its ETA; otherwise
    `lines` log lines over the stage, each with the elapsed time and the ETA, so a log file
    is not flooded."""

    def __init__(self, name: str, total: int, log: Callable[[str], None], lines: int = 4):
        self.name, self.total, self.log = name, total, log
        self.lines = lines
        self.done = 0
        self.start = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"  {name}", file=sys.stderr, leave=True)

    def update(self, note: str = "") -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(note, refresh=False)
            self.bar.update(1)
            if self.done == self.total:
                self.bar.close()
            return
        if self.done * self.lines // self.total == (self.done - 1) * self.lines // self.total:
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        self.log(
            f"  {self.name}: step {self.done}/{self.total} {note} "
            f"({elapsed:.0f}s, ETA {format_eta(eta)})"
        )

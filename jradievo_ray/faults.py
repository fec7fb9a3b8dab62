"""Crash points for tests: `JRADIEVO_FAULT=<point>[:<n>]` SIGKILLs the process group (the
driver and its private Ray instance) the n-th time (default: the first) the run passes
<point>, so a test can stop a search at an exact phase instead of racing a timer.

Points of `jradievo search`: `started` (run folder and MLflow run made, Ray not yet up),
`evaluated` (an evaluation's result recorded), `checkpointed` (a generation's checkpoint
written), `heldout` (a held-out row scored), `export` (the export written, not yet moved
into place), `exported` (export/ in place, final MLflow logging not begun), `logging` (final
MLflow logging half done, result.json not yet written). Unset in normal use.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "JRADIEVO_FAULT"
_passes: Counter[str] = Counter()


def point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    wanted, _, nth = spec.partition(":")
    if wanted != name:
        return
    _passes[name] += 1
    if _passes[name] == int(nth or 1):
        os.killpg(os.getpgrp(), signal.SIGKILL)

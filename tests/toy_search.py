"""`python tests/toy_search.py OUT [--resume] [--steady] [--strategy=NAME] [--hang-if=PATH]`:
the search driver (`run_search`, as `jradievo search` runs it) on the toy objective,
generational or steady-state, with any strategy, in a process of its own, so that crash
tests can SIGKILL it and its private Ray at an exact phase (JRADIEVO_FAULT) and resume it.
OUT is a path or an s3:// run folder. With
`--hang-if=PATH`, every evaluation hangs while the file PATH exists (ToyEvaluator's hang_if),
so a test can look at a search that is certain to be running."""

from __future__ import annotations

import functools
import sys

import ray.cloudpickle
import toy_evaluator

from jradievo_ray.config import load_config
from jradievo_ray.search.run import run_search
from jradievo_ray.storage import run_folder

SETTINGS = [
    "data.heldout=null",
    "search.export_best=false",
    "search.population=6",
    "search.generations=3",
    "resources.num_actors=2",
    "resources.num_cpus_per_actor=0.5",
]


def main(argv: list[str]) -> int:
    ray.cloudpickle.register_pickle_by_value(toy_evaluator)
    steady = ["search.dispatch=steady_state", "search.evaluations=20"]
    chosen = [f"search.strategy={a.split('=', 1)[1]}" for a in argv if a.startswith("--strategy=")]
    cfg = load_config(None, SETTINGS + (steady if "--steady" in argv else []) + chosen)
    hang_if = [a.split("=", 1)[1] for a in argv if a.startswith("--hang-if=")]
    factory = functools.partial(toy_evaluator.ToyEvaluator, hang_if=(hang_if or [""])[0])
    out, mirror = run_folder(argv[0])
    run_search(cfg, out, resume="--resume" in argv, evaluator_factory=factory, mirror=mirror)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

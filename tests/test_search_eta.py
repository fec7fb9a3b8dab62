"""The progress line's ETA leaves out the time no actor was ready (actor start, model
loading, a lost node), so the first generation does not predict every later one to take
as long. A stub pool and a fake clock stand in for Ray: the logic around them is tested."""

from __future__ import annotations

import re

import toy_evaluator

from jradievo_ray.config import load_config
from jradievo_ray.search import loop as loop_module
from jradievo_ray.search.checkpoint import SearchState
from jradievo_ray.search.journal import Journal, Placement
from jradievo_ray.search.loop import SearchLoop
from jradievo_ray.search.steady import SteadyStateLoop


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


class StubPool:
    """Evaluates at once with the toy objective; the first call 'waits' 90 s for its
    actors and every call takes 10 s of work, on the fake clock."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.waited_seconds = 0.0

    def stream(self, tasks, on_result):
        for key, task in tasks:
            if not self.waited_seconds:
                self.clock.now += 90
                self.waited_seconds = 90.0
            self.clock.now += 10 / 6  # a generation of 6 genomes: 10 s
            outcome = toy_evaluator.ToyEvaluator().evaluate_genome(task.genome)
            on_result(key, outcome, Placement(0, "node", 1))

    def map(self, tasks, on_result):
        self.stream(iter(enumerate(tasks)), on_result)


def etas(kind, tmp_path, monkeypatch, sets):
    clock = Clock()
    monkeypatch.setattr(loop_module.time, "perf_counter", clock)
    cfg = load_config(None, ["data.heldout=null", "search.population=6", *sets])
    lines: list[str] = []
    journal = Journal(tmp_path / "evaluations.jsonl")
    kind(cfg, tmp_path, StubPool(clock), SearchState(), journal, {}, None, lines.append).run()
    return [re.search(r"ETA (\S+)", line).group(1) for line in lines if "ETA" in line]


def test_generational_eta_leaves_out_the_wait_for_actors(tmp_path, monkeypatch):
    found = etas(SearchLoop, tmp_path, monkeypatch, ["search.generations=3"])
    # generation 0 evaluates 6 genomes in 10 s of work (plus 90 s waiting): 3 more to go
    assert found[0] == "30s"


def test_steady_state_eta_leaves_out_the_wait_for_actors(tmp_path, monkeypatch):
    sets = ["search.dispatch=steady_state", "search.evaluations=24"]
    found = etas(SteadyStateLoop, tmp_path, monkeypatch, sets)
    assert found[0] == "30s"  # 6 evaluations in 10 s of work, 18 to go

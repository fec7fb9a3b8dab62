"""The search loop without Ray: a pool that evaluates each task at once in this process, and
known objectives over a space's bounds, for testing strategies and the loop around them."""

from __future__ import annotations

from pathlib import Path

from jradievo_ray.config import Config
from jradievo_ray.search import checkpoint, journal
from jradievo_ray.search.evaluation import STAGES, Evaluation, GenomeTask
from jradievo_ray.search.journal import Journal, Placement
from jradievo_ray.search.loop import SearchLoop, cache_from


class Killed(Exception):
    """Stands in for a driver killed mid-generation."""


class InlinePool:
    """Evaluates each GenomeTask with `objective(genome) -> metrics` as it comes; raises
    Killed instead of the result numbered `kill_at` (1-based), if given."""

    waited_seconds = 0.0

    def __init__(self, objective, kill_at: int | None = None):
        self.objective = objective
        self.kill_at = kill_at
        self.returned = 0

    def stream(self, tasks, on_result):
        for key, task in tasks:
            assert isinstance(task, GenomeTask)
            if self.kill_at is not None and self.returned + 1 == self.kill_at:
                raise Killed
            metrics = self.objective(task.genome)
            outcome = Evaluation(
                fitness=metrics["fitness"], metrics=metrics, seconds=dict.fromkeys(STAGES, 0.0)
            )
            self.returned += 1
            on_result(key, outcome, Placement(0, "inline", 1))

    def map(self, tasks, on_result):
        self.stream(iter(enumerate(tasks)), on_result)


def quadratic(bounds, at: float = 0.3):
    """Fitness 100 at low + at * (high - low) in every gene, falling with the mean squared
    distance in each gene's range; every objective is that fitness."""

    def objective(genome: list[float]) -> dict[str, float]:
        dist = [
            ((g - b.low) / (b.high - b.low) - at) ** 2 if b.high > b.low else 0.0
            for g, b in zip(genome, bounds, strict=True)
        ]
        fit = 100.0 * (1.0 - sum(dist) / len(dist))
        return {"n": 1, "rouge_l": fit, "bleu4": fit, "finding_f1": fit, "fitness": fit}

    return objective


def conflicting(bounds):
    """Finding F1 peaks at 0.25 of each range and ROUGE-L at 0.75: a real trade-off."""
    at_f1, at_rouge = quadratic(bounds, 0.25), quadratic(bounds, 0.75)

    def objective(genome: list[float]) -> dict[str, float]:
        f1, rouge = at_f1(genome)["fitness"], at_rouge(genome)["fitness"]
        fit = (f1 + rouge) / 2
        return {"n": 1, "rouge_l": rouge, "bleu4": rouge, "finding_f1": f1, "fitness": fit}

    return objective


def run_loop(cfg: Config, out: Path, objective, kill_at: int | None = None) -> SearchLoop:
    """Run (or resume, when `out` holds a checkpoint) the generational loop in-process;
    with `kill_at`, raise Killed instead of journaling the kill_at-th genome."""
    out.mkdir(parents=True, exist_ok=True)
    state = checkpoint.load(out) or checkpoint.SearchState()
    cache = cache_from(journal.read(out / "evaluations.jsonl"))
    log = Journal(out / "evaluations.jsonl")
    pool = InlinePool(objective, None if kill_at is None else kill_at - len(cache))
    loop = SearchLoop(cfg, out, pool, state, log, cache, log=lambda _: None)
    try:
        loop.run()
    finally:
        log.close()
    return loop

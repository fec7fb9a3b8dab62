"""The typed contract between the search driver and its evaluation actors.

The driver sends a task (a genome of the search, or a recipe for a held-out row); an actor
answers with an Evaluation, or a Failure when the genome could not be evaluated (the search
penalises it and goes on). No Ray here: the same types run in tests without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from jradievo_ray.merge.recipe import Recipe

STAGES = ("merge", "weight_load", "generate", "score")  # keys of Evaluation.seconds


@dataclass(frozen=True)
class Evaluation:
    """Scores (0-100) of one merge on one split, and the seconds of each stage. Per-finding
    F1 and the report texts only when the task asks for them (the held-out rows do)."""

    fitness: float
    metrics: dict[str, float]
    seconds: dict[str, float]
    per_finding: dict[str, float] | None = None
    texts: list[str] | None = None


@dataclass(frozen=True)
class Failure:
    """An evaluation that raised (or whose actor died too often): the reason, not fatal."""

    error: str
    traceback: str = ""


Outcome = Evaluation | Failure


@dataclass(frozen=True)
class GenomeTask:
    """Score one genome of the search on the search split."""

    genome: list[float]


@dataclass(frozen=True)
class RecipeTask:
    """Score one recipe on a split, with details (a held-out row); `shuffle_seed` shows
    each study another study's image."""

    recipe: Recipe
    split: str
    shuffle_seed: int | None = None


Task = GenomeTask | RecipeTask


class Evaluator(Protocol):
    def evaluate_genome(self, genome: list[float]) -> Evaluation: ...

    def evaluate_recipe(
        self, recipe: Recipe, split: str, shuffle_seed: int | None = None, details: bool = True
    ) -> Evaluation: ...


def run_task(evaluator: Evaluator, task: Task) -> Evaluation:
    if isinstance(task, GenomeTask):
        return evaluator.evaluate_genome(task.genome)
    return evaluator.evaluate_recipe(task.recipe, task.split, task.shuffle_seed)

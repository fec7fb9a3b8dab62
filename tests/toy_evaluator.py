"""A cheap, deterministic stand-in objective for testing the search machinery (GA, pool,
cache, checkpoint, MLflow) on real Ray. It is never the proof that merging works."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from jradievo_ray.errors import UserError
from jradievo_ray.search.evaluation import STAGES, Evaluation


class ToyEvaluator:
    """Fitness peaks at 0.5 in every gene. Genomes with drop_rate > fail_above raise;
    the first genome with drop_rate > die_above kills its actor's process once.

    On the Ray node `hang_on_node` no evaluation returns: it leaves a file in `hang_dir`
    and waits until its node is gone. Elsewhere, evaluation waits until `hang_dir` holds
    `after_hung` such files. So a node-loss test knows the doomed node's actors are all
    mid-evaluation when it removes that node after the n-th evaluation. While the file
    `hang_if` exists, every evaluation hangs the same way."""

    def __init__(
        self,
        fail_above: float = 2.0,
        die_above: float = 2.0,
        marker: str = "",
        bad: bool = False,
        bad_input: str = "",
        hang_on_node: str = "",
        hang_dir: str = "",
        after_hung: int = 0,
        hang_if: str = "",
    ):
        if bad:
            raise FileNotFoundError("no such model folder")
        if bad_input:
            raise UserError(bad_input)
        self.fail_above = fail_above
        self.die_above = die_above
        self.marker = Path(marker) if marker else None
        self.hang = bool(hang_on_node) and hang_on_node == _node_id()
        self.hang_dir = Path(hang_dir) if hang_dir else None
        self.after_hung = after_hung
        self.hang_if = Path(hang_if) if hang_if else None

    def evaluate_genome(self, genome: list[float]) -> Evaluation:
        if self.hang_dir and self.hang:
            (self.hang_dir / str(os.getpid())).touch()
            threading.Event().wait()
        if self.hang_if and self.hang_if.exists():
            threading.Event().wait()
        while self.hang_dir and len(list(self.hang_dir.iterdir())) < self.after_hung:
            time.sleep(0.05)
        if genome[0] > self.die_above and self.marker and not self.marker.exists():
            self.marker.write_text("died")
            os._exit(1)
        if genome[0] > self.fail_above:
            raise RuntimeError("merge blew up")
        fit = 100 - 50 * sum((g - 0.5) ** 2 for g in genome)
        metrics = {"n": 1, "rouge_l": fit, "bleu4": fit, "finding_f1": fit, "fitness": fit}
        return Evaluation(fitness=fit, metrics=metrics, seconds=dict.fromkeys(STAGES, 0.0))

    def evaluate_recipe(self, recipe, split, shuffle_seed=None, details=True) -> Evaluation:
        raise NotImplementedError("the toy objective scores genomes only")


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()

"""Live search metrics through `ray.util.metrics`, recorded by the driver.

Ray exports them on each node's metrics port with a `ray_` prefix (a Counter also gets
`_total`): `ray_jradievo_evaluations_total`, `ray_jradievo_stage_seconds_bucket` ... Every
metric carries a `run` tag (the search's MLflow run id), so that two searches on one
cluster are told apart. The metrics need an initialised Ray; the loop and the pool take a
SearchMetrics or None (tests of the loop without Ray pass none). dashboards/ reads them.
"""

from __future__ import annotations

from ray.util.metrics import Counter, Gauge, Histogram

from jradievo_ray.search.evaluation import STAGES

# Seconds of one stage of one evaluation: a toy stage takes milliseconds, an 8B merge or
# generation on a GPU minutes.
STAGE_BOUNDARIES = [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800]


class SearchMetrics:
    """The search's metrics, each tagged with `run`."""

    def __init__(self, run: str):
        tags = {"run": run}

        def gauge(name: str, description: str) -> Gauge:
            return Gauge(name, description, tag_keys=("run",)).set_default_tags(tags)

        self._evaluations = Counter(
            "jradievo_evaluations",
            "Genome evaluations returned, by status (ok, failed)",
            tag_keys=("run", "status"),
        ).set_default_tags(tags)
        self._stage_seconds = Histogram(
            "jradievo_stage_seconds",
            "Seconds of each stage (merge, weight_load, generate, score) of an evaluation",
            boundaries=STAGE_BOUNDARIES,
            tag_keys=("run", "stage"),
        ).set_default_tags(tags)
        self._replacements = Counter(
            "jradievo_actor_replacements",
            "Evaluation actors lost and replaced",
            tag_keys=("run",),
        ).set_default_tags(tags)
        self._best = gauge("jradievo_best_fitness", "Best search fitness so far (0-100)")
        self._mean = gauge(
            "jradievo_mean_fitness", "Mean fitness of the last generation's population (0-100)"
        )
        self._generation = gauge(
            "jradievo_generation_done",
            "Last generation finished (steady-state dispatch: last round of `population`)",
        )
        self._done = gauge(
            "jradievo_evaluations_done", "Genome evaluations journaled, resumed runs included"
        )
        self._alive = gauge("jradievo_actors_alive", "Evaluation actors built and able to work")
        self._inflight = gauge(
            "jradievo_genomes_in_flight",
            "Tasks running on the actors (genomes; the held-out recipes at the end)",
        )

    def evaluation(self, error: str | None, seconds: dict[str, float] | None, done: int) -> None:
        """One journaled evaluation; `done`: evaluations journaled in all."""
        self._evaluations.inc(1, {"status": "failed" if error else "ok"})
        for stage in STAGES:
            if seconds and stage in seconds:
                self._stage_seconds.observe(seconds[stage], {"stage": stage})
        self._done.set(done)

    def generation(self, gen: int, best: float, mean: float) -> None:
        """A finished generation (steady-state: round)."""
        self._generation.set(gen)
        self._best.set(best)
        self._mean.set(mean)

    def actors(self, alive: int, in_flight: int) -> None:
        self._alive.set(alive)
        self._inflight.set(in_flight)

    def replaced(self) -> None:
        self._replacements.inc(1)

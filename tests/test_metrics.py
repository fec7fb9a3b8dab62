"""The search's live metrics reach Ray's metrics port with the values the run folder holds:
a toy search on a private Ray exporting metrics, read from http://127.0.0.1:<port>/metrics."""

from __future__ import annotations

import pytest
import ray
from metrics_search import STAGE_SLEEP_S, SearchThread, poll, samples, start_ray

from jradievo_ray.search import journal
from jradievo_ray.search.evaluation import STAGES


def value(port: int, name: str, **labels: str) -> float | None:
    """The sum of the samples of `name` whose labels include `labels`; None if none."""
    found = [v for tags, v in samples(port, name) if labels.items() <= tags.items()]
    return sum(found) if found else None


STEADY = ("search.dispatch=steady_state", "search.evaluations=14")


@pytest.mark.parametrize("settings", [(), STEADY], ids=["generational", "steady_state"])
def test_search_metrics_match_the_run_folder(tmp_path, settings):
    port, _ = start_ray(dashboard=False)
    try:
        hold = tmp_path / "hold"
        hold.touch()
        search = SearchThread(tmp_path / "run", hold, 0.75, settings=settings)
        search.start()
        # Both actors built, each holding a genome: what a busy search looks like.
        poll(
            lambda: (
                value(port, "ray_jradievo_actors_alive") == 2
                and value(port, "ray_jradievo_genomes_in_flight") == 2
            ),
            "2 actors alive with 2 genomes in flight",
        )
        hold.unlink()
        result = search.finish()
        run = result["mlflow"]["run_id"]
        entries = journal.read(tmp_path / "run" / "evaluations.jsonl")
        ok = sum(1 for e in entries if not e["error"])
        failed = len(entries) - ok
        assert ok and failed, "the toy search should have both outcomes"
        assert any(e["attempt"] == 2 for e in entries), "one actor should have died"

        expected: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {
            ("ray_jradievo_evaluations_total", (("status", "ok"),)): ok,
            ("ray_jradievo_evaluations_total", (("status", "failed"),)): failed,
            ("ray_jradievo_best_fitness", ()): result["best"]["search_fitness"],
            ("ray_jradievo_mean_fitness", ()): result["generations"][-1]["mean"],
            # generational: generations 0, 1, 2; steady-state: rounds 0, 1, 2 of 6 evaluations
            ("ray_jradievo_generation_done", ()): 2,
            ("ray_jradievo_evaluations_done", ()): len(entries),
            ("ray_jradievo_actor_replacements_total", ()): 1,
            ("ray_jradievo_actors_alive", ()): 0,  # the pool is shut down at the end
            ("ray_jradievo_genomes_in_flight", ()): 0,
        }
        for stage in STAGES:
            tags = (("stage", stage),)
            expected[("ray_jradievo_stage_seconds_count", tags)] = ok
            # each stage sleeps STAGE_SLEEP_S: none falls in the first bucket (0.01 s)
            expected[("ray_jradievo_stage_seconds_bucket", (*tags, ("le", "0.01")))] = 0

        def mismatches() -> dict:
            got = {k: value(port, k[0], run=run, **dict(k[1])) for k in expected}
            wrong = {
                k: (got[k], v)
                for k, v in expected.items()
                if got[k] is None or abs(got[k] - v) > 1e-6
            }
            return wrong

        poll(lambda: not mismatches() or None, "every metric at its final value")
        for stage in STAGES:
            total = value(port, "ray_jradievo_stage_seconds_sum", run=run, stage=stage)
            assert total is not None and total >= ok * STAGE_SLEEP_S * 0.9
    finally:
        ray.shutdown()

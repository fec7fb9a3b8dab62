"""The search machinery on a real local Ray with a toy objective."""

import functools
import json
import subprocess
import sys

import pytest
import ray.cloudpickle
import toy_evaluator
from mlflow.tracking import MlflowClient

from jradievo_ray.config import load_config
from jradievo_ray.errors import UserError
from jradievo_ray.search import checkpoint, journal
from jradievo_ray.search.actors import ActorPool, ActorStartError
from jradievo_ray.search.evaluation import STAGES, Evaluation, GenomeTask
from jradievo_ray.search.loop import WORST_FITNESS
from jradievo_ray.search.resources import ActorResources
from jradievo_ray.search.run import run_search

ray.cloudpickle.register_pickle_by_value(toy_evaluator)
pytestmark = pytest.mark.integration


def toy_config(**overrides):
    sets = [
        "data.heldout=null",
        "search.export_best=false",
        "search.population=6",
        "search.generations=3",
        "resources.num_actors=2",
        *[f"{k}={v}" for k, v in overrides.items()],
    ]
    return load_config(None, sets)


def test_search_runs_checkpoints_and_tracks(ray_local, tmp_path):
    cfg = toy_config()
    lines = []
    factory = functools.partial(toy_evaluator.ToyEvaluator)
    result = run_search(cfg, tmp_path, evaluator_factory=factory, log=lines.append)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["best"]["genome"] == result["best"]["genome"]
    assert [g["gen"] for g in saved["generations"]] == [0, 1, 2, 3]
    assert saved["generations"][0]["evaluated"] == 6
    # the cache: later generations re-use elites and unchanged offspring
    assert sum(g["evaluated"] for g in saved["generations"]) < 6 * 4
    assert all(g["max"] >= g["mean"] >= g["min"] for g in saved["generations"])
    assert sum(1 for line in lines if line.startswith("gen ")) == 4
    assert set(saved["best"]["recipe"]["sources"]) == {"vlm", "ja", "med"}
    entries = journal.read(tmp_path / "evaluations.jsonl")
    assert len(entries) == sum(g["evaluated"] for g in saved["generations"])
    assert len({tuple(e["genome"]) for e in entries}) == len(entries)  # each genome once
    for e in entries:
        assert set(e) == set(journal.FIELDS) and e["error"] is None
        assert e["actor"] in (0, 1) and e["attempt"] == 1 and isinstance(e["node"], str)
        assert set(e["seconds"]) == set(STAGES) and e["metrics"]["fitness"] == e["fitness"]
    assert saved["best"]["search_fitness"] > 90  # the toy optimum is 100

    client = MlflowClient(saved["mlflow"]["tracking_uri"])
    run = client.get_run(saved["mlflow"]["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["search.population"] == "6"
    hist = client.get_metric_history(run.info.run_id, "fitness_max")
    assert [m.step for m in hist] == [0, 1, 2, 3]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"genomes.json", "best_recipe.yaml", "fitness.png", "result.json"} <= artifacts
    assert checkpoint.load(tmp_path).gen == 3


def test_failed_genome_is_penalised_not_fatal(ray_local, tmp_path):
    cfg = toy_config()
    factory = functools.partial(toy_evaluator.ToyEvaluator, fail_above=0.45)
    lines = []
    run_search(cfg, tmp_path, evaluator_factory=factory, log=lines.append)
    state = checkpoint.load(tmp_path)
    failed = [e for e in journal.read(tmp_path / "evaluations.jsonl") if e["error"]]
    assert failed and all(v["fitness"] == WORST_FITNESS for v in failed)
    assert "merge blew up" in failed[0]["error"]
    assert any("genome failed" in line for line in lines)
    rows = [r for r in state.genome_table if r["error"]]
    assert rows and all(r["gene/drop_rate"] > 0.45 for r in rows)


def test_dead_actor_is_replaced_and_its_genome_retried(ray_local, tmp_path):
    marker = tmp_path / "died"
    factory = functools.partial(toy_evaluator.ToyEvaluator, die_above=0.0, marker=str(marker))
    logs = []
    pool = ActorPool(factory, 2, ActorResources(0.5, 0), max_retries=2, log=logs.append)
    genomes = [[0.5] * 8, [0.1] * 8, [0.3] * 8]
    placements = {}
    results = pool.map([GenomeTask(g) for g in genomes], lambda i, _, p: placements.update({i: p}))
    pool.shutdown()
    assert marker.exists() and pool.replaced == 1
    assert sorted(p.attempt for p in placements.values()) == [1, 1, 2]  # one retried
    assert all(isinstance(r, Evaluation) for r in results)
    assert [round(r.fitness, 6) for r in results] == [
        round(toy_evaluator.ToyEvaluator().evaluate_genome(g).fitness, 6) for g in genomes
    ]
    assert any("actor" in line and " lost " in line for line in logs)


def test_refuses_to_overwrite_and_resumes_a_run_killed_before_its_checkpoint(ray_local, tmp_path):
    factory = functools.partial(toy_evaluator.ToyEvaluator)
    once = run_search(toy_config(), tmp_path / "once", evaluator_factory=factory, log=print)
    with pytest.raises(UserError, match="--resume"):
        run_search(toy_config(), tmp_path / "once", evaluator_factory=factory)
    # A folder with nothing checkpointed yet (the CLI has saved its config.yaml) starts over.
    lines = []
    fresh = run_search(
        toy_config(), tmp_path / "new", resume=True, evaluator_factory=factory, log=lines.append
    )
    assert any("starting from the beginning" in line for line in lines)
    assert fresh["best"] == once["best"]


def test_cli_resume_of_a_folder_that_is_no_run(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "jradievo_ray.cli", "search", "--resume", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path}: not a search run folder (no config.yaml)"


def test_actor_that_cannot_start_stops_the_search_clearly(ray_local):
    pool = ActorPool(
        functools.partial(toy_evaluator.ToyEvaluator, bad=True), 1, ActorResources(0.5, 0), 2
    )
    with pytest.raises(ActorStartError, match="could not start"):
        pool.map([GenomeTask([0.5] * 8)])


def test_bad_input_an_actor_finds_is_a_user_error_not_a_crash(ray_local):
    message = "s3://b/search.jsonl:4: image not found: /cache/b/gone.png"
    factory = functools.partial(toy_evaluator.ToyEvaluator, bad_input=message)
    pool = ActorPool(factory, 1, ActorResources(0.5, 0), 2)
    with pytest.raises(UserError) as exc:
        pool.map([GenomeTask([0.5] * 8)])
    assert str(exc.value) == message

"""Every evaluated genome is a nested child run of the search's MLflow run, and a resumed
search logs no child twice. Real `run_search` on real Ray with the toy objective."""

from __future__ import annotations

import functools
import signal
from pathlib import Path

import pytest
import ray.cloudpickle
import toy_evaluator
from mlflow.tracking import MlflowClient
from test_crash_resume import toy_search
from toy_search import SETTINGS

from jradievo_ray.config import load_config
from jradievo_ray.search import checkpoint, journal
from jradievo_ray.search.evaluation import STAGES
from jradievo_ray.search.run import run_search
from jradievo_ray.search.space import make_space
from jradievo_ray.tracking import INDEX_TAG, PARENT_TAG, Tracker, default_uri

ray.cloudpickle.register_pickle_by_value(toy_evaluator)
pytestmark = pytest.mark.integration


def children(out: Path, run_id: str) -> list:
    client = MlflowClient(default_uri(out))
    exp = client.get_run(run_id).info.experiment_id
    return client.search_runs([exp], f"tags.`{PARENT_TAG}` = '{run_id}'", max_results=5000)


@pytest.mark.parametrize("steady", [False, True], ids=["generational", "steady_state"])
def test_each_journal_line_is_one_child_run(ray_local, tmp_path, steady):
    sets = SETTINGS + (["search.dispatch=steady_state", "search.evaluations=20"] if steady else [])
    cfg = load_config(None, sets)
    factory = functools.partial(toy_evaluator.ToyEvaluator, fail_above=0.45)
    result = run_search(cfg, tmp_path, evaluator_factory=factory, log=lambda _: None)
    entries = journal.read(tmp_path / "evaluations.jsonl")
    runs = children(tmp_path, result["mlflow"]["run_id"])
    assert sorted(int(r.data.tags[INDEX_TAG]) for r in runs) == list(range(len(entries)))
    space = make_space([m.name for m in cfg.models.merge_sources], cfg.merge)
    stage = "round" if steady else "generation"
    ends, total = [], 0  # journal lines up to the end of each generation (round)
    for row in result["generations"]:
        total += row["evaluated"]
        ends.append(total)
    failed = 0
    for run in runs:
        i = int(run.data.tags[INDEX_TAG])
        entry = entries[i]
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert run.info.status == "FINISHED"
        assert int(tags[stage]) == next(g for g, end in enumerate(ends) if i < end)
        assert tags["actor"] == str(entry["actor"]) and tags["node"] == str(entry["node"])
        for name, gene in zip(space.gene_names, entry["genome"], strict=True):
            assert float(params[f"gene/{name}"]) == gene
        recipe = space.decode(entry["genome"]).to_dict()
        assert float(params["recipe.drop_rate"]) == recipe["drop_rate"]
        assert float(params["recipe.sources.vlm.weight"]) == recipe["sources"]["vlm"]["weight"]
        assert metrics["fitness"] == entry["fitness"]
        if entry["error"]:
            failed += 1
            assert tags["error"] == entry["error"] and "rouge_l" not in metrics
        else:
            assert "error" not in tags
            for key in ("rouge_l", "bleu4", "finding_f1"):
                assert metrics[key] == entry["metrics"][key]
            assert {f"seconds/{s}" for s in STAGES} <= set(metrics)
    assert 0 < failed < len(runs)  # fail_above 0.45 fails some genomes, not all
    parent = MlflowClient(default_uri(tmp_path)).list_artifacts(result["mlflow"]["run_id"])
    artifacts = {a.path for a in parent}
    assert {"genomes.json", "result.json", "fitness.png"} <= artifacts


def test_off_logs_no_child(ray_local, tmp_path):
    cfg = load_config(None, [*SETTINGS, "tracking.log_children=false"])
    factory = functools.partial(toy_evaluator.ToyEvaluator)
    result = run_search(cfg, tmp_path, evaluator_factory=factory, log=lambda _: None)
    assert children(tmp_path, result["mlflow"]["run_id"]) == []


def test_unfinished_child_is_deleted_and_not_counted(tmp_path):
    """A kill between a child's creation and its end leaves it RUNNING: resume drops it
    (and logs that genome again), keeps the finished ones."""
    tracker = Tracker(default_uri(tmp_path), "e", tmp_path)
    client = tracker.client
    done = client.create_run(
        tracker.experiment_id, tags={PARENT_TAG: tracker.run_id, INDEX_TAG: "0"}
    )
    client.set_terminated(done.info.run_id)
    torn = client.create_run(
        tracker.experiment_id, tags={PARENT_TAG: tracker.run_id, INDEX_TAG: "1"}
    )
    assert tracker.logged_children() == {0}
    assert client.get_run(torn.info.run_id).info.lifecycle_stage == "deleted"
    assert client.get_run(done.info.run_id).info.lifecycle_stage == "active"
    tracker.finish()


@pytest.mark.slow  # 90 s of four killed drivers; the catch-up logic also runs in each resume test
def test_resume_after_kills_logs_each_genome_once(tmp_path):
    out = tmp_path / "run"
    kept: dict[int, str] = {}  # journal index -> child run id logged before a kill
    # After gen 1's checkpoint (its children not yet queued); at the resume's start, once
    # it has logged what the checkpoint holds; inside gen 2; after gen 3's checkpoint.
    for i, fault in enumerate(["checkpointed:2", "started", "evaluated:3", "checkpointed:2"]):
        killed = toy_search(out, *(["--resume"] if i else []), fault=fault)
        assert killed.returncode == -signal.SIGKILL, (fault, killed.stderr[-3000:])
        state = checkpoint.load(out)
        for run in children(out, state.mlflow_run_id):
            if run.info.status == "FINISHED":
                index = int(run.data.tags[INDEX_TAG])
                assert kept.setdefault(index, run.info.run_id) == run.info.run_id
        if fault == "started":  # the resume caught up on generations 0 and 1 first
            caught_up = state.generations[0]["evaluated"] + state.generations[1]["evaluated"]
            assert sorted(kept) == list(range(caught_up))
    run_id = state.mlflow_run_id
    done = toy_search(out, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    entries = journal.read(out / "evaluations.jsonl")
    runs = children(out, run_id)
    indexes = sorted(int(r.data.tags[INDEX_TAG]) for r in runs)
    assert indexes == list(range(len(entries)))  # each journal line once, none twice
    assert all(r.info.status == "FINISHED" for r in runs)
    by_index = {int(r.data.tags[INDEX_TAG]): r.info.run_id for r in runs}
    assert all(by_index[i] == run for i, run in kept.items())  # not logged again

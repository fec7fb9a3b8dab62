"""A search SIGKILLed (with its private Ray) at each phase resumes to the result of the
uninterrupted run. The kill comes at an exact point (JRADIEVO_FAULT, jradievo_ray/faults.py),
never from a timer; the driver is the real one (`run_search`) on the toy objective
(tests/toy_search.py). The phases that need real models (held-out rows, export) are in
test_e2e.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from jradievo_ray.search import checkpoint, journal

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parent / "toy_search.py"
GENERATION_KEYS = ("gen", "max", "mean", "min", "evaluated")


def toy_search(
    out: str | Path, *flags: str, fault: str | None = None
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "JRADIEVO_FAULT"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    if fault:
        env["JRADIEVO_FAULT"] = fault
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(out), *flags],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        start_new_session=True,  # the fault kills this process group: driver and its Ray
    )


def comparable(result: dict) -> dict:
    return {
        "best": result["best"],
        "generations": [{k: g[k] for k in GENERATION_KEYS} for g in result["generations"]],
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("toy") / "full"
    proc = toy_search(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "result.json").read_text())


# Each kill resumes into the next: a run that crashes again and again still ends as the
# uninterrupted one did. `name:n` is the n-th pass of that point within one process.
KILLS = [
    "started",  # run folder and MLflow run made; Ray, actors, generation 0 still to come
    "evaluated:2",  # inside generation 0
    "checkpointed:1",  # between generation 0's checkpoint and generation 1
    "evaluated:3",  # inside generation 1
    "checkpointed:3",  # after generations 1-3 are checkpointed, before the final logging
    "logging",  # final MLflow logging half done, no result.json yet
]


def test_killed_at_every_phase_resumes_to_the_uninterrupted_result(uninterrupted, tmp_path):
    out = tmp_path / "run"
    run_id = None
    for i, fault in enumerate(KILLS):
        killed = toy_search(out, *(["--resume"] if i else []), fault=fault)
        assert killed.returncode == -signal.SIGKILL, (fault, killed.stderr[-3000:])
        assert not (out / "result.json").exists()
        state = checkpoint.load(out)
        run_id = run_id or state.mlflow_run_id
        assert state.mlflow_run_id == run_id  # one MLflow run from start to end
    last = checkpoint.load(out)
    assert last.gen == 3  # the kills above reached every phase up to the end

    resumed = toy_search(out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert comparable(result) == comparable(uninterrupted)
    assert result["mlflow"]["run_id"] == run_id
    client = MlflowClient(result["mlflow"]["tracking_uri"])
    assert client.get_run(run_id).info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run_id, "fitness_max")]
    assert sorted(steps) == [g["gen"] for g in uninterrupted["generations"]]
    # Nothing journaled was evaluated again, and the genomes in flight at a kill were
    # evaluated once: the journal holds each genome once, as many as the uninterrupted run.
    genomes = [tuple(e["genome"]) for e in journal.read(out / "evaluations.jsonl")]
    assert len(set(genomes)) == len(genomes)
    assert len(genomes) == sum(g["evaluated"] for g in uninterrupted["generations"])

    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = toy_search(out, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "the search is finished; nothing to resume" in again.stdout
    assert "result.json" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


@pytest.mark.slow  # 80 s; every strategy's resume is tested in-process in test_strategies.py
def test_cma_es_killed_twice_resumes_to_its_uninterrupted_result(tmp_path):
    """What CMA-ES learns between generations is in the checkpoint (every strategy's
    resume is also tested in-process, in test_strategies.py)."""
    flag = "--strategy=cma_es"
    whole = toy_search(tmp_path / "whole", flag)
    assert whole.returncode == 0, whole.stderr[-3000:]
    expected = json.loads((tmp_path / "whole" / "result.json").read_text())
    out = tmp_path / "run"
    for i, fault in enumerate(["evaluated:8", "evaluated:6"]):  # in generations 1 and 2
        killed = toy_search(out, flag, *(["--resume"] if i else []), fault=fault)
        assert killed.returncode == -signal.SIGKILL, (fault, killed.stderr[-3000:])
    assert checkpoint.load(out).gen >= 1
    resumed = toy_search(out, flag, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert comparable(result) == comparable(expected)
    assert result["pareto"] == expected["pareto"]
    assert result["pareto"] and all(m["heldout"] is None for m in result["pareto"])
    genomes = [tuple(e["genome"]) for e in journal.read(out / "evaluations.jsonl")]
    assert len(genomes) == len(set(genomes)) == sum(g["evaluated"] for g in result["generations"])


def test_steady_state_killed_again_and_again_evaluates_each_genome_once(tmp_path):
    """Kills with genomes in flight (sent, not returned): the resumed search evaluates
    them first, once, and the journal ends with the budget, every genome once."""
    out = tmp_path / "steady"
    in_flight = set()  # sent and not returned when a kill came
    for i, fault in enumerate(["evaluated:3", "evaluated:5", "checkpointed:1", "evaluated:4"]):
        killed = toy_search(out, "--steady", *(["--resume"] if i else []), fault=fault)
        assert killed.returncode == -signal.SIGKILL, (fault, killed.stderr[-3000:])
        in_flight |= {tuple(g) for g in json.loads((out / "inflight.json").read_text())}
    assert in_flight
    done = toy_search(out, "--steady", "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    genomes = [tuple(e["genome"]) for e in journal.read(out / "evaluations.jsonl")]
    assert len(genomes) == 20 and len(set(genomes)) == 20
    assert in_flight <= set(genomes)
    assert json.loads((out / "inflight.json").read_text()) == []
    result = json.loads((out / "result.json").read_text())
    assert result["best"]["search_fitness"] == max(
        e["fitness"] for e in journal.read(out / "evaluations.jsonl")
    )

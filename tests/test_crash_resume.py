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

from jradievo_ray.search import checkpoint

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parent / "toy_search.py"
GENERATION_KEYS = ("gen", "max", "mean", "min", "evaluated")


def toy_search(out: Path, *flags: str, fault: str | None = None) -> subprocess.CompletedProcess:
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


@pytest.mark.parametrize(
    "fault",
    [
        "started",  # run folder and MLflow run made; Ray, actors, generation 0 still to come
        "evaluated:2",  # inside generation 0
        "checkpointed:1",  # between generation 0's checkpoint and generation 1
        "evaluated:9",  # inside a later generation
        "checkpointed:4",  # after the last generation, before the final logging
        "logging",  # final MLflow logging half done, no result.json yet
    ],
)
def test_killed_at_any_phase_resumes_to_the_uninterrupted_result(uninterrupted, tmp_path, fault):
    out = tmp_path / "run"
    killed = toy_search(out, fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (out / "result.json").exists()
    run_id = checkpoint.load(out).mlflow_run_id

    resumed = toy_search(out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert comparable(result) == comparable(uninterrupted)
    # One MLflow run from start to end, every generation's metrics in it once.
    assert result["mlflow"]["run_id"] == run_id
    client = MlflowClient(result["mlflow"]["tracking_uri"])
    assert client.get_run(run_id).info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run_id, "fitness_max")]
    assert sorted(steps) == [g["gen"] for g in uninterrupted["generations"]]


def test_resuming_a_finished_run_is_a_no_op(uninterrupted, tmp_path):
    out = tmp_path / "run"
    assert toy_search(out).returncode == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = toy_search(out, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "the search is finished; nothing to resume" in again.stdout
    assert "result.json" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

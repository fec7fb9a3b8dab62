"""A search tracked by a real `mlflow server` (sqlite backend, artifacts proxied to S3 on
`rclone serve s3` with an access key), registering its best merge, with no credential
from the environment anywhere in what it logs. Everything binds 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from mlflow.tracking import MlflowClient
from test_e2e import SMALL
from test_storage_s3 import free_port, serve_s3

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
MODEL = "jradievo-best"
# The S3 server's key (the mlflow server's AWS_* variables), and the search's environment:
# distinctive values that must appear in no param, tag, metric key or artifact.
SERVER_KEY = ("AKSRVJRADIEVO7Q2X", "SKSRVJRADIEVOz9Vw3kPq")
SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKCLIJRADIEVO4M8T",
    "AWS_SECRET_ACCESS_KEY": "SKCLIJRADIEVOr5Ns2hXy",
    "AWS_SESSION_TOKEN": "TOKJRADIEVOsess6Bq1",
    "MLFLOW_TRACKING_USERNAME": "userJRADIEVO3k",
    "MLFLOW_TRACKING_PASSWORD": "pwJRADIEVO8vLm2",
}


def wait_for(port: int, path: str = "", deadline_s: float = 120) -> None:
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        try:
            if path:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2):
                    return
            else:
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"nothing answered on 127.0.0.1:{port}{path} within {deadline_s:.0f}s")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its workers
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with serve_s3(tmp_path_factory.mktemp("s3root"), SERVER_KEY) as url:
        yield url


@pytest.fixture(scope="module")
def server(s3, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))},
        "AWS_ACCESS_KEY_ID": SERVER_KEY[0],
        "AWS_SECRET_ACCESS_KEY": SERVER_KEY[1],
        "AWS_ENDPOINT_URL": s3,
        "MLFLOW_S3_ENDPOINT_URL": s3,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    log = (folder / "server.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
        + ["--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
        + ["--artifacts-destination", "s3://bucket/mlflow"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for(port, "/health")
    yield f"http://127.0.0.1:{port}"
    stop(proc)
    log.close()


@pytest.fixture(scope="module")
def zoo() -> Path:
    from jradievo_ray.zoo import ensure_zoo

    return ensure_zoo()


@pytest.fixture(scope="module")
def search(server, zoo, tmp_path_factory) -> tuple[dict, Path]:
    """The demo zoo's small search, tracked by the server and registering its best merge,
    run by the CLI with the secrets in its environment."""
    out = tmp_path_factory.mktemp("search") / "run"
    sets = [*SMALL, f"tracking.mlflow_uri={server}", f"tracking.register_model={MODEL}"]
    env = {**os.environ, **SECRETS, "RAY_USAGE_STATS_ENABLED": "0"}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "jradievo"), "search", "--out", str(out)]
        + [arg for item in sets for arg in ("--set", item)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"small search with the server: {time.perf_counter() - t0:.0f}s")
    return json.loads((out / "result.json").read_text()), out


def s3_client(s3: str):
    return boto3.client(
        "s3",
        endpoint_url=s3,
        aws_access_key_id=SERVER_KEY[0],
        aws_secret_access_key=SERVER_KEY[1],
        region_name="us-east-1",
    )


def bucket_keys(s3: str) -> list[str]:
    pages = s3_client(s3).get_paginator("list_objects_v2").paginate(Bucket="bucket")
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def children(client: MlflowClient, run) -> list:
    query = f"tags.`mlflow.parentRunId` = '{run.info.run_id}'"
    return client.search_runs([run.info.experiment_id], query, max_results=1000)


def test_search_logs_to_the_server_and_its_artifacts_to_s3(search, server, s3):
    result, out = search
    client = MlflowClient(server)
    run = client.get_run(result["mlflow"]["run_id"])
    assert result["mlflow"]["tracking_uri"] == server and run.info.status == "FINISHED"
    assert run.data.params["search.population"] == "4"
    steps = {m.step for m in client.get_metric_history(run.info.run_id, "fitness_max")}
    assert steps == {0, 1, 2}
    assert "heldout/best/fitness" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"genomes.json", "fitness.png", "pareto.png", "result.json"} <= artifacts
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server
    keys = bucket_keys(s3)
    for name in ("genomes.json", "fitness.png", "result.json", "best_recipe.yaml"):
        assert any(
            k.startswith("mlflow/") and k.endswith(f"{run.info.run_id}/artifacts/{name}")
            for k in keys
        ), (name, keys)
    path = client.download_artifacts(run.info.run_id, "result.json", str(out.parent))
    logged = json.loads(Path(path).read_text())
    assert logged["best"] == result["best"]
    journal = (out / "evaluations.jsonl").read_text().splitlines()
    assert len(children(client, run)) == len(journal)


def test_best_merge_is_a_registered_version(search, server):
    result, out = search
    client = MlflowClient(server)
    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert len(versions) == 1
    version = versions[0]
    assert version.version == result["mlflow"]["model_version"]
    assert version.run_id == result["mlflow"]["run_id"]
    assert version.tags["export_dir"] == str(out / "export")
    assert (out / "export" / "merge.yaml").is_file()
    assert json.loads(version.tags["recipe"]) == result["best"]["recipe"]
    best = result["heldout"]["best"]
    assert float(version.tags["heldout/finding_f1"]) == best["finding_f1"]
    assert f"{best['fitness']:.2f}" in version.description
    assert str(out / "export") in version.description


def test_no_credential_lands_in_params_tags_or_artifacts(search, server, s3):
    result, _ = search
    client = MlflowClient(server)
    parent = client.get_run(result["mlflow"]["run_id"])
    runs = [parent, *children(client, parent)]
    secrets = [*SECRETS.values(), *SERVER_KEY]
    texts = []
    for run in runs:
        data = run.data
        texts += [*data.params, *data.params.values(), *data.tags, *data.tags.values()]
        texts += list(data.metrics)
    (version,) = client.search_model_versions(f"name = '{MODEL}'")
    texts += [version.description, *version.tags, *version.tags.values(), version.source]
    s3c = s3_client(s3)
    for key in bucket_keys(s3):
        texts.append(s3c.get_object(Bucket="bucket", Key=key)["Body"].read().decode("latin-1"))
    assert len(texts) > 100
    assert any(result["mlflow"]["run_id"] in t for t in texts[-len(bucket_keys(s3)) :])  # read
    leaks = [s for s in secrets if any(s in t for t in texts)]
    assert not leaks, leaks

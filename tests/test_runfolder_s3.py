"""A search run folder on s3:// (`--out s3://bucket/prefix`) against a real S3 server on
loopback (rclone serve s3, access key required): the bucket follows every write, and a
driver on another node (an empty JRADIEVO_HOME) resumes a search whose first driver was
killed, to the uninterrupted result."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys

import boto3
import pytest
from test_crash_resume import comparable, toy_search
from test_storage_s3 import s3_server  # noqa: F401 - the server fixture

from jradievo_ray import storage
from jradievo_ray.search import journal

pytestmark = pytest.mark.integration


@pytest.fixture
def s3(s3_server, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SKTEST")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return boto3.session.Session().client("s3")


def on_node(monkeypatch, tmp_path, name: str) -> None:
    """Make this process (and the drivers it starts) a node with its own empty home."""
    monkeypatch.setenv("JRADIEVO_HOME", str(tmp_path / name))


def objects(client, prefix: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket="bucket", Prefix=f"{prefix}/").get("Contents", [])
    return {
        o["Key"].removeprefix(f"{prefix}/"): client.get_object(Bucket="bucket", Key=o["Key"])[
            "Body"
        ].read()
        for o in listed
    }


def test_killed_search_resumes_from_the_bucket_on_another_node(s3, monkeypatch, tmp_path):
    reference = toy_search(tmp_path / "local")
    assert reference.returncode == 0, reference.stderr[-3000:]
    uninterrupted = json.loads((tmp_path / "local" / "result.json").read_text())

    target = "s3://bucket/runs/toy"
    on_node(monkeypatch, tmp_path, "node-a")
    killed = toy_search(target, fault="evaluated:9")  # generation 0 has 6, generation 1 under way
    assert killed.returncode == -9
    held = objects(s3, "runs/toy")
    lines = held["evaluations.jsonl"].decode().splitlines()
    assert len(lines) == 9  # the 9th was uploaded before the kill came
    assert {"checkpoint.pkl", "mlflow.db"} <= set(held) and "result.json" not in held
    assert not any(name.startswith(".") or "/." in name for name in held)

    on_node(monkeypatch, tmp_path, "node-b")  # nothing of node a's copy
    resumed = toy_search(target, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    held = objects(s3, "runs/toy")
    result = json.loads(held["result.json"])
    assert comparable(result) == comparable(uninterrupted)
    entries = [json.loads(line) for line in held["evaluations.jsonl"].decode().splitlines()]
    assert [json.loads(line) for line in lines] == entries[:9]
    assert len({tuple(e["genome"]) for e in entries}) == len(entries)  # none evaluated twice
    assert len(entries) == len(journal.read(tmp_path / "local" / "evaluations.jsonl"))
    # The run's MLflow store is in the bucket, its artifacts too.
    assert {"mlartifacts", "mlflow.db"} <= {name.split("/")[0] for name in held}
    assert any(name.endswith("/genomes.json") for name in held if name.startswith("mlartifacts/"))


def test_mirror_uploads_what_changed_and_pulls_it_elsewhere(s3, monkeypatch, tmp_path):
    on_node(monkeypatch, tmp_path, "node-a")
    mirror = storage.RunMirror("s3://bucket/runs/unit/")
    local = mirror.pull()
    assert mirror.uri == "s3://bucket/runs/unit" and not any(local.iterdir())
    (local / "a.txt").write_text("one")
    (local / ".a.txt.tmp").write_text("a write in progress")
    (local / "sub").mkdir()
    (local / "sub" / "b.bin").write_bytes(b"\0" * 10)
    mirror.push()
    assert objects(s3, "runs/unit") == {"a.txt": b"one", "sub/b.bin": b"\0" * 10}
    stat = (local / "a.txt").stat()
    (local / "a.txt").write_text("two")  # same size; same mtime too, as within one tick
    os.utime(local / "a.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    mirror.push()
    assert objects(s3, "runs/unit")["a.txt"] == b"two"

    on_node(monkeypatch, tmp_path, "node-b")
    elsewhere = storage.RunMirror("s3://bucket/runs/unit").pull()
    assert elsewhere != local and (elsewhere / "a.txt").read_text() == "two"
    assert not (elsewhere / ".a.txt.tmp").exists()


def test_a_sqlite_store_is_uploaded_as_a_consistent_snapshot_mid_write(s3, monkeypatch, tmp_path):
    """MLflow's background thread writes mlflow.db while the search pushes: the bucket gets
    the committed state, never a half-written file or the store's rollback journal."""
    on_node(monkeypatch, tmp_path, "node-a")
    mirror = storage.RunMirror("s3://bucket/runs/db")
    local = mirror.pull()
    with sqlite3.connect(local / "mlflow.db") as db:
        db.execute("CREATE TABLE runs (id INTEGER)")
        db.execute("INSERT INTO runs VALUES (1)")
    writer = sqlite3.connect(local / "mlflow.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO runs VALUES (2)")
    writer.execute("INSERT INTO runs VALUES (3)")
    assert (local / "mlflow.db-journal").exists()  # a transaction half done
    mirror.push()
    writer.execute("ROLLBACK")
    writer.close()
    uploaded = objects(s3, "runs/db")
    assert set(uploaded) == {"mlflow.db"}
    copy = tmp_path / "copy.db"
    copy.write_bytes(uploaded["mlflow.db"])
    with contextlib.closing(sqlite3.connect(copy)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT id FROM runs").fetchall() == [(1,)]


def test_cli_names_the_bucket_folder(s3, monkeypatch, tmp_path):
    on_node(monkeypatch, tmp_path, "node-a")
    s3.put_object(Bucket="bucket", Key="runs/started/evaluations.jsonl", Body=b"")

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "jradievo_ray.cli", "search", *args],
            capture_output=True,
            text=True,
            timeout=300,
        )

    nothing = cli("--resume", "s3://bucket/runs/none")
    assert nothing.returncode == 2
    assert nothing.stderr.strip() == (
        "error: s3://bucket/runs/none: not a search run folder (no config.yaml)"
    )
    taken = cli("--out", "s3://bucket/runs/started")
    assert taken.returncode == 2
    assert taken.stderr.strip() == (
        "error: s3://bucket/runs/started: holds a search already; use --resume "
        "s3://bucket/runs/started or another --out"
    )
    bare = cli("--out", "s3://bucket")
    assert bare.returncode == 2
    assert (
        bare.stderr.strip() == "error: s3://bucket: a run folder needs a prefix: s3://bucket/folder"
    )

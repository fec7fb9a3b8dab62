"""Model folders and data on `s3://` (any S3-compatible store) or local paths.

An `s3://bucket/prefix` folder is copied once into a local cache
(`$JRADIEVO_HOME/s3/<bucket>/<prefix>`) and used from there, so every loader keeps
reading plain local folders. Credentials and endpoint come from the usual AWS settings
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, profiles ...); nothing
is contacted unless a path says `s3://`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from jradievo_ray import paths
from jradievo_ray.errors import UserError

S3 = "s3://"
COMPLETE = ".jradievo-complete"


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix(S3).partition("/")
    if not bucket:
        raise UserError(f"{uri}: no bucket in s3:// URI")
    return bucket, key.strip("/")


def _client():
    import boto3

    # A fresh session reads the current credentials (boto3's default session caches them).
    return boto3.session.Session().client("s3")


def _fail(uri: str, exc: Exception) -> UserError:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        return UserError(f"{uri}: {exc.response.get('Error', {}).get('Code', 'error')}: {exc}")
    return UserError(f"{uri}: {type(exc).__name__}: {exc}")


def list_objects(uri: str) -> list[tuple[str, int]]:
    """(key, size) of every object under an s3:// prefix."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_uri(uri)
    try:
        pages = (
            _client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else "")
        )
        return [(o["Key"], o["Size"]) for page in pages for o in page.get("Contents", [])]
    except (BotoCoreError, ClientError) as exc:
        raise _fail(uri, exc) from None


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write a local file so that a crash leaves the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_folder_atomic(
    out: str | Path, fill: Callable[[Path], None], *, replace: bool = False
) -> Path:
    """Fill a fresh hidden folder beside `out` (`.<name>.partial`, cleared of any killed
    attempt's leftovers), then move it to `out` whole: a crash leaves the old folder (or
    none) or the new one, never half, and a failure leaves nothing behind. `replace`: an
    existing `out` is replaced; otherwise it must be missing or empty."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    if not replace and out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: exists and is not empty")
    tmp, old = (out.with_name(f".{out.name}.{part}") for part in ("partial", "old"))
    for stale in (tmp, old):
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        if out.exists():  # os.replace needs an empty target: move the old one aside first
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def materialize(uri: str) -> str:
    """A local path for `uri`: unchanged if local, else a cached copy of the s3:// folder
    (or single object). A partial download never looks complete."""
    if not uri.startswith(S3):
        return uri
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_uri(uri)
    local = paths.home() / "s3" / bucket / prefix
    if (local / COMPLETE).exists():
        return str(local)
    if local.is_file():
        return str(local)
    objects = list_objects(uri)
    client = _client()
    try:
        if not objects:  # maybe a single object, e.g. a JSONL manifest
            local.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.")
            os.close(fd)
            client.download_file(bucket, prefix, tmp)
            os.replace(tmp, local)
            return str(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=local.parent, prefix=f".{local.name}."))
        for key, _size in objects:
            dest = staging / key[len(prefix) :].lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key, str(dest))
        (staging / COMPLETE).write_text(uri)
        if local.exists():
            shutil.rmtree(local)
        staging.rename(local)
    except (BotoCoreError, ClientError) as exc:
        raise _fail(uri, exc) from None
    return str(local)

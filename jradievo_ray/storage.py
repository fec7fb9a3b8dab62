"""Model folders and data on `s3://` (any S3-compatible store) or local paths.

An `s3://bucket/prefix` folder is copied once into a local cache
(`$JRADIEVO_HOME/s3/<bucket>/<prefix>`) and used from there, so every loader keeps
reading plain local folders. Credentials and endpoint come from the usual AWS settings
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, profiles ...); nothing
is contacted unless a path says `s3://`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from jradievo_ray import paths
from jradievo_ray.errors import UserError

S3 = "s3://"
COMPLETE = ".jradievo-complete"
DIGEST_LIMIT = 64 << 20  # run-folder files up to this size are compared by content


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


SQLITE_TRANSIENT = ("-journal", "-wal", "-shm")  # files of a sqlite write in progress


class RunMirror:
    """A search run folder kept at an s3:// prefix and worked on in a local copy
    (`$JRADIEVO_HOME/runs/<bucket>/<prefix>`). `pull` replaces the copy with what the
    bucket holds, so a driver on any node starts or resumes from it; `push` uploads every
    file that changed since the last push, and the search pushes after each write
    (journal line, checkpoint, result), so the bucket never lags what the run has
    recorded. Hidden files (atomic writes in progress) are never uploaded."""

    def __init__(self, uri: str):
        self.bucket, self.prefix = split_uri(uri)
        if not self.prefix:
            raise UserError(f"{uri}: a run folder needs a prefix: s3://bucket/folder")
        self.uri = f"{S3}{self.bucket}/{self.prefix}"
        self.local = paths.home() / "runs" / self.bucket / self.prefix
        self._pushed: dict[str, tuple[int, int, int] | str] = {}  # path -> _signature
        self._s3 = None

    def _client(self):
        if self._s3 is None:
            self._s3 = _client()
        return self._s3

    def pull(self) -> Path:
        """Make the local copy exactly what the bucket holds; returns its path."""
        from botocore.exceptions import BotoCoreError, ClientError

        objects = list_objects(self.uri)
        shutil.rmtree(self.local, ignore_errors=True)
        self.local.mkdir(parents=True)
        self._pushed = {}
        client = self._client()
        try:
            for key, _size in objects:
                relative = key[len(self.prefix) :].lstrip("/")
                dest = self.local / relative
                dest.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(self.bucket, key, str(dest))
                self._pushed[relative] = _signature(dest)
        except (BotoCoreError, ClientError) as exc:
            raise _fail(self.uri, exc) from None
        return self.local

    def push(self) -> None:
        """Upload every file of the local copy that is new or changed."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._client()
        try:
            for path in sorted(self.local.rglob("*")):
                relative = path.relative_to(self.local).as_posix()
                if not path.is_file() or any(p.startswith(".") for p in relative.split("/")):
                    continue
                if relative.endswith(SQLITE_TRANSIENT):
                    continue  # a store's write in progress: the .db snapshot holds its result
                with _snapshot(path) as source:
                    if source is None:
                        continue  # gone since the listing
                    signature = _signature(source)
                    if self._pushed.get(relative) != signature:
                        client.upload_file(str(source), self.bucket, f"{self.prefix}/{relative}")
                        self._pushed[relative] = signature
        except (BotoCoreError, ClientError) as exc:
            raise _fail(self.uri, exc) from None


@contextlib.contextmanager
def _snapshot(path: Path) -> Iterator[Path | None]:
    """What to upload of `path`: a consistent copy of a sqlite store (MLflow's `mlflow.db`
    is written by a background thread while the search pushes: a plain copy could catch a
    transaction half done), the file itself otherwise; None if it no longer exists."""
    if path.suffix != ".db" or not path.exists():
        yield path if path.exists() else None
        return
    copy = path.with_name(f".{path.name}.snapshot")
    try:
        with (
            contextlib.closing(sqlite3.connect(path)) as src,
            contextlib.closing(sqlite3.connect(copy)) as dst,
        ):
            src.backup(dst)
        yield copy
    finally:
        copy.unlink(missing_ok=True)


def _signature(path: Path) -> tuple[int, int, int] | str:
    """What tells a changed file: the content of a small one (a file rewritten within one
    clock tick keeps its mtime), the inode, mtime and size of a large one (model shards,
    written once)."""
    stat = path.stat()
    if stat.st_size > DIGEST_LIMIT:
        return stat.st_ino, stat.st_mtime_ns, stat.st_size
    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


def run_folder(target: str) -> tuple[Path, RunMirror | None]:
    """The local folder a search works in for `--out`/`--resume` TARGET: the path itself,
    or for s3:// the mirror's local copy, pulled from the bucket."""
    if not target.startswith(S3):
        return Path(target), None
    mirror = RunMirror(target)
    return mirror.pull(), mirror

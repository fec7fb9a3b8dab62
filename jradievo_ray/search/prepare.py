"""Resolve and check every path of a config before Ray starts (errors name the field)."""

from __future__ import annotations

from pathlib import Path

from jradievo_ray import storage
from jradievo_ray.config import ZOO_PREFIX, Config
from jradievo_ray.errors import UserError


def _resolve(value: str) -> str:
    if not value.startswith(ZOO_PREFIX):
        return value
    from jradievo_ray.zoo import resolve_zoo_path  # trains the zoo on first use

    return resolve_zoo_path(value)


def _check_model(value: str, field: str, source: str) -> None:
    if value.startswith("s3://"):
        return
    path = Path(value)
    if not path.is_dir():
        raise UserError(f"{source}: {field}: model folder does not exist: {value}")
    if not (path / "config.json").is_file():
        raise UserError(
            f"{source}: {field}: not a Hugging Face model folder (no config.json): {value}"
        )


def _check_file(value: str, field: str, source: str) -> None:
    if not value.startswith("s3://") and not Path(value).is_file():
        raise UserError(f"{source}: {field}: file does not exist: {value}")


def _check_manifest(value: str, limit: int | None, field: str, source: str) -> None:
    """Every line the search will read, parsed and its image opened, before Ray starts
    (an s3:// manifest is checked by the actors, once they have fetched it)."""
    _check_file(value, field, source)
    if value.startswith("s3://"):
        return
    from jradievo_ray.data.manifest import load_manifest

    try:
        load_manifest(value, limit=limit)
    except UserError as exc:
        raise UserError(f"{source}: {field}: {exc}") from None


def check_paths(cfg: Config, source: str, data: bool = True) -> None:
    """Raise UserError for the first model folder, or with `data` data file or manifest
    line, that is missing or unusable."""
    m = cfg.models
    _check_model(m.base.path, "models.base.path", source)
    _check_model(m.vlm.path, "models.vlm.path", source)
    for i, s in enumerate(m.sources):
        _check_model(s.path, f"models.sources.{i}.path", source)
    if not data:
        return
    _check_manifest(cfg.data.search, cfg.data.search_limit, "data.search", source)
    if cfg.data.heldout:
        _check_manifest(cfg.data.heldout, cfg.data.heldout_limit, "data.heldout", source)


def resolve_paths(cfg: Config) -> Config:
    """Replace `zoo:` paths by real ones (building the demo zoo on first use)."""
    m = cfg.models
    models = m.model_copy(
        update={
            "base": m.base.model_copy(update={"path": _resolve(m.base.path)}),
            "vlm": m.vlm.model_copy(update={"path": _resolve(m.vlm.path)}),
            "sources": [s.model_copy(update={"path": _resolve(s.path)}) for s in m.sources],
        }
    )
    data = cfg.data.model_copy(
        update={
            "search": _resolve(cfg.data.search),
            "heldout": _resolve(cfg.data.heldout) if cfg.data.heldout else None,
        }
    )
    return cfg.model_copy(update={"models": models, "data": data})


def prepare(cfg: Config, source: str, data: bool = True) -> Config:
    """`cfg` with real paths, checked (`data`: also its manifests; an export needs none)."""
    resolved = resolve_paths(cfg)
    check_paths(resolved, source, data)
    return resolved


def _local_data(value: str) -> str:
    """An s3:// manifest comes with its folder (images are relative to it)."""
    if not value.startswith(storage.S3):
        return value
    folder, _, name = value.rpartition("/")
    return str(Path(storage.materialize(folder)) / name)


def localize(cfg: Config) -> Config:
    """Replace s3:// model folders and data files by local cached copies (per node)."""
    m = cfg.models
    models = m.model_copy(
        update={
            "base": m.base.model_copy(update={"path": storage.materialize(m.base.path)}),
            "vlm": m.vlm.model_copy(update={"path": storage.materialize(m.vlm.path)}),
            "sources": [
                s.model_copy(update={"path": storage.materialize(s.path)}) for s in m.sources
            ],
        }
    )
    data = cfg.data.model_copy(
        update={
            "search": _local_data(cfg.data.search),
            "heldout": _local_data(cfg.data.heldout) if cfg.data.heldout else None,
        }
    )
    return cfg.model_copy(update={"models": models, "data": data})

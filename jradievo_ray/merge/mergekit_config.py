"""The mergekit YAML subset `jradievo merge` reads (and `jradievo export` writes).

Keys: merge_method, base_model, models[].model, models[].parameters, parameters, dtype,
out_dtype, tokenizer_source; plus `name_map` (ignored by mergekit), the name map of a
VLM among the models when its architecture does not tell (preset or regex map).
Slices and modules are not supported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jradievo_ray.config import DType
from jradievo_ray.errors import MergeError
from jradievo_ray.merge.methods import get_method


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelEntry(_Frozen):
    model: str = Field(description="Model folder (local path).")
    parameters: dict[str, Any] | None = Field(
        default=None, description="Per-model parameters (weight, density, ...)."
    )


class MergekitConfig(_Frozen):
    merge_method: str = Field(description="A registered method (see jradievo_ray.merge.methods).")
    base_model: str | None = Field(default=None, description="Base for task vectors.")
    models: list[ModelEntry] = Field(min_length=1, description="Models to merge.")
    parameters: dict[str, Any] | None = Field(
        default=None, description="Shared parameters, and per-model defaults."
    )
    dtype: DType | None = Field(default=None, description="dtype tensors are loaded and merged in.")
    out_dtype: DType | None = Field(default=None, description="dtype written (default: dtype).")
    tokenizer_source: str | None = Field(
        default=None, description="'base' or a model folder whose tokenizer is copied."
    )
    name_map: str | dict[str, Any] | None = Field(
        default=None, description="jradievo only: how a VLM among the models names its LM."
    )

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(exclude_none=True), sort_keys=False)


def parse_mergekit_config(raw: Any, source: str) -> MergekitConfig:
    """Validate a raw mapping; check the method and its parameter names."""
    if not isinstance(raw, dict):
        raise MergeError(f"{source}: <root>: expected a mapping")
    try:
        cfg = MergekitConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        raise MergeError(f"{source}: {loc}: {err['msg']}") from None
    try:
        method = get_method(cfg.merge_method)
    except MergeError as exc:
        raise MergeError(f"{source}: merge_method: {exc}") from None
    for key in cfg.parameters or {}:
        if method.param(key) is None:
            raise MergeError(f"{source}: parameters.{key}: unknown parameter of {method.name}")
    for i, entry in enumerate(cfg.models):
        for key in entry.parameters or {}:
            param = method.param(key)
            if param is None:
                raise MergeError(
                    f"{source}: models.{i}.parameters.{key}: unknown parameter of {method.name}"
                )
            if not param.per_model:
                raise MergeError(
                    f"{source}: models.{i}.parameters.{key}: shared by all models, "
                    "set it under the top-level parameters"
                )
    return cfg


def load_mergekit_config(path: str | Path) -> MergekitConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise MergeError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MergeError(f"{path}: invalid YAML: {exc}") from None
    return parse_mergekit_config(raw, str(path))

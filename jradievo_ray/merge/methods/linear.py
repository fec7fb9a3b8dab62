"""mergekit's `linear`: weighted average of all inputs (a named base is one more input)."""

from __future__ import annotations

from typing import Any

import torch

from jradievo_ray.merge.methods.registry import Base, Inputs, Method, Param, register


def _linear(inputs: Inputs, shared: dict[str, Any], per: dict[str, list[Any]]) -> torch.Tensor:
    first = inputs.models[0]
    dtype = torch.float64 if first.dtype == torch.float64 else torch.float32
    result = torch.zeros_like(first, dtype=dtype)
    for tensor, w in zip(inputs.models, per["weight"], strict=True):
        result.add_(tensor.to(dtype), alpha=w)
    if shared["normalize"]:
        result.div_(sum(per["weight"]))
    return result.to(first.dtype)


register(
    Method(
        name="linear",
        params=(Param("weight", float, per_model=True), Param("normalize", bool, True)),
        kernel=_linear,
        base=Base.IGNORED,
    )
)

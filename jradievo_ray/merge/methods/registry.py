"""Registry of merge methods with mergekit 0.1.5's names, parameters and defaults.

Each family lives in its own module and registers its methods with `register`.
A kernel merges one tensor: `kernel(inputs, shared, per_model) -> Tensor`, where
`shared` maps shared parameter names to values and `per_model` maps per-model
parameter names to one value per entry of `inputs.models`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import torch

from jradievo_ray.errors import MergeError

REQUIRED = ...


class Base(StrEnum):
    REQUIRED = "required"  # task vectors are taken against the base
    OPTIONAL = "optional"
    IGNORED = "ignored"  # the base (if named) is just one more input


@dataclass(frozen=True)
class Param:
    name: str
    kind: type  # float or bool
    default: Any = REQUIRED
    per_model: bool = False  # mergekit's INPUT / NON_BASE scope, else SHARED


@dataclass
class Inputs:
    """One tensor of every input. `models` excludes the base unless the method ignores it."""

    name: str
    base: torch.Tensor | None
    models: list[torch.Tensor]
    generator: torch.Generator | None = None


@dataclass(frozen=True)
class Method:
    name: str
    params: tuple[Param, ...]
    kernel: Callable[[Inputs, dict[str, Any], dict[str, list[Any]]], torch.Tensor]
    base: Base = Base.REQUIRED
    min_models: int = 1  # inputs other than the base
    max_models: int | None = None
    random: bool = False

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in METHODS:
        raise ValueError(f"merge method {method.name!r} registered twice")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise MergeError(
            f"unknown merge_method {name!r}; known: {', '.join(sorted(METHODS))}"
        ) from None

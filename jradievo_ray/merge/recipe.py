"""Merge recipes: what the merge engine is asked to build, independent of any search.

A `MergeRecipe` is JRadiEvo's merge (DARE drop, TIES trim, weighted task vectors, one
scale), optionally per layer group; a `MethodRecipe` runs any registered merge method with
per-source and shared parameters. Both round-trip through `to_dict` / `recipe_from_dict`,
the form result.json and `jradievo export` use.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from jradievo_ray.merge.methods import get_method


@dataclass(frozen=True)
class SourceRecipe:
    weight: float
    density: float = 1.0


_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")
_ATTENTION = ("self_attn.", "input_layernorm.")


def group_index(lm_name: str, num_layers: int, groups: int, split_attn_mlp: bool) -> int | None:
    """Which layer group (and part) an LM tensor belongs to; None outside the layers.
    Group g holds the layers i with i * groups // num_layers == g (contiguous)."""
    m = _LAYER.search(lm_name)
    if m is None:
        return None
    g = int(m.group(1)) * groups // num_layers
    if not split_attn_mlp:
        return g
    return 2 * g + (0 if any(part in lm_name for part in _ATTENTION) else 1)


def _sources_dict(sources: dict[str, SourceRecipe]) -> dict:
    return {name: asdict(s) for name, s in sources.items()}


def _sources_from(d: dict) -> dict[str, SourceRecipe]:
    return {n: SourceRecipe(**s) for n, s in d.items()}


@dataclass(frozen=True)
class MergeRecipe:
    """What the merge engine needs, nothing DEAP-specific.

    `sources` applies to every tensor unless `groups` is set; then `groups[i]` applies to
    the layers of group i (see group_index) and `sources` to the tensors outside them.
    `trim`: TIES trim per tensor, or one magnitude threshold per source over the model.
    """

    sources: dict[str, SourceRecipe]
    drop_rate: float = 0.0
    scale: float = 1.0
    sign_consensus: bool = False
    groups: tuple[dict[str, SourceRecipe], ...] = ()
    split_attn_mlp: bool = False
    trim: Literal["tensor", "global"] = "tensor"

    def to_dict(self) -> dict:
        d = {
            "drop_rate": self.drop_rate,
            "scale": self.scale,
            "sign_consensus": self.sign_consensus,
            "sources": _sources_dict(self.sources),
        }
        if self.groups:
            d["groups"] = [_sources_dict(g) for g in self.groups]
            d["split_attn_mlp"] = self.split_attn_mlp
        if self.trim != "tensor":
            d["trim"] = self.trim
        return d

    @classmethod
    def from_dict(cls, d: dict) -> MergeRecipe:
        return cls(
            sources=_sources_from(d["sources"]),
            drop_rate=d.get("drop_rate", 0.0),
            scale=d.get("scale", 1.0),
            sign_consensus=d.get("sign_consensus", False),
            groups=tuple(_sources_from(g) for g in d.get("groups", ())),
            split_attn_mlp=d.get("split_attn_mlp", False),
            trim=d.get("trim", "tensor"),
        )

    def with_weight(self, name: str, weight: float) -> MergeRecipe:
        """The same recipe with one source's weight replaced everywhere (for ablations)."""
        if name not in self.sources:
            raise KeyError(f"no source {name!r} in recipe")

        def swap(sources: dict[str, SourceRecipe]) -> dict[str, SourceRecipe]:
            return {**sources, name: replace(sources[name], weight=weight)}

        return replace(self, sources=swap(self.sources), groups=tuple(swap(g) for g in self.groups))

    def sources_for(self, lm_name: str, num_layers: int) -> dict[str, SourceRecipe]:
        """The per-source recipe of one LM tensor."""
        if not self.groups:
            return self.sources
        parts = 2 if self.split_attn_mlp else 1
        g = group_index(lm_name, num_layers, len(self.groups) // parts, self.split_attn_mlp)
        return self.sources if g is None else self.groups[g]

    @property
    def is_deterministic(self) -> bool:
        return self.drop_rate == 0.0


def uniform_recipe(names: list[str]) -> MergeRecipe:
    """Plain average of all sources: equal weights summing to 1, no dropping or trimming."""
    return MergeRecipe(sources={n: SourceRecipe(weight=1.0 / len(names)) for n in names})


def single_source_recipe(names: list[str], keep: str) -> MergeRecipe:
    """Exactly one source's weights (the VLM with that LM's language weights)."""
    return MergeRecipe(sources={n: SourceRecipe(weight=float(n == keep)) for n in names})


@dataclass(frozen=True)
class MethodRecipe:
    """One registered method with per-source and shared parameter values."""

    method: str
    sources: dict[str, dict[str, float]]
    parameters: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "sources": {n: dict(p) for n, p in self.sources.items()},
            "parameters": dict(self.parameters),
        }

    @classmethod
    def from_dict(cls, d: dict) -> MethodRecipe:
        return cls(method=d["method"], sources=d["sources"], parameters=d.get("parameters", {}))

    def with_weight(self, name: str, weight: float) -> MethodRecipe:
        if name not in self.sources or "weight" not in self.sources[name]:
            raise KeyError(f"no weight of source {name!r} in recipe")
        return replace(
            self, sources={**self.sources, name: {**self.sources[name], "weight": weight}}
        )

    @property
    def is_deterministic(self) -> bool:
        return not get_method(self.method).random


Recipe = MergeRecipe | MethodRecipe


def recipe_from_dict(d: dict) -> Recipe:
    """MergeRecipe or MethodRecipe, from their to_dict() form."""
    return MethodRecipe.from_dict(d) if "method" in d else MergeRecipe.from_dict(d)

"""Generic merge space: the numeric parameters of any registered merge method, per source.

Genome: for each per-model numeric parameter of the method (weight, density, epsilon,
gamma ...), one gene per source; then one gene per shared numeric parameter (lambda, t).
Boolean parameters keep their mergekit defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

from jradievo_ray.config import Bounds, MergeConfig

DEFAULT_BOUNDS = {
    "weight": Bounds(low=0.0, high=1.0),
    "density": Bounds(low=0.1, high=1.0),
    "lambda": Bounds(low=0.0, high=2.0),
    "t": Bounds(low=0.0, high=1.0),
    "epsilon": Bounds(low=0.01, high=0.09),  # DELLA needs density +/- epsilon in (0, 1)
    "gamma": Bounds(low=0.0, high=0.1),
}


_STARTS = {"density": 1.0, "lambda": 1.0, "t": 0.5}  # seed genomes' non-weight values


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
        from jradievo_ray.merge.methods import get_method

        return not get_method(self.method).random


def recipe_from_dict(d: dict):
    """MergeRecipe or MethodRecipe, from their to_dict() form."""
    from jradievo_ray.genome import MergeRecipe

    return MethodRecipe.from_dict(d) if "method" in d else MergeRecipe.from_dict(d)


@dataclass(frozen=True)
class MethodSpace:
    names: tuple[str, ...]
    config: MergeConfig

    @cached_property
    def _params(self) -> tuple[list[str], list[str]]:
        from jradievo_ray.merge.methods import Base, get_method

        method = get_method(self.config.method)
        k = len(self.names)
        if k < method.min_models or (method.max_models is not None and k > method.max_models):
            raise ValueError(f"merge method {method.name} cannot merge {k} sources")
        if method.base == Base.IGNORED and k < 1:
            raise ValueError("no sources to merge")
        numeric = [p for p in method.params if p.kind is float]
        for p in numeric:
            if p.name not in self.config.method_bounds and p.name not in DEFAULT_BOUNDS:
                raise ValueError(f"merge.method_bounds.{p.name}: needed for method {method.name}")
        return [p.name for p in numeric if p.per_model], [
            p.name for p in numeric if not p.per_model
        ]

    def _bounds_of(self, name: str) -> Bounds:
        return self.config.method_bounds.get(name) or DEFAULT_BOUNDS[name]

    @property
    def size(self) -> int:
        per, shared = self._params
        return len(per) * len(self.names) + len(shared)

    @property
    def bounds(self) -> list[Bounds]:
        per, shared = self._params
        out = [self._bounds_of(p) for p in per for _ in self.names]
        return out + [self._bounds_of(p) for p in shared]

    @property
    def gene_names(self) -> list[str]:
        per, shared = self._params
        return [f"{p}/{n}" for p in per for n in self.names] + list(shared)

    def decode(self, genome: list[float]) -> MethodRecipe:
        if len(genome) != self.size:
            raise ValueError(f"genome has {len(genome)} genes, space expects {self.size}")
        g = [min(max(float(x), b.low), b.high) for x, b in zip(genome, self.bounds, strict=True)]
        per, shared = self._params
        k = len(self.names)
        sources = {
            n: {p: g[i * k + j] for i, p in enumerate(per)} for j, n in enumerate(self.names)
        }
        return MethodRecipe(
            method=self.config.method,
            sources=sources,
            parameters={p: g[len(per) * k + i] for i, p in enumerate(shared)},
        )

    def _start(self, param: str, weight: float) -> float:
        """A seed genome's value: `weight` for weights, density 1, lambda 1, t 0.5, else
        mid-range; within bounds."""
        b = self._bounds_of(param)
        value = weight if param == "weight" else _STARTS.get(param, (b.low + b.high) / 2)
        return min(max(value, b.low), b.high)

    def _encode(self, weights: list[float]) -> list[float]:
        per, shared = self._params
        return [self._start(p, w) for p in per for w in weights] + [
            self._start(p, 0.0) for p in shared
        ]

    def encode_uniform(self) -> list[float]:
        """Equal weights summing to 1, density 1, lambda 1, t 0.5, others mid-range."""
        return self._encode([1.0 / len(self.names)] * len(self.names))

    def encode_source(self, name: str) -> list[float]:
        """As encode_uniform, with weight 1 for `name` and 0 for the others."""
        return self._encode([float(n == name) for n in self.names])

"""Genome spaces: a flat float genome <-> a merge recipe. Pure; the only place bounds live.

JRadiEvo genome for k merge sources (the VLM first, then the text LMs):
    [drop_rate, density_1 .. density_k, weight_1 .. weight_k, scale]
merged = base + scale * merge_i(weight_i * trim(dare(source_i - base, drop_rate), density_i))

Layer-group genome (space "layer_groups"): the same, with a density and a weight per source
for each of `groups` contiguous layer groups (optionally separate for attention and MLP),
plus one set for the tensors outside the layers (embeddings, final norm, lm_head).

Method genome (space "method", any registered merge method): for each per-model numeric
parameter of the method (weight, density, epsilon, gamma ...), one gene per source; then
one gene per shared numeric parameter (lambda, t). Boolean parameters keep their mergekit
defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from jradievo_ray.config import Bounds, MergeConfig
from jradievo_ray.merge.methods import Base, get_method
from jradievo_ray.merge.recipe import MergeRecipe, MethodRecipe, Recipe, SourceRecipe


class Space(Protocol):
    """A genome space: genome length, per-gene bounds and names, and the two seeds."""

    @property
    def size(self) -> int: ...

    @property
    def bounds(self) -> list[Bounds]: ...

    @property
    def gene_names(self) -> list[str]: ...

    def decode(self, genome: list[float]) -> Recipe:
        """The recipe of a genome, each gene clipped to its bounds."""
        ...

    def encode_uniform(self) -> list[float]:
        """The genome closest to the plain average of the sources."""
        ...

    def encode_source(self, name: str) -> list[float]:
        """The genome closest to one source alone."""
        ...


DEFAULT_BOUNDS = {
    "weight": Bounds(low=0.0, high=1.0),
    "density": Bounds(low=0.1, high=1.0),
    "lambda": Bounds(low=0.0, high=2.0),
    "t": Bounds(low=0.0, high=1.0),
    "epsilon": Bounds(low=0.01, high=0.09),  # DELLA needs density +/- epsilon in (0, 1)
    "gamma": Bounds(low=0.0, high=0.1),
}


_STARTS = {"density": 1.0, "lambda": 1.0, "t": 0.5}  # seed genomes' non-weight values


def _clip(x: float, b: Bounds) -> float:
    return min(max(float(x), b.low), b.high)


@dataclass(frozen=True)
class JRadiEvoSpace:
    """The JRadiEvo genome over `names` (merge sources, VLM first)."""

    names: tuple[str, ...]
    config: MergeConfig

    @property
    def size(self) -> int:
        return 2 + 2 * len(self.names)

    @property
    def bounds(self) -> list[Bounds]:
        k = len(self.names)
        c = self.config
        return [c.drop_rate, *([c.density] * k), *([c.weight] * k), c.scale]

    @property
    def gene_names(self) -> list[str]:
        return [
            "drop_rate",
            *(f"density/{n}" for n in self.names),
            *(f"weight/{n}" for n in self.names),
            "scale",
        ]

    def decode(self, genome: list[float]) -> MergeRecipe:
        if len(genome) != self.size:
            raise ValueError(f"genome has {len(genome)} genes, space expects {self.size}")
        g = [_clip(x, b) for x, b in zip(genome, self.bounds, strict=True)]
        k = len(self.names)
        densities, weights = g[1 : 1 + k], g[1 + k : 1 + 2 * k]
        return MergeRecipe(
            sources={
                n: SourceRecipe(weight=w, density=d)
                for n, w, d in zip(self.names, weights, densities, strict=True)
            },
            drop_rate=g[0],
            scale=g[-1],
            sign_consensus=self.config.sign_consensus,
            trim=self.config.trim,
        )

    def encode_uniform(self) -> list[float]:
        """The genome closest to the plain average (used to seed the population)."""
        k = len(self.names)
        raw = [0.0, *([1.0] * k), *([1.0 / k] * k), 1.0]
        return [_clip(x, b) for x, b in zip(raw, self.bounds, strict=True)]

    def encode_source(self, name: str) -> list[float]:
        """The genome closest to one source alone (row source/<name> of the held-out table)."""
        k = len(self.names)
        raw = [0.0, *([1.0] * k), *(float(n == name) for n in self.names), 1.0]
        return [_clip(x, b) for x, b in zip(raw, self.bounds, strict=True)]


@dataclass(frozen=True)
class LayerGroupSpace:
    """[drop_rate, (densities, weights) for the rest and each layer group (part), scale]."""

    names: tuple[str, ...]
    config: MergeConfig

    @property
    def parts(self) -> list[str]:
        c = self.config
        subs = (".attn", ".mlp") if c.split_attn_mlp else ("",)
        return ["rest", *(f"g{g}{sub}" for g in range(c.groups) for sub in subs)]

    @property
    def size(self) -> int:
        return 2 + 2 * len(self.names) * len(self.parts)

    @property
    def bounds(self) -> list[Bounds]:
        c, k = self.config, len(self.names)
        per_part = [*([c.density] * k), *([c.weight] * k)]
        return [c.drop_rate, *(per_part * len(self.parts)), c.scale]

    @property
    def gene_names(self) -> list[str]:
        out = ["drop_rate"]
        for part in self.parts:
            out += [f"density/{part}/{n}" for n in self.names]
            out += [f"weight/{part}/{n}" for n in self.names]
        return [*out, "scale"]

    def decode(self, genome: list[float]) -> MergeRecipe:
        if len(genome) != self.size:
            raise ValueError(f"genome has {len(genome)} genes, space expects {self.size}")
        g = [_clip(x, b) for x, b in zip(genome, self.bounds, strict=True)]
        k = len(self.names)
        sets = []
        for p in range(len(self.parts)):
            chunk = g[1 + 2 * k * p : 1 + 2 * k * (p + 1)]
            sets.append(
                {
                    n: SourceRecipe(weight=w, density=d)
                    for n, d, w in zip(self.names, chunk[:k], chunk[k:], strict=True)
                }
            )
        return MergeRecipe(
            sources=sets[0],
            drop_rate=g[0],
            scale=g[-1],
            sign_consensus=self.config.sign_consensus,
            groups=tuple(sets[1:]),
            split_attn_mlp=self.config.split_attn_mlp,
            trim=self.config.trim,
        )

    def _encode(self, weights: list[float]) -> list[float]:
        k = len(self.names)
        raw = [0.0, *([*([1.0] * k), *weights] * len(self.parts)), 1.0]
        return [_clip(x, b) for x, b in zip(raw, self.bounds, strict=True)]

    def encode_uniform(self) -> list[float]:
        return self._encode([1.0 / len(self.names)] * len(self.names))

    def encode_source(self, name: str) -> list[float]:
        return self._encode([float(n == name) for n in self.names])


@dataclass(frozen=True)
class MethodSpace:
    """Any registered merge method's numeric parameters: per source, then shared."""

    names: tuple[str, ...]
    config: MergeConfig

    @cached_property
    def _params(self) -> tuple[list[str], list[str]]:
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


def make_space(names: list[str], config: MergeConfig) -> Space:
    """The genome <-> recipe space the config chooses."""
    if config.space == "layer_groups":
        return LayerGroupSpace(names=tuple(names), config=config)
    if config.space == "method":
        return MethodSpace(names=tuple(names), config=config)
    return JRadiEvoSpace(names=tuple(names), config=config)

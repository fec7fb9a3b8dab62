"""Merge space: flat float genome <-> MergeRecipe. Pure; the only place bounds live.

JRadiEvo genome for k merge sources (the VLM first, then the text LMs):
    [drop_rate, density_1 .. density_k, weight_1 .. weight_k, scale]
merged = base + scale * merge_i(weight_i * trim(dare(source_i - base, drop_rate), density_i))

Layer-group genome (space "layer_groups"): the same, with a density and a weight per source
for each of `groups` contiguous layer groups (optionally separate for attention and MLP),
plus one set for the tensors outside the layers (embeddings, final norm, lm_head).
The generic space (space "method", any registered merge method) lives in method_space.py.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Literal

from jradievo_ray.config import Bounds, MergeConfig


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


def make_space(names: list[str], config: MergeConfig):
    """The genome <-> recipe space the config chooses (all share size, bounds,
    gene_names, decode, encode_uniform, encode_source)."""
    if config.space == "layer_groups":
        return LayerGroupSpace(names=tuple(names), config=config)
    if config.space == "method":
        from jradievo_ray.method_space import MethodSpace

        return MethodSpace(names=tuple(names), config=config)
    return JRadiEvoSpace(names=tuple(names), config=config)

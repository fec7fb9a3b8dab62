"""Merge space: flat float genome <-> MergeRecipe. Pure; the only place bounds live.

JRadiEvo genome for k merge sources (the VLM first, then the text LMs):
    [drop_rate, density_1 .. density_k, weight_1 .. weight_k, scale]
merged = base + scale * merge_i(weight_i * trim(dare(source_i - base, drop_rate), density_i))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from jradievo_ray.config import Bounds, MergeConfig


@dataclass(frozen=True)
class SourceRecipe:
    weight: float
    density: float = 1.0


@dataclass(frozen=True)
class MergeRecipe:
    """What the merge engine needs, nothing DEAP-specific."""

    sources: dict[str, SourceRecipe]
    drop_rate: float = 0.0
    scale: float = 1.0
    sign_consensus: bool = False

    def to_dict(self) -> dict:
        return {
            "drop_rate": self.drop_rate,
            "scale": self.scale,
            "sign_consensus": self.sign_consensus,
            "sources": {name: asdict(s) for name, s in self.sources.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> MergeRecipe:
        return cls(
            sources={n: SourceRecipe(**s) for n, s in d["sources"].items()},
            drop_rate=d.get("drop_rate", 0.0),
            scale=d.get("scale", 1.0),
            sign_consensus=d.get("sign_consensus", False),
        )

    def with_weight(self, name: str, weight: float) -> MergeRecipe:
        """The same recipe with one source's weight replaced (for ablations)."""
        if name not in self.sources:
            raise KeyError(f"no source {name!r} in recipe")
        src = replace(self.sources[name], weight=weight)
        return replace(self, sources={**self.sources, name: src})

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
        )

    def encode_uniform(self) -> list[float]:
        """The genome closest to the plain average (used to seed the population)."""
        k = len(self.names)
        raw = [0.0, *([1.0] * k), *([1.0 / k] * k), 1.0]
        return [_clip(x, b) for x, b in zip(raw, self.bounds, strict=True)]


def make_space(names: list[str], config: MergeConfig) -> JRadiEvoSpace:
    return JRadiEvoSpace(names=tuple(names), config=config)

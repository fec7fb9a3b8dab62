"""`search.strategy: cma_es`: DEAP's CMA-ES (`deap.cma.Strategy`), as JRadiEvo (through
Optuna) and Sakana's evolutionary merge search their recipes.

CMA-ES works in the genome normalised to [0, 1]^d (each gene's bounds mapped to [0, 1]),
so one step size `search.sigma0` fits genes of any range. Generation 0 is the common
initial population (seeds and random genomes); the distribution then starts at its best
genome with step size sigma0 and samples `search.population` genomes a generation.

Bound handling is repair with a penalty: a sample outside [0, 1]^d is evaluated clipped
into the box (so every evaluated genome is within bounds), and CMA-ES is told the
sample itself with the clipped genome's fitness minus PENALTY times its squared distance
to the box. The penalty pulls the distribution back inside instead of letting its mean
drift out along a boundary, where every sample would clip to the same genome. CMA-ES
updates once per generation, so it runs generational dispatch only.
"""

from __future__ import annotations

import random

import numpy as np
from deap import cma

from jradievo_ray.config import Bounds, SearchConfig
from jradievo_ray.search.ga import individual
from jradievo_ray.search.strategy import Bounded, Scored

PENALTY = 100.0  # fitness points (of 0-100) per squared unit outside the normalised box


class CMAES(Bounded):
    def __init__(self, bounds: list[Bounds], config: SearchConfig, rng: random.Random):
        super().__init__(bounds, config, rng)
        self.width = [hi - lo for lo, hi in zip(self.low, self.high, strict=True)]
        self.cma: cma.Strategy | None = None
        self.samples: list[np.ndarray] = []  # the last ask's samples, for its tell

    def to_unit(self, genome: list[float]) -> np.ndarray:
        spans = zip(genome, self.low, self.width, strict=True)
        return np.array([(g - lo) / w if w else 0.0 for g, lo, w in spans])

    def to_genome(self, unit: np.ndarray) -> list[float]:
        return [lo + float(x) * w for x, lo, w in zip(unit, self.low, self.width, strict=True)]

    def ask(self) -> list[list[float]]:
        if self.cma is None:
            raise RuntimeError("CMA-ES asked before it was told generation 0")
        self.samples = self.with_numpy(self.cma.generate, np.asarray)
        return [self.clip(self.to_genome(np.clip(x, 0.0, 1.0))) for x in self.samples]

    def tell(self, scored: list[Scored]) -> None:
        if self.cma is None:  # generation 0: the distribution starts at its best genome
            best = max(scored, key=lambda s: s.fitness)
            self.cma = cma.Strategy(
                centroid=self.to_unit(best.genome),
                sigma=self.config.sigma0,
                lambda_=self.config.population,
            )
            return
        told = []
        for x, s in zip(self.samples, scored, strict=True):
            outside = float(np.sum((x - np.clip(x, 0.0, 1.0)) ** 2))
            told.append(individual(list(x), s.fitness - PENALTY * outside))
        self.cma.update(told)

    def state(self) -> cma.Strategy | None:
        return self.cma

    def restore(self, state: cma.Strategy | None) -> None:
        self.cma = state

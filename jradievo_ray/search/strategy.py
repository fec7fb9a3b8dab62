"""What a search strategy is to the driver (the registry is strategies.py).

A strategy is ask/tell over real-valued genomes within per-gene bounds: `first` gives
generation 0 (the seeds, then uniform random genomes: the same for every strategy, so
every one starts from the sources), `tell` takes a generation's scores, `ask` breeds the
next one. All randomness comes from the caller's `random.Random` (numpy's draws are
seeded from it), and `state()` holds whatever else `tell` learned, so a checkpoint of
both resumes a search to the uninterrupted result. Driver-only, like all of DEAP.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
from deap import tools

from jradievo_ray.config import Bounds, SearchConfig

T = TypeVar("T")


@dataclass(frozen=True)
class Scored:
    """One genome of a generation with its search fitness and its objective values (in
    `search.objectives` order; a failed genome scores the penalty on every one)."""

    genome: list[float]
    fitness: float
    objectives: tuple[float, ...]


class Strategy(Protocol):
    def first(self, seeds: list[list[float]]) -> list[list[float]]: ...

    def ask(self) -> list[list[float]]: ...

    def tell(self, scored: list[Scored]) -> None: ...

    def state(self) -> Any: ...

    def restore(self, state: Any) -> None: ...


class SteadyStrategy(Strategy, Protocol):
    """A strategy that can breed one genome at a time (steady-state dispatch)."""

    def child(self, population: list) -> list[float]: ...

    def random_genome(self) -> list[float]: ...


class Bounded:
    """What every strategy shares: the bounds, the RNG, generation 0 and clipping."""

    def __init__(self, bounds: list[Bounds], config: SearchConfig, rng: random.Random):
        self.low = [b.low for b in bounds]
        self.high = [b.high for b in bounds]
        self.config = config
        self.rng = rng

    def random_genome(self) -> list[float]:
        return [self.rng.uniform(lo, hi) for lo, hi in zip(self.low, self.high, strict=True)]

    def first(self, seeds: list[list[float]]) -> list[list[float]]:
        genomes = [list(s) for s in seeds[: self.config.population]]
        while len(genomes) < self.config.population:
            genomes.append(self.random_genome())
        return genomes

    def clip(self, genome: list[float]) -> list[float]:
        for j, (lo, hi) in enumerate(zip(self.low, self.high, strict=True)):
            genome[j] = min(max(genome[j], lo), hi)
        return genome

    def fixed_bounds(self) -> tuple[list[float], list[float]]:
        # DEAP's bounded operators divide by (high - low); widen degenerate genes a hair.
        high = [h if h > lo else lo + 1e-12 for lo, h in zip(self.low, self.high, strict=True)]
        return self.low, high

    def vary(self, offspring: list) -> list:
        """Cross neighbours (SBX, `crossover_prob` a pair) and mutate (polynomial,
        `mutation_prob` a genome) DEAP individuals in place, within the bounds."""
        c = self.config
        low, high = self.fixed_bounds()
        for i in range(1, len(offspring), 2):
            if self.rng.random() < c.crossover_prob:
                self.with_rng(
                    tools.cxSimulatedBinaryBounded, offspring[i - 1], offspring[i], c.eta, low, high
                )
        for ind in offspring:
            if self.rng.random() < c.mutation_prob:
                self.with_rng(tools.mutPolynomialBounded, ind, c.eta, low, high, 1.0 / len(low))
        return [self.clip(ind) for ind in offspring]

    def with_rng(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """DEAP's operators use the global `random`; run them on our RNG's state."""
        saved = random.getstate()
        random.setstate(self.rng.getstate())
        try:
            return fn(*args, **kwargs)
        finally:
            self.rng.setstate(random.getstate())
            random.setstate(saved)

    def with_numpy(self, fn: Callable[..., T], *args: Any) -> T:
        """DEAP's CMA-ES samples from numpy's global RNG: seed it from ours for the call."""
        saved = np.random.get_state()
        np.random.seed(self.rng.getrandbits(32))
        try:
            return fn(*args)
        finally:
            np.random.set_state(saved)

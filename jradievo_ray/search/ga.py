"""DEAP genetic algorithm over real-valued genomes. Driver-only; knows bounds, not recipes.

All randomness comes from one `random.Random` owned by the caller, so a checkpoint of
its state makes a resumed search identical to an uninterrupted one.
"""

from __future__ import annotations

import random

from deap import base, creator, tools

from jradievo_ray.config import Bounds, SearchConfig

if not hasattr(creator, "FitnessMax"):
    creator.create("FitnessMax", base.Fitness, weights=(1.0,))
if not hasattr(creator, "Individual"):
    creator.create("Individual", list, fitness=creator.FitnessMax)

Individual = creator.Individual


def individual(genes: list[float], fitness: float | None = None) -> Individual:
    ind = Individual(float(g) for g in genes)
    if fitness is not None:
        ind.fitness.values = (fitness,)
    return ind


def restore_hall_of_fame(hof: tools.HallOfFame, saved: list[tuple[list[float], float]]) -> None:
    """Refill an empty hall of fame with a checkpointed one, in its exact order. DEAP puts an
    individual before those of equal fitness, so the saved list goes in from the end: merges
    that tie (one source alone at any weight, under TIES) keep the order they had."""
    for genes, fitness in reversed(saved):
        hof.insert(individual(genes, fitness))


class GeneticAlgorithm:
    """Selection, SBX crossover and polynomial mutation within per-gene bounds, with elites."""

    def __init__(self, bounds: list[Bounds], config: SearchConfig, rng: random.Random):
        self.low = [b.low for b in bounds]
        self.high = [b.high for b in bounds]
        self.config = config
        self.rng = rng

    def random_genome(self) -> list[float]:
        return [self.rng.uniform(lo, hi) for lo, hi in zip(self.low, self.high, strict=True)]

    def initial_population(self, seeds: list[list[float]]) -> list[Individual]:
        pop = [individual(s) for s in seeds[: self.config.population]]
        while len(pop) < self.config.population:
            pop.append(individual(self.random_genome()))
        return pop

    def _with_rng(self, fn, *args, **kwargs):
        """DEAP operators use the global `random`; run them on our RNG's state."""
        saved = random.getstate()
        random.setstate(self.rng.getstate())
        try:
            return fn(*args, **kwargs)
        finally:
            self.rng.setstate(random.getstate())
            random.setstate(saved)

    def _fixed_bounds(self) -> tuple[list[float], list[float]]:
        # DEAP's bounded operators divide by (high - low); widen degenerate genes a hair.
        high = [h if h > lo else lo + 1e-12 for lo, h in zip(self.low, self.high, strict=True)]
        return self.low, high

    def _clip(self, ind: Individual) -> Individual:
        for j, (lo, hi) in enumerate(zip(self.low, self.high, strict=True)):
            ind[j] = min(max(ind[j], lo), hi)
        return ind

    def child(self, population: list[Individual]) -> Individual:
        """One offspring of an evaluated population (steady-state dispatch): two tournament
        winners, crossed and mutated with the same operators and rates as a generation."""
        c = self.config
        size = min(c.tournament_size, len(population))
        first, second = (
            individual(ind)
            for ind in self._with_rng(tools.selTournament, population, 2, tournsize=size)
        )
        low, high = self._fixed_bounds()
        if self.rng.random() < c.crossover_prob:
            self._with_rng(tools.cxSimulatedBinaryBounded, first, second, c.eta, low, high)
        if self.rng.random() < c.mutation_prob:
            self._with_rng(tools.mutPolynomialBounded, first, c.eta, low, high, 1.0 / len(low))
        return self._clip(first)

    def next_generation(self, population: list[Individual]) -> list[Individual]:
        """Offspring of an evaluated population: elites unchanged, the rest varied."""
        c = self.config
        elites = [
            individual(ind, ind.fitness.values[0]) for ind in tools.selBest(population, c.elites)
        ]
        n = len(population) - len(elites)
        chosen = self._with_rng(tools.selTournament, population, n, tournsize=c.tournament_size)
        offspring = [individual(ind) for ind in chosen]
        low, high = self._fixed_bounds()
        indpb = 1.0 / len(low)
        for i in range(1, len(offspring), 2):
            if self.rng.random() < c.crossover_prob:
                self._with_rng(
                    tools.cxSimulatedBinaryBounded, offspring[i - 1], offspring[i], c.eta, low, high
                )
        for ind in offspring:
            if self.rng.random() < c.mutation_prob:
                self._with_rng(tools.mutPolynomialBounded, ind, c.eta, low, high, indpb)
        return elites + [self._clip(ind) for ind in offspring]

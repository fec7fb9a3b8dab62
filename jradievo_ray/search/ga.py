"""`search.strategy: ga`: DEAP genetic algorithm over real-valued genomes (the default of
steady-state dispatch). Driver-only; knows bounds, not recipes."""

from __future__ import annotations

import random

from deap import base, creator, tools

from jradievo_ray.config import Bounds, SearchConfig
from jradievo_ray.search.strategy import Bounded, Scored

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


class GeneticAlgorithm(Bounded):
    """Selection, SBX crossover and polynomial mutation within per-gene bounds, with elites.
    Breeds from the last generation it was told of (elites included)."""

    def __init__(self, bounds: list[Bounds], config: SearchConfig, rng: random.Random):
        super().__init__(bounds, config, rng)
        self.population: list[Individual] = []

    def ask(self) -> list[list[float]]:
        return [list(ind) for ind in self.next_generation(self.population)]

    def tell(self, scored: list[Scored]) -> None:
        self.population = [individual(s.genome, s.fitness) for s in scored]

    def state(self) -> list[tuple[list[float], float]]:
        return [(list(ind), ind.fitness.values[0]) for ind in self.population]

    def restore(self, state: list[tuple[list[float], float]]) -> None:
        self.population = [individual(g, f) for g, f in state]

    def child(self, population: list[Individual]) -> list[float]:
        """One offspring of an evaluated population (steady-state dispatch): two tournament
        winners, crossed and mutated with the same operators and rates as a generation."""
        c = self.config
        size = min(c.tournament_size, len(population))
        first, second = (
            individual(ind)
            for ind in self.with_rng(tools.selTournament, population, 2, tournsize=size)
        )
        low, high = self.fixed_bounds()
        if self.rng.random() < c.crossover_prob:
            self.with_rng(tools.cxSimulatedBinaryBounded, first, second, c.eta, low, high)
        if self.rng.random() < c.mutation_prob:
            self.with_rng(tools.mutPolynomialBounded, first, c.eta, low, high, 1.0 / len(low))
        return self.clip(list(first))

    def next_generation(self, population: list[Individual]) -> list[Individual]:
        """Offspring of an evaluated population: elites unchanged, the rest varied."""
        c = self.config
        elites = [
            individual(ind, ind.fitness.values[0]) for ind in tools.selBest(population, c.elites)
        ]
        n = len(population) - len(elites)
        chosen = self.with_rng(tools.selTournament, population, n, tournsize=c.tournament_size)
        return elites + self.vary([individual(ind) for ind in chosen])

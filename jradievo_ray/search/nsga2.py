"""`search.strategy: nsga2` (the default): NSGA-II over `search.objectives` (each maximised),
with DEAP's non-dominated sorting and crowding (`tools.selNSGA2`).

Each generation, the parents of the next are the best `search.population` of the last
parents and the generation just evaluated together (elitist, mu + lambda), by Pareto rank
and then crowding distance. Offspring come from binary tournaments on (rank, crowding),
crossed and mutated with the GA's operators and rates (SBX, polynomial mutation,
`search.crossover_prob`, `search.mutation_prob`, `search.eta`). Rank and crowding are
recomputed on the parents alone, so a checkpoint of the parents is the whole state.
NSGA-II selects once per generation, so it runs generational dispatch only.
"""

from __future__ import annotations

import random

from deap import base, creator, tools
from deap.tools.emo import assignCrowdingDist

from jradievo_ray.config import Bounds, SearchConfig
from jradievo_ray.search.ga import individual
from jradievo_ray.search.strategy import Bounded, Scored


def multi_individual(genes: list[float], objectives: tuple[float, ...]):
    """A DEAP individual whose fitness is the objectives, all maximised."""
    k = len(objectives)
    fitness_name, individual_name = f"FitnessMax{k}", f"IndividualMax{k}"
    if not hasattr(creator, fitness_name):
        creator.create(fitness_name, base.Fitness, weights=(1.0,) * k)
        creator.create(individual_name, list, fitness=getattr(creator, fitness_name))
    ind = getattr(creator, individual_name)(float(g) for g in genes)
    ind.fitness.values = tuple(objectives)
    return ind


class NSGA2(Bounded):
    def __init__(self, bounds: list[Bounds], config: SearchConfig, rng: random.Random):
        super().__init__(bounds, config, rng)
        self.parents: list = []
        self.rank: list[int] = []

    def tell(self, scored: list[Scored]) -> None:
        pool, seen = [], set()
        for ind in [*self.parents, *(multi_individual(s.genome, s.objectives) for s in scored)]:
            key = tuple(ind)
            if key not in seen:  # a genome bred twice competes once
                seen.add(key)
                pool.append(ind)
        self._set_parents(tools.selNSGA2(pool, min(self.config.population, len(pool))))

    def _set_parents(self, parents: list) -> None:
        self.parents = parents
        self.rank = [0] * len(parents)
        position = {id(ind): i for i, ind in enumerate(parents)}
        for rank, front in enumerate(tools.sortNondominated(parents, len(parents))):
            assignCrowdingDist(front)
            for ind in front:
                self.rank[position[id(ind)]] = rank

    def _tournament(self):
        a, b = (self.rng.randrange(len(self.parents)) for _ in range(2))
        key_a = (-self.rank[a], self.parents[a].fitness.crowding_dist)
        key_b = (-self.rank[b], self.parents[b].fitness.crowding_dist)
        return self.parents[b] if key_b > key_a else self.parents[a]

    def ask(self) -> list[list[float]]:
        offspring = [individual(self._tournament()) for _ in range(self.config.population)]
        return [list(ind) for ind in self.vary(offspring)]

    def state(self) -> list[tuple[list[float], tuple[float, ...]]]:
        return [(list(ind), tuple(ind.fitness.values)) for ind in self.parents]

    def restore(self, state: list[tuple[list[float], tuple[float, ...]]]) -> None:
        self._set_parents([multi_individual(g, objs) for g, objs in state])

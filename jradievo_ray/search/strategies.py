"""The registry of search strategies (`search.strategy`)."""

from __future__ import annotations

import random

from jradievo_ray.config import Bounds, SearchConfig
from jradievo_ray.search.cma_es import CMAES
from jradievo_ray.search.ga import GeneticAlgorithm
from jradievo_ray.search.nsga2 import NSGA2
from jradievo_ray.search.random_search import RandomSearch
from jradievo_ray.search.strategy import Strategy

STRATEGIES: dict[str, type] = {
    "ga": GeneticAlgorithm,
    "cma_es": CMAES,
    "nsga2": NSGA2,
    "random": RandomSearch,
}


def make_strategy(bounds: list[Bounds], config: SearchConfig, rng: random.Random) -> Strategy:
    return STRATEGIES[config.chosen_strategy](bounds, config, rng)

import random

from deap import tools

from jradievo_ray.config import Bounds, SearchConfig
from jradievo_ray.search.ga import GeneticAlgorithm, individual, restore_hall_of_fame

BOUNDS = [Bounds(low=0, high=0.9), *[Bounds(low=0.1, high=1)] * 3, Bounds(low=0, high=2)]


def sphere(g):  # maximum at 0.5 in every gene
    return 100 - 100 * sum((x - 0.5) ** 2 for x in g)


def run(seed, gens=15):
    cfg = SearchConfig(population=12, generations=gens, seed=seed)
    ga = GeneticAlgorithm(BOUNDS, cfg, random.Random(seed))
    pop = [individual(g) for g in ga.first([])]
    history = []
    for _ in range(gens):
        for ind in pop:
            ind.fitness.values = (sphere(ind),)
        history.append(max(i.fitness.values[0] for i in pop))
        for ind in pop:
            for x, b in zip(ind, BOUNDS, strict=True):
                assert b.low <= x <= b.high
        pop = ga.next_generation(pop)
    return history, [list(i) for i in pop]


def test_seeded_ga_is_deterministic_and_isolated_from_global_random():
    a = run(3)
    random.seed(999)  # the global RNG must not influence the GA
    b = run(3)
    assert a == b
    assert run(4)[1] != a[1]


def test_elitism_never_loses_the_best_and_search_improves():
    history, _ = run(0, gens=25)
    assert all(b >= a for a, b in zip(history, history[1:], strict=False))
    assert history[-1] > history[0]
    assert history[-1] > 98.0


def test_initial_population_keeps_seeds_first():
    cfg = SearchConfig(population=4)
    ga = GeneticAlgorithm(BOUNDS, cfg, random.Random(0))
    seed = [0.0, 1.0, 1.0, 1.0, 1.0]
    pop = ga.first([seed])
    assert pop[0] == seed and len(pop) == 4


def test_a_restored_hall_of_fame_keeps_the_order_of_ties():
    """A resumed search must pick the same best genome as the uninterrupted one, also among
    genomes of equal fitness (the same source alone at two weights merges the same)."""
    hof = tools.HallOfFame(5)
    hof.update([individual([0.1], 7.0), individual([0.2], 9.0), individual([0.3], 9.0)])
    hof.update([individual([0.4], 9.0), individual([0.5], 3.0)])
    saved = [(list(ind), ind.fitness.values[0]) for ind in hof]
    restored = tools.HallOfFame(5)
    restore_hall_of_fame(restored, saved)
    assert [(list(ind), ind.fitness.values[0]) for ind in restored] == saved
    naive = tools.HallOfFame(5)
    naive.update([individual(g, f) for g, f in saved])
    assert [list(ind) for ind in naive] != [g for g, _ in saved]  # what the bug did

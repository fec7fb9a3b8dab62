"""Steady-state dispatch: the replacement rule and breeding on their own, the pool keeping
every actor busy (no barrier), and whole searches on the toy objective on real Ray."""

from __future__ import annotations

import functools
import random

import pytest
import ray.cloudpickle
import toy_evaluator

from jradievo_ray.config import Bounds, SearchConfig, load_config
from jradievo_ray.errors import UserError
from jradievo_ray.search import journal
from jradievo_ray.search.actors import ActorPool
from jradievo_ray.search.evaluation import GenomeTask
from jradievo_ray.search.ga import GeneticAlgorithm, individual
from jradievo_ray.search.resources import ActorResources
from jradievo_ray.search.run import run_search
from jradievo_ray.search.space import make_space
from jradievo_ray.search.steady import insert

ray.cloudpickle.register_pickle_by_value(toy_evaluator)


def test_a_result_fills_the_population_then_replaces_the_worst_only_if_better():
    population = []
    for fit in (5.0, 1.0, 3.0):
        insert(population, individual([fit], fit), size=3)
    assert [p.fitness.values[0] for p in population] == [5.0, 1.0, 3.0]
    insert(population, individual([0.5], 0.5), size=3)  # worse than the worst: dropped
    insert(population, individual([1.0], 1.0), size=3)  # a tie keeps the incumbent
    assert [p.fitness.values[0] for p in population] == [5.0, 1.0, 3.0]
    insert(population, individual([4.0], 4.0), size=3)
    assert [p.fitness.values[0] for p in population] == [5.0, 4.0, 3.0]


def test_a_child_is_bred_within_bounds_from_the_seeded_rng():
    bounds = [Bounds(low=0.0, high=1.0), Bounds(low=0.1, high=2.0), Bounds(low=0.5, high=0.5)]
    cfg = SearchConfig(crossover_prob=1.0, mutation_prob=1.0)
    population = [individual([0.1 * i, 0.2 * i, 0.5], float(i)) for i in range(6)]
    children = []
    for _ in range(2):
        ga = GeneticAlgorithm(bounds, cfg, random.Random(7))
        children.append([list(ga.child(population)) for _ in range(50)])
    assert children[0] == children[1]
    for child in children[0]:
        assert all(b.low <= g <= b.high for g, b in zip(child, bounds, strict=True))
    assert len({tuple(c) for c in children[0]}) > 40  # varied


def test_a_freed_actor_gets_the_next_task_at_once(ray_local):
    """No barrier: whenever a result comes back, every other actor is still busy, so the
    tasks drawn so far are the results so far plus one per other actor."""
    actors, total = 3, 12
    pool = ActorPool(toy_evaluator.ToyEvaluator, actors, ActorResources(0.5, 0), 2)
    pool.start_all()  # every actor built: none is still loading when the first task goes
    drawn = 0

    def tasks():
        nonlocal drawn
        for i in range(total):
            drawn += 1
            yield i, GenomeTask([i / total] * 8)

    seen = []
    pool.stream(tasks(), lambda key, outcome, where: seen.append(drawn))
    pool.shutdown()
    assert seen == [min(k + actors - 1, total) for k in range(1, total + 1)]


def steady_config(**overrides):
    sets = [
        "data.heldout=null",
        "search.export_best=false",
        "search.dispatch=steady_state",
        "search.population=6",
        "search.evaluations=20",
        "resources.num_actors=2",
        *[f"{k}={v}" for k, v in overrides.items()],
    ]
    return load_config(None, sets)


def test_steady_state_search_evaluates_its_budget_once_each(ray_local, tmp_path):
    lines = []
    factory = functools.partial(toy_evaluator.ToyEvaluator)
    result = run_search(steady_config(), tmp_path, evaluator_factory=factory, log=lines.append)
    entries = journal.read(tmp_path / "evaluations.jsonl")
    genomes = [tuple(e["genome"]) for e in entries]
    assert len(genomes) == 20 and len(set(genomes)) == 20
    # rounds of `population` evaluations: 6, 6, 6, then the last 2
    assert [g["evaluated"] for g in result["generations"]] == [6, 6, 6, 2]
    assert any(line.startswith("evaluated 20/20") for line in lines)
    best = max(e["fitness"] for e in entries)
    assert result["best"]["search_fitness"] == best
    # the initial population is the generational one: seeded with the uniform merge and
    # each source alone (search.init random+sources)
    cfg = steady_config()
    space = make_space([m.name for m in cfg.models.merge_sources], cfg.merge)
    seeds = [space.encode_uniform(), *(space.encode_source(n) for n in space.names)]
    assert {tuple(float(g) for g in s) for s in seeds} <= set(genomes)


def test_budget_settings_are_checked():
    with pytest.raises(UserError, match="evaluations: only for dispatch steady_state"):
        load_config(None, ["search.evaluations=30"])
    with pytest.raises(UserError, match="at least the population"):
        load_config(None, ["search.dispatch=steady_state", "search.evaluations=3"])
    cfg = load_config(None, ["search.dispatch=steady_state", "search.population=4"])
    assert cfg.search.budget == 4 * (cfg.search.generations + 1)

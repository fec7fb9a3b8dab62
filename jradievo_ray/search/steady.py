"""Steady-state dispatch (`search.dispatch: steady_state`): no generation barrier.

The first `population` genomes are the generational search's initial population. After
that, each time an actor is free it gets a new child bred from the population as it is at
that moment (two tournament winners, SBX crossover, polynomial mutation: the generational
operators and rates). Replacement rule: a returning genome joins the population while it
is not full, and afterwards replaces the population's worst genome if its fitness is
higher (a tie keeps the incumbent). A child identical to a genome already evaluated is
bred again rather than sent. The budget is `search.evaluations` genomes evaluated.

Evaluation-time bias: genomes that evaluate faster return first and so breed sooner. Here
evaluation time follows the length of the reports a merge writes (a merge that stops
early is fast), not its quality, so the population could drift towards terse merges. What
this implementation does about it: selection and replacement look at fitness only, never
at arrival time; a slow genome's result is inserted whenever it returns, however many
children were bred meanwhile (no result is discarded as stale); and the journal records
every evaluation's seconds, so the bias can be measured. It is not reproducible bit for
bit: which child is bred from which population depends on arrival order.

The population is the journal replayed in order, so a resumed search continues from the
population the killed one had; the genomes in flight are kept in `inflight.json` as they
are sent, so a resumed search evaluates them first, once. Progress is reported (and
checkpointed) every `population` evaluations, each such round a row of `generations`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import cast

from jradievo_ray.search import checkpoint, runfolder
from jradievo_ray.search.evaluation import GenomeTask, Outcome, Task
from jradievo_ray.search.ga import Individual, individual
from jradievo_ray.search.journal import Placement
from jradievo_ray.search.loop import SearchLoop, genome_key
from jradievo_ray.search.strategy import SteadyStrategy
from jradievo_ray.storage import write_atomic

BREED_TRIES = 100  # children bred in a row before accepting a duplicate of a known genome


def insert(population: list[Individual], ind: Individual, size: int) -> None:
    """The replacement rule: fill up to `size`, then replace the worst if strictly better."""
    if len(population) < size:
        population.append(ind)
        return
    worst = min(range(len(population)), key=lambda i: population[i].fitness.values[0])
    if ind.fitness.values[0] > population[worst].fitness.values[0]:
        population[worst] = ind


class SteadyStateLoop(SearchLoop):
    """Runs (or resumes) the steady-state search; same state, journal and result."""

    def run(self) -> checkpoint.SearchState:
        cfg = self.cfg.search
        size, budget = cfg.population, cfg.budget
        population: list[Individual] = []
        for entry in self.cache.values():  # journal order: the population a kill left
            insert(population, individual(entry["genome"], entry["fitness"]), size)
        self.hof.update(population)
        self.rng.seed(cfg.seed)
        pending = self.strategy.first(self._seed_genomes())
        inflight_file = self.out_dir / runfolder.INFLIGHT
        if self.cache or inflight_file.exists():
            self.log(f"resuming after {len(self.cache)} evaluations (journaled)")
            self.rng.seed(f"{cfg.seed}-{len(self.cache)}")  # breeding goes on from here
            if inflight_file.exists():  # sent before the kill, never returned: first
                pending = json.loads(inflight_file.read_text()) + pending
        pending = [list(g) for g in pending if genome_key(g) not in self.cache]
        inflight: dict[int, list[float]] = {}  # by task key
        sent: set[tuple[float, ...]] = set()  # from this process; its size is the next key
        start = len(self.cache)
        round_start = time.perf_counter()

        def tasks() -> Iterator[tuple[int, Task]]:
            while start + len(sent) < budget:
                genome = pending.pop(0) if pending else self._breed(population, sent)
                if genome_key(genome) in sent:
                    continue  # an in-flight genome of the killed run that is initial too
                key = len(sent)
                inflight[key] = genome
                sent.add(genome_key(genome))
                write_atomic(inflight_file, json.dumps(list(inflight.values())))
                self.sync()
                yield key, GenomeTask(genome)

        def arrived(key: int, outcome: Outcome, placement: Placement) -> None:
            nonlocal round_start
            genome = inflight.pop(key)
            entry = self._record(genome, outcome, placement)
            self._done += 1
            write_atomic(inflight_file, json.dumps(list(inflight.values())))
            self.sync()
            ind = individual(genome, entry["fitness"])
            insert(population, ind, size)
            self.hof.update([ind])
            done = len(self.cache)
            if done % size == 0 or done >= budget:
                self._end_round(population, done, budget, time.perf_counter() - round_start)
                round_start = time.perf_counter()

        self.pool.stream(tasks(), arrived)
        return self.state

    def _end_round(self, population: list[Individual], done: int, budget: int, seconds: float):
        """Every `population` evaluations: a row of `generations`, the genome table, a
        checkpoint, a progress line."""
        size = self.cfg.search.population
        gen = (done - 1) // size
        evaluated = done - size * gen
        for idx, ind in enumerate(population):
            self._table_row(gen, idx, ind)
        row = self._checkpoint(gen, population, evaluated, seconds)
        best = self.hof[0].fitness.values[0]
        self.log(
            f"evaluated {done}/{budget}  best {best:6.2f}  mean {row['mean']:6.2f}"
            f"  {seconds:6.1f}s  ETA {self._eta(budget - done)}"
        )
        if self.on_generation:
            self.on_generation(row, self.state)

    def _breed(self, population: list[Individual], sent: set[tuple[float, ...]]) -> list[float]:
        """A child of the population that is neither evaluated nor in flight (random while
        fewer than two genomes have returned, so that no actor waits)."""
        breeder = cast(SteadyStrategy, self.strategy)
        for _ in range(BREED_TRIES):
            few = len(population) < 2
            genome = breeder.random_genome() if few else breeder.child(population)
            if genome_key(genome) not in self.cache and genome_key(genome) not in sent:
                return genome
        return breeder.random_genome()  # the population has converged: explore

"""The search driver: DEAP generations evaluated by a Ray actor pool, checkpointed each
generation, tracked in MLflow, ending with the held-out table and result.json."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deap import tools

from jradievo_ray import faults
from jradievo_ray.config import Config
from jradievo_ray.progress import format_eta
from jradievo_ray.search import checkpoint, journal, pareto
from jradievo_ray.search.actors import ActorPool
from jradievo_ray.search.evaluation import STAGES, GenomeTask, Outcome, Task
from jradievo_ray.search.ga import individual, restore_hall_of_fame
from jradievo_ray.search.journal import Journal, Placement
from jradievo_ray.search.metrics import SearchMetrics
from jradievo_ray.search.space import make_space
from jradievo_ray.search.strategies import make_strategy
from jradievo_ray.search.strategy import Scored

WORST_FITNESS = 0.0  # fitness is on 0-100; a failed genome gets the bottom of the scale


def genome_key(genome: list[float]) -> tuple[float, ...]:
    return tuple(float(g) for g in genome)


def cache_from(entries: list[dict[str, Any]]) -> dict[tuple[float, ...], dict[str, Any]]:
    """The genome -> result cache a journal holds (a later entry of one genome wins)."""
    return {genome_key(e["genome"]): e for e in entries}


class SearchLoop:
    """Runs (or resumes) the search's strategy; `pool` evaluates its GenomeTasks."""

    def __init__(
        self,
        cfg: Config,
        out_dir: Path,
        pool: ActorPool,
        state: checkpoint.SearchState,
        journal: Journal,
        cache: dict[tuple[float, ...], dict[str, Any]],
        on_generation: Callable[[dict[str, Any], checkpoint.SearchState], None] | None = None,
        log: Callable[[str], None] = print,
        sync: Callable[[], None] = lambda: None,
        metrics: SearchMetrics | None = None,
    ):
        """`cache`: the results the journal already holds (read back on resume); the first
        `state.journaled` of them were known at the last checkpoint, the others came in
        during the generation a kill interrupted and count as that generation's. `sync`
        runs after each write to the run folder (an s3:// run folder's upload); `metrics`
        records live metrics (under Ray)."""
        self.cfg = cfg
        self.out_dir = out_dir
        self.pool = pool
        self.state = state
        self.journal = journal
        self.cache = cache
        self.known = set(list(cache)[: state.journaled])
        self.on_generation = on_generation
        self.sync = sync
        self.metrics = metrics
        self._started = time.perf_counter()
        self._done = 0  # generations (or evaluations) this process finished, for the ETA
        self.log = log
        names = [m.name for m in cfg.models.merge_sources]
        self.space = make_space(names, cfg.merge)
        self.rng = random.Random(cfg.search.seed)
        if state.rng_state is not None:
            self.rng.setstate(state.rng_state)
        self.strategy = make_strategy(self.space.bounds, cfg.search, self.rng)
        if state.gen >= 0:
            self.strategy.restore(state.strategy)
        self.hof = tools.HallOfFame(cfg.search.hall_of_fame)
        restore_hall_of_fame(self.hof, state.hall_of_fame)

    def _evaluate(self, population: list, gen: int) -> int:
        """Set every individual's fitness; returns how many genomes this generation
        evaluated. Each result is journaled the moment it arrives."""
        cache = self.cache
        todo: dict[tuple[float, ...], list[float]] = {}
        new = {genome_key(ind) for ind in population} - self.known
        for ind in population:
            key = genome_key(ind)
            if key not in cache:
                todo.setdefault(key, list(ind))
        keys = list(todo)
        tasks: list[Task] = [GenomeTask(todo[k]) for k in keys]

        self.pool.map(tasks, lambda i, out, where: self._record(todo[keys[i]], out, where))
        for idx, ind in enumerate(population):
            ind.fitness.values = (cache[genome_key(ind)]["fitness"],)
            self._table_row(gen, idx, ind)
        self.known |= new
        return len(new)

    def _record(self, genome: list[float], outcome: Outcome, placement: Placement) -> dict:
        """Journal one returned evaluation (on disk before anything else) and cache it."""
        entry = journal.entry(genome, outcome, placement, WORST_FITNESS)
        self.journal.append(entry)
        self.sync()
        self.cache[genome_key(genome)] = entry
        if self.metrics:
            self.metrics.evaluation(entry["error"], entry["seconds"], len(self.cache))
        if entry["error"]:
            self.log(f"  genome failed (fitness {WORST_FITNESS}): {entry['error']}")
        faults.point("evaluated")
        return entry

    def _table_row(self, gen: int, index: int, ind: list[float]) -> None:
        """The MLflow genome table's row of one genome of a generation (or round)."""
        entry = self.cache[genome_key(ind)]
        row = {"gen": gen, "index": index, "fitness": entry["fitness"]}
        row.update({f"gene/{n}": v for n, v in zip(self.space.gene_names, ind, strict=True)})
        for k in ("rouge_l", "bleu4", "finding_f1"):
            row[k] = (entry.get("metrics") or {}).get(k)
        for stage in STAGES:
            row[f"seconds/{stage}"] = (entry.get("seconds") or {}).get(stage)
        row["error"] = entry["error"]
        self.state.genome_table.append(row)

    def _finish_generation(self, gen: int, population: list, evaluated: int, t0: float) -> None:
        row = self._checkpoint(gen, population, evaluated, time.perf_counter() - t0)
        total = self.cfg.search.generations
        st = self.state
        self._done += 1
        best = self.hof[0].fitness.values[0]
        eta = self._eta(total - gen)
        self.log(
            f"gen {gen}/{total}  evaluated {evaluated:3d}  best {best:6.2f}"
            f"  mean {row['mean']:6.2f}  {row['seconds']:6.1f}s  ETA {eta}"
        )
        if self.on_generation:
            self.on_generation(row, st)

    def _eta(self, left: int) -> str:
        """Time for `left` more units (generations, or evaluations in steady state) at this
        process's pace so far, not counting the time no actor was ready (starting actors
        and loading their models, a lost node): the first progress line would otherwise
        predict every generation to take as long as the start."""
        busy = time.perf_counter() - self._started - self.pool.waited_seconds
        return format_eta(max(busy, 0.0) / max(self._done, 1) * left)

    def _checkpoint(self, gen: int, population: list, evaluated: int, seconds: float) -> dict:
        """Record a finished generation (or steady-state round) and checkpoint the search."""
        fits = [ind.fitness.values[0] for ind in population]
        self.hof.update(population)
        row = {
            "gen": gen,
            "max": max(fits),
            "mean": sum(fits) / len(fits),
            "min": min(fits),
            "evaluated": evaluated,
            "seconds": seconds,
        }
        st = self.state
        st.gen = gen
        st.generations.append(row)
        st.strategy = self.strategy.state()
        st.hall_of_fame = [(list(ind), ind.fitness.values[0]) for ind in self.hof]
        st.rng_state = self.rng.getstate()
        st.journaled = len(self.cache)
        if self.metrics:
            self.metrics.generation(gen, self.hof[0].fitness.values[0], row["mean"])
        st.seconds += seconds
        checkpoint.save(st, self.out_dir)
        self.sync()
        faults.point("checkpointed")
        return row

    def _seed_genomes(self) -> list[list[float]]:
        init = self.cfg.search.init
        seeds = [] if init == "random" else [self.space.encode_uniform()]
        if init == "random+sources":
            seeds += [self.space.encode_source(n) for n in self.space.names]
        return seeds

    def scored(self, genome: list[float]) -> Scored:
        """A journaled genome as strategies see it: fitness and `search.objectives`."""
        entry = self.cache[genome_key(genome)]
        metrics = entry["metrics"] or {}
        objectives = tuple(
            float(metrics.get(name, WORST_FITNESS)) for name in self.cfg.search.objectives
        )
        return Scored(list(genome), entry["fitness"], objectives)

    def _generation(self, gen: int, genomes: list[list[float]]) -> None:
        """Evaluate one generation, tell the strategy, checkpoint."""
        t0 = time.perf_counter()
        population = [individual(g) for g in genomes]
        evaluated = self._evaluate(population, gen)
        self.strategy.tell([self.scored(ind) for ind in population])
        self._finish_generation(gen, population, evaluated, t0)

    def run(self) -> checkpoint.SearchState:
        st = self.state
        if st.gen < 0:
            self._generation(0, self.strategy.first(self._seed_genomes()))
        else:
            self.log(f"resuming after generation {st.gen} ({len(self.cache)} genomes journaled)")
        for gen in range(st.gen + 1, self.cfg.search.generations + 1):
            self._generation(gen, self.strategy.ask())
        return st

    def front(self) -> list[Scored]:
        """The Pareto front of every genome evaluated without error, on `search.objectives`
        (journal order)."""
        done = [self.scored(e["genome"]) for e in self.cache.values() if not e["error"]]
        return [done[i] for i in pareto.front([s.objectives for s in done])]

    @property
    def best(self) -> tuple[list[float], float]:
        """The genome `search.pick` chooses, and its search fitness."""
        rule = self.cfg.search.pick
        members = self.front() if rule != "max_fitness" else []
        if not members:  # max_fitness, or nothing evaluated without error
            return list(self.hof[0]), self.hof[0].fitness.values[0]
        points = [m.objectives for m in members]
        i = pareto.pick(rule, self.cfg.search.objectives, points, [m.fitness for m in members])
        return members[i].genome, members[i].fitness

"""How the search scales with actors, both dispatch modes, on a simulated multi-node cluster.

    python benchmarks/scaling.py --json OUT.json [--actors 1,2,4,8,16,32,64] [--plot P.png]

The real driver loop (SearchLoop / SteadyStateLoop), ActorPool and EvalActors run on a Ray
cluster of separate raylets on 127.0.0.1 (`ray.cluster_utils.Cluster`): a head without
actor slots and worker nodes of 8 logical GPUs each (Ray's GPU resource, declared, not
real), one per actor. Each actor's evaluator sleeps a per-genome time drawn, seeded by the
genome, from the per-genome evaluation times measured by eval_throughput.py (vLLM in-place
swap on the demo zoo, `--times`), scaled to a mean of `--mean` seconds; its fitness is the
toy objective. Actors are started and ready before the clock starts.

Per N and mode, at the same budget (population 2N but at least 8, `--rounds` rounds:
generational breeds population x rounds genomes; steady-state evaluates as many; the
generational search evaluates fewer, as it keeps its elites and caches repeats):
- genomes_per_s: evaluated genomes / wall seconds of the search;
- efficiency: genomes_per_s / (N / mean evaluation time of the genomes evaluated);
- idle_fraction: 1 - (summed evaluation seconds) / (N x wall seconds);
- driver_cpu_ms_per_genome: the driver process's CPU time / evaluated genomes (Ray's own
  threads in the driver included); driver_loop_cpu_ms_per_genome: the search loop's
  thread alone (breeding, dispatch, journal, checkpoints).
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

DEFAULT_TIMES = Path(__file__).resolve().parent / "results" / "eval_throughput_cpu.json"
GPUS_PER_NODE = 8


def measured_times(path: Path) -> list[float]:
    """Per-genome totals of the vLLM in-place backend in an eval_throughput.py JSON."""
    data = json.loads(path.read_text())
    return [g["total"] for g in data["backends"]["c_vllm_swap"]["per_genome"]]


@dataclass
class SleepEvaluator:
    """Sleeps each genome's drawn evaluation time; the toy objective as fitness."""

    times: tuple[float, ...]
    seed: int = 0

    def seconds_for(self, genome: list[float]) -> float:
        return random.Random(f"{self.seed}-{tuple(genome)}").choice(self.times)

    def evaluate_genome(self, genome: list[float]):
        from jradievo_ray.search.evaluation import STAGES, Evaluation

        seconds = self.seconds_for(genome)
        time.sleep(seconds)
        fit = 100 - 50 * sum((g - 0.5) ** 2 for g in genome)
        return Evaluation(
            fitness=fit,
            metrics={"fitness": fit},
            seconds={**dict.fromkeys(STAGES, 0.0), "generate": seconds},
        )

    def evaluate_recipe(self, recipe, split, shuffle_seed=None, details=True):
        raise NotImplementedError("the scaling benchmark scores genomes only")


def start_cluster(actors: int):
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    for _ in range(-(-actors // GPUS_PER_NODE)):
        cluster.add_node(num_cpus=1, num_gpus=GPUS_PER_NODE)
    return cluster


def run_mode(mode: str, actors: int, times: tuple[float, ...], seed: int, rounds: int) -> dict:

    from jradievo_ray.config import load_config
    from jradievo_ray.search.actors import ActorPool
    from jradievo_ray.search.checkpoint import SearchState
    from jradievo_ray.search.journal import Journal, read
    from jradievo_ray.search.loop import SearchLoop
    from jradievo_ray.search.resources import ActorResources
    from jradievo_ray.search.steady import SteadyStateLoop

    population = max(8, 2 * actors)
    sets = [
        "data.heldout=null",
        f"search.population={population}",
        f"search.generations={rounds - 1}",
    ]
    sets += [f"search.seed={seed}", f"resources.num_actors={actors}"]
    if mode == "steady_state":
        sets += ["search.dispatch=steady_state", f"search.evaluations={population * rounds}"]
    cfg = load_config(None, sets)
    factory = functools.partial(SleepEvaluator, times, seed)
    pool = ActorPool(factory, actors, ActorResources(0.001, 1), max_retries=2, log=print)
    pool.start_all()  # every actor built and ready: the search is timed alone
    nodes = len(set(pool.nodes))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        kind = SteadyStateLoop if mode == "steady_state" else SearchLoop
        log = Journal(out / "evaluations.jsonl")
        loop = kind(cfg, out, pool, SearchState(), log, {}, None, lambda _: None)
        cpu0, own0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
        loop.run()
        wall = time.perf_counter() - wall0
        cpu, own = time.process_time() - cpu0, time.thread_time() - own0
        log.close()
        entries = read(out / "evaluations.jsonl")
    pool.shutdown()
    busy = [e["seconds"]["generate"] for e in entries]
    n = len(entries)
    rate = n / wall
    return {
        "mode": mode,
        "actors": actors,
        "nodes": nodes,
        "genomes": n,
        "wall_s": wall,
        "genomes_per_s": rate,
        "mean_eval_s": statistics.fmean(busy),
        "efficiency": rate / (actors / statistics.fmean(busy)),
        "idle_fraction": 1 - sum(busy) / (actors * wall),
        "driver_cpu_ms_per_genome": 1000 * cpu / n,
        "driver_loop_cpu_ms_per_genome": 1000 * own / n,
        "best": max(e["fitness"] for e in entries),
    }


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for mode in ("generational", "steady_state"):
        mine = [r for r in rows if r["mode"] == mode]
        effs = [100 * r["efficiency"] for r in mine]
        ax.plot([r["actors"] for r in mine], effs, "o-", label=mode)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("actors")
    ax.set_ylabel("efficiency (%)")
    ax.set_ylim(0, 105)
    ax.axhline(95, color="grey", lw=0.8, ls="--")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", required=True, help="write the results here")
    p.add_argument("--actors", default="1,2,4,8,16,32,64", help="actor counts to measure")
    p.add_argument("--times", default=str(DEFAULT_TIMES), help="eval_throughput.py JSON")
    p.add_argument("--mean", type=float, default=1.0, help="mean evaluation seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=12, help="generations (steady: budget)")
    p.add_argument("--plot", help="efficiency against actors, PNG")
    args = p.parse_args(argv)

    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Every raylet and the GCS on loopback (Ray otherwise binds this machine's address).
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    raw = measured_times(Path(args.times))
    scale = args.mean / statistics.fmean(raw)
    times = tuple(t * scale for t in raw)
    rows: list[dict] = []
    result = {
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count()},
        "times_from": args.times,
        "times_scaled_to_mean_s": args.mean,
        "times_cv": statistics.pstdev(times) / statistics.fmean(times),
        "rounds": args.rounds,
        "rows": rows,
    }
    for actors in [int(a) for a in args.actors.split(",")]:
        cluster = start_cluster(actors)
        ray.init(address=cluster.address, log_to_driver=False)
        try:
            for mode in ("generational", "steady_state"):
                row = run_mode(mode, actors, times, args.seed, args.rounds)
                rows.append(row)
                print(
                    f"{actors:3d} actors ({row['nodes']} nodes) {mode:13s} "
                    f"{row['genomes']:4d} genomes {row['genomes_per_s']:7.2f}/s "
                    f"efficiency {100 * row['efficiency']:5.1f}% "
                    f"idle {100 * row['idle_fraction']:5.1f}% "
                    f"driver {row['driver_cpu_ms_per_genome']:5.2f} ms CPU/genome "
                    f"(loop {row['driver_loop_cpu_ms_per_genome']:5.2f})",
                    flush=True,
                )
        finally:
            ray.shutdown()
            cluster.shutdown()
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")  # after each N
    if args.plot:
        plot(rows, Path(args.plot))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

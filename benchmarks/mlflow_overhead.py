"""What logging every genome as an MLflow child run adds to a search's wall time.

`python benchmarks/mlflow_overhead.py [--genomes 1000] [--population 24] [--pace S]
[--uri URI] [--json OUT]`

One synthetic journal of `--genomes` evaluations of the demo's merge space (genomes,
scores, seconds per stage, a few failures) is replayed twice, side by side, through the
search's own MLflow code (`run._log_generation`, `run._log_children`, the genome table,
`Tracker.finish`), each time into a fresh store: children off, then on.

Without `--pace`, generations come back to back, with no evaluation time between them, so
the background logger never overlaps with evaluation as it does in a real search: the
difference of the two totals is an upper bound of the wall time the children add, set
against the wall time of a search of as many genomes at a given pace (seconds per genome,
all actors together): the demo's on this CPU and two GPU paces. With `--pace S`, each
generation first waits population x S seconds (its evaluation, actors elsewhere), so the
two passes are whole searches at that pace, children off and on, and the added time is
measured against the wall time of the pass without children.

Default store: a sqlite file in a temporary folder, as a search uses without
`tracking.mlflow_uri`; `--uri http://127.0.0.1:PORT` measures a running `mlflow server`.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from jradievo_ray.config import load_config
from jradievo_ray.search import checkpoint, journal
from jradievo_ray.search.evaluation import STAGES
from jradievo_ray.search.run import _log_children, _log_generation
from jradievo_ray.search.space import make_space
from jradievo_ray.tracking import Tracker

# Seconds per genome of a whole search (wall time / genomes): the demo on 2 CPUs
# (~260 evaluations in 79-102 s, README), and 8B-class merges on GPU actors.
PACES = {"demo_cpu": 0.35, "gpu_5s": 5.0, "gpu_60s": 60.0}


def synthetic_journal(path: Path, space, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    log = journal.Journal(path)
    for i in range(n):
        genome = [rng.uniform(b.low, b.high) for b in space.bounds]
        failed = rng.random() < 0.02
        scores = {k: rng.uniform(0, 60) for k in ("rouge_l", "bleu4", "finding_f1")}
        log.append(
            {
                "genome": genome,
                "fitness": 0.0 if failed else sum(scores.values()) / 3,
                "metrics": None if failed else {"n": 48, **scores},
                "error": "RuntimeError: merge blew up" if failed else None,
                "actor": i % 8,
                "node": f"node{i % 2}",
                "attempt": 1,
                "seconds": None if failed else {s: rng.uniform(0.1, 5) for s in STAGES},
            }
        )
    log.close()


def replay(
    space, journal_path: Path, store: str, population: int, children: bool, pace: float
) -> dict:
    """Log the journal generation by generation as a search does; returns seconds spent in
    the search's thread (`blocking`) and until the run is finished (`total`)."""
    n = len(journal.read(journal_path))
    tracker = Tracker(store, f"overhead-{children}-{time.time_ns()}", journal_path.parent)
    state = checkpoint.SearchState()
    logged: set[int] = set()
    t0 = time.perf_counter()
    blocking = 0.0
    for gen, start in enumerate(range(0, n, population)):
        size = min(population, n - start)
        row = {"gen": gen, "max": 60.0, "mean": 30.0, "min": 0.0, "evaluated": size}
        row["seconds"] = 1.0
        state.generations.append(row)
        state.genome_table += [{"gen": gen, "index": i, "fitness": 1.0} for i in range(size)]
        time.sleep(size * pace)  # the generation's evaluation
        t = time.perf_counter()
        _log_generation(tracker, row)
        if children:
            _log_children(tracker, space, "generation", journal_path, state, logged)
        blocking += time.perf_counter() - t
    tracker.log_table(state.genome_table, "genomes.json")
    tracker.finish()
    return {"blocking_s": blocking, "total_s": time.perf_counter() - t0, "children": len(logged)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genomes", type=int, default=1000)
    parser.add_argument("--population", type=int, default=24)
    parser.add_argument("--pace", type=float, default=0.0, help="seconds a genome (0: none)")
    parser.add_argument("--uri", help="tracking URI (default: a fresh sqlite file each pass)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    cfg = load_config(None, [])
    space = make_space([m.name for m in cfg.models.merge_sources], cfg.merge)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "evaluations.jsonl"
        synthetic_journal(path, space, args.genomes)
        passes = {}
        for children in (False, True):
            store = args.uri or f"sqlite:///{Path(tmp) / f'mlflow-{children}.db'}"
            passes["on" if children else "off"] = replay(
                space, path, store, args.population, children, args.pace
            )
    off, on = passes["off"], passes["on"]
    added = on["total_s"] - off["total_s"]
    added_blocking = on["blocking_s"] - off["blocking_s"]
    out = {
        "genomes": args.genomes,
        "population": args.population,
        "store": args.uri or "sqlite (fresh file per pass)",
        "children_off": off,
        "children_on": on,
        "added_s": added,
        "added_s_per_genome": added / args.genomes,
        "added_blocking_s": added_blocking,
        "pace_s": args.pace,
        "search_wall_s": {k: pace * args.genomes for k, pace in PACES.items()},
        "added_percent_of_search": {
            k: 100 * added / (pace * args.genomes) for k, pace in PACES.items()
        },
    }
    print(f"{args.genomes} genomes, population {args.population}, store {out['store']}")
    print(f"children off: {off['total_s']:.2f}s   on: {on['total_s']:.2f}s")
    print(f"added: {added:.2f}s ({1000 * added / args.genomes:.1f} ms a genome), of which")
    print(f"  {added_blocking:.2f}s in the search's thread (the rest in the background logger)")
    for k, pace in PACES.items():
        wall = pace * args.genomes
        pct = out["added_percent_of_search"][k]
        print(f"  vs a search at {pace:g} s/genome ({k}, {wall:.0f}s): {pct:.2f} %")
    if args.pace:
        out["added_percent_of_paced_search"] = 100 * added / off["total_s"]
        print(
            f"  vs this paced search ({off['total_s']:.0f}s without children): "
            f"{out['added_percent_of_paced_search']:.2f} %"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Is quality traded for speed? For each seed (zoo seed = search seed, as demo_seeds.py),
runs the default generational demo search, then a steady-state search given exactly the
number of evaluations the generational one made (its journal's lines; its elites and
repeated children come from its cache), and compares the held-out rows of both bests.

    python benchmarks/dispatch_quality.py --seeds 0 1 2 --json OUT.json [--out runs/dispatch]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from demo_seeds import search
from machine import cpu_model

from jradievo_ray.search.runfolder import JOURNAL
from jradievo_ray.zoo import build_zoo, zoo_overrides


def timed_search(out: Path, sets: list[str]) -> dict:
    t0 = time.perf_counter()
    result = search(out, sets)
    evaluated = sum(1 for line in (out / JOURNAL).read_text().splitlines() if line.strip())
    return {
        "evaluated": evaluated,
        "search_fitness": result["best"]["search_fitness"],
        "heldout": result["heldout"],
        "seconds": time.perf_counter() - t0,
    }


def run_seed(seed: int, out_root: Path) -> dict:
    zoo = build_zoo(seed=seed)
    sets = [*zoo_overrides(zoo), f"search.seed={seed}", "search.strategy=ga"]  # both ga
    generational = timed_search(out_root / f"seed{seed}-generational", sets)
    steady = timed_search(
        out_root / f"seed{seed}-steady",
        [
            *sets,
            "search.dispatch=steady_state",
            f"search.evaluations={generational['evaluated']}",
        ],
    )
    result = json.loads((out_root / f"seed{seed}-generational" / "result.json").read_text())
    return {
        "seed": seed,
        "zoo": result["zoo"],
        "generational": generational,
        "steady_state": steady,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=Path("runs/dispatch"))
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    runs = []
    for seed in args.seeds:
        runs.append(run_seed(seed, args.out))
        report = summary(runs)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    print(f"{'seed':>4} {'evals':>5} {'generational':>12} {'steady':>8} {'diff':>7}")
    for r in runs:
        g = r["generational"]["heldout"]["best"]["fitness"]
        s = r["steady_state"]["heldout"]["best"]["fitness"]
        n = r["generational"]["evaluated"]
        print(f"{r['seed']:>4} {n:>5} {g:>12.2f} {s:>8.2f} {s - g:>+7.2f}")
    print(f"mean difference (steady - generational): {report['mean_difference']:+.2f}")
    return 0


def summary(runs: list[dict]) -> dict:
    diffs = [
        r["steady_state"]["heldout"]["best"]["fitness"]
        - r["generational"]["heldout"]["best"]["fitness"]
        for r in runs
    ]
    return {
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs",
        "runs": runs,
        "heldout_fitness_difference": diffs,
        "mean_difference": statistics.fmean(diffs),
    }


if __name__ == "__main__":
    sys.exit(main())

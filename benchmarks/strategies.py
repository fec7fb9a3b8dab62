"""Which strategy should the search use? Equal-budget comparison on the demo zoo (seed 0):
each strategy (ga, cma_es, nsga2, random) x each search seed runs the default demo search
(population 24, generations 12: 312 genomes bred, the same for all), and the run's best
is scored on the held-out split. Reports, per strategy, held-out fitness, ROUGE-L and
finding F1 of the best (mean, sd and every run), the search fitness reached within the
first N evaluations (N: the fewest any run made, so all are compared at equal evaluations),
evaluations used, and seconds; plots the best-so-far search fitness against evaluations.
A run folder that holds a finished search is read back, not run again.

    python benchmarks/strategies.py --json OUT.json [--seeds 0 1 2 3 4] [--out runs/strategies]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from demo_seeds import search
from machine import cpu_model

from jradievo_ray.search.runfolder import JOURNAL, RESULT
from jradievo_ray.zoo import build_zoo, zoo_overrides

STRATEGIES = ("ga", "cma_es", "nsga2", "random")
HELDOUT = ("fitness", "rouge_l", "finding_f1")


def best_so_far(out: Path) -> list[float]:
    """The best search fitness after each evaluation, in the journal's order."""
    curve, best = [], float("-inf")
    for line in (out / JOURNAL).read_text().splitlines():
        if line.strip():
            best = max(best, json.loads(line)["fitness"])
            curve.append(best)
    return curve


def run(strategy: str, seed: int, zoo_sets: list[str], out_root: Path) -> dict:
    out = out_root / f"{strategy}-seed{seed}"
    if (out / RESULT).is_file():
        result = json.loads((out / RESULT).read_text())
    else:
        sets = [*zoo_sets, f"search.strategy={strategy}", f"search.seed={seed}"]
        result = search(out, [*sets, "search.export_best=false"])
    curve = best_so_far(out)
    return {
        "strategy": strategy,
        "seed": seed,
        "heldout": {k: result["heldout"]["best"][k] for k in HELDOUT},
        "search_fitness": result["best"]["search_fitness"],
        "evaluations": len(curve),
        "pareto_size": len(result["pareto"]),
        "seconds": result["seconds"],
        "best_so_far": curve,
    }


def mean_sd(values: list[float]) -> dict[str, float]:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "sd": sd}


def summary(runs: list[dict], at: int) -> dict:
    out = {f"heldout_{k}": mean_sd([r["heldout"][k] for r in runs]) for k in HELDOUT}
    out[f"search_fitness_at_{at}"] = mean_sd([r["best_so_far"][at - 1] for r in runs])
    out["search_fitness"] = mean_sd([r["search_fitness"] for r in runs])
    out["evaluations"] = mean_sd([r["evaluations"] for r in runs])
    out["seconds"] = mean_sd([r["seconds"] for r in runs])
    return out


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, strategy in enumerate(STRATEGIES):
        mine = [r["best_so_far"] for r in runs if r["strategy"] == strategy]
        color = f"C{i}"
        for curve in mine:
            ax.plot(range(1, len(curve) + 1), curve, color=color, alpha=0.25, lw=0.8)
        n = min(len(c) for c in mine)
        mean = [statistics.fmean(c[j] for c in mine) for j in range(n)]
        ax.plot(range(1, n + 1), mean, color=color, lw=2, label=f"{strategy} (mean)")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best search fitness so far (0-100)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100, bbox_inches="tight")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--out", type=Path, default=Path("runs/strategies"))
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    zoo = build_zoo(seed=0)
    zoo_sets = zoo_overrides(zoo)
    runs = []
    for seed in args.seeds:
        for strategy in STRATEGIES:
            r = run(strategy, seed, zoo_sets, args.out)
            runs.append(r)
            h = r["heldout"]
            print(
                f"{strategy:7s} seed {seed}: held-out fitness {h['fitness']:6.2f}"
                f"  ROUGE-L {h['rouge_l']:6.2f}  F1 {h['finding_f1']:6.2f}"
                f"  ({r['evaluations']} evaluations, {r['seconds']:.0f}s)",
                flush=True,
            )
    at = min(r["evaluations"] for r in runs)
    report = {
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs",
        "zoo": zoo.name,
        "seeds": args.seeds,
        "equal_evaluations": at,
        "summary": {s: summary([r for r in runs if r["strategy"] == s], at) for s in STRATEGIES},
        "runs": runs,
    }
    print(f"\nmean (sd) over seeds {args.seeds}; search fitness within the first {at} evaluations")
    columns = ["fitness", "ROUGE-L", "F1", f"search@{at}"]
    print(f"{'strategy':9s} " + " ".join(f"{c:>15s}" for c in columns) + "  evals seconds")
    for s, m in report["summary"].items():
        cells = [m[f"heldout_{k}"] for k in HELDOUT] + [m[f"search_fitness_at_{at}"]]
        row = " ".join(f"{c['mean']:8.2f} ({c['sd']:4.2f})" for c in cells)
        print(f"{s:9s} {row} {m['evaluations']['mean']:6.0f} {m['seconds']['mean']:8.0f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    png = args.json.with_suffix(".png")
    plot(runs, png)
    print(f"\nwrote {args.json} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

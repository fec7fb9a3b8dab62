"""Is the demo honest on more than one seed? Builds the zoo and runs the default search for
each seed (zoo seed = search seed), then checks the held-out rules of the demo:

  best beats every source/* and uniform on fitness and ROUGE-L; best.fitness > blind;
  best.finding_f1 >= blind.finding_f1 + 5 and >= best_images_shuffled.finding_f1 + 5.

    python benchmarks/demo_seeds.py --seeds 0 1 2 --json seeds.json [--out runs/seeds]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_model

from jradievo_ray.search.heldout import format_table
from jradievo_ray.zoo import build_zoo, zoo_overrides


def checks(h: dict) -> dict[str, bool]:
    best = h["best"]
    rivals = ["uniform", *(k for k in h if k.startswith("source/"))]
    out = {
        f"beats {r}": best["fitness"] > h[r]["fitness"] and best["rouge_l"] > h[r]["rouge_l"]
        for r in rivals
    }
    out["fitness > blind"] = best["fitness"] > h["blind"]["fitness"]
    out["F1 >= blind + 5"] = best["finding_f1"] >= h["blind"]["finding_f1"] + 5
    out["F1 >= shuffled + 5"] = best["finding_f1"] >= h["best_images_shuffled"]["finding_f1"] + 5
    return out


def search(out: Path, sets: list[str]) -> dict:
    """`jradievo search --out OUT --set ...` in a process of its own; its result.json."""
    cmd = [sys.executable, "-m", "jradievo_ray.cli", "search", "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True)
    return json.loads((out / "result.json").read_text())


def run_seed(seed: int, out_root: Path) -> dict:
    t0 = time.perf_counter()
    zoo = build_zoo(seed=seed)
    zoo_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    result = search(out_root / f"seed{seed}", [*zoo_overrides(zoo), f"search.seed={seed}"])
    return {
        "seed": seed,
        "zoo": result["zoo"],
        "zoo_seconds": zoo_seconds,
        "search_seconds": time.perf_counter() - t1,
        "heldout": result["heldout"],
        "best_recipe": result["best"]["recipe"],
        "checks": checks(result["heldout"]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=Path("runs/seeds"))
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    runs = [run_seed(s, args.out) for s in args.seeds]
    report = {
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs",
        "runs": runs,
        "all_hold": all(all(r["checks"].values()) for r in runs),
    }
    for r in runs:
        print(
            f"\nseed {r['seed']}: zoo {r['zoo']['tag']} fingerprint {r['zoo']['fingerprint']}"
            f" (zoo {r['zoo_seconds']:.0f}s, search {r['search_seconds']:.0f}s)"
        )
        print(format_table(r["heldout"]))
        print("  ".join(f"{k}: {'ok' if v else 'FAIL'}" for k, v in r["checks"].items()))
    print(f"\nall rules hold on every seed: {report['all_hold']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["all_hold"] else 1


if __name__ == "__main__":
    sys.exit(main())

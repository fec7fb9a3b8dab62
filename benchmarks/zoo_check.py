"""Is the demo zoo honest? Task-arithmetic merges searched on a grid over the search split
(merged = base + scale * sum_i w_i (theta_i - base), sources vlm, ja, med),
then the held-out table: every source, the uniform merge, the best merge, the image-blind
best reference text and the best merge with shuffled images.

    python benchmarks/zoo_check.py ZOO_DIR [--json OUT.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch

from jradievo_ray.config import load_config
from jradievo_ray.merge.recipe import (
    MergeRecipe,
    SourceRecipe,
    single_source_recipe,
    uniform_recipe,
)
from jradievo_ray.scoring.fitness import score_reports
from jradievo_ray.search.evaluator import GenomeEvaluator
from jradievo_ray.zoo import zoo_overrides

NAMES = ["vlm", "ja", "med"]


def config_for(zoo: Path):
    return load_config(None, zoo_overrides(zoo))


def ta(weights: list[float], scale: float = 1.0, ties: bool = False) -> MergeRecipe:
    return MergeRecipe(
        sources={n: SourceRecipe(weight=w) for n, w in zip(NAMES, weights, strict=True)},
        scale=scale,
        sign_consensus=ties,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("zoo", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--grid", default="0,0.3,0.6,0.9")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = config_for(args.zoo)
    ev = GenomeEvaluator(cfg)
    t0 = time.perf_counter()
    grid = [float(x) for x in args.grid.split(",")]
    results = []
    for w in itertools.product(grid, repeat=3):
        if sum(w) == 0:
            continue
        m = ev.evaluate_recipe(ta(list(w)), "search").metrics
        results.append((m["fitness"], list(w), 1.0))
    results.sort(reverse=True)
    for fit, w, _ in results[:5]:
        print(f"search grid top: {w} fitness {fit:.1f}")
    best_w = results[0][1]
    for scale in (0.8, 1.2, 1.5):
        m = ev.evaluate_recipe(ta(best_w, scale), "search").metrics
        results.append((m["fitness"], best_w, scale))
    results.sort(reverse=True)
    fit, best_w, best_scale = results[0]
    print(
        f"best on search: {best_w} scale {best_scale} fitness {fit:.1f} "
        f"({len(results)} evals, {time.perf_counter() - t0:.0f}s)"
    )

    rows = {"best": ta(best_w, best_scale), "uniform": uniform_recipe(NAMES)}
    rows["best_with_sign_consensus"] = ta(best_w, best_scale, ties=True)
    rows |= {f"source/{n}": single_source_recipe(NAMES, n) for n in NAMES}
    table, texts = {}, {}
    for name, recipe in rows.items():
        out = ev.evaluate_recipe(recipe, "heldout")
        table[name], texts[name] = out.metrics, out.texts
    table["best_images_shuffled"] = ev.evaluate_recipe(rows["best"], "heldout", 1).metrics
    search_refs = [s.report_ja for s in ev.splits["search"]]
    blind = max(
        search_refs,
        key=lambda t: score_reports([t] * len(search_refs), search_refs, cfg.scoring)["fitness"],
    )
    held_refs = [s.report_ja for s in ev.splits["heldout"]]
    table["blind"] = score_reports([blind] * len(held_refs), held_refs, cfg.scoring)
    print(f"blind text: {blind}")
    print(f"{'row':24s} {'fitness':>8s} {'rougeL':>8s} {'bleu4':>8s} {'F1':>8s}")
    for name, m in table.items():
        print(
            f"{name:24s} {m['fitness']:8.1f} {m['rouge_l']:8.1f} {m['bleu4']:8.1f} "
            f"{m['finding_f1']:8.1f}"
        )
    for name in ("best", "source/vlm", "source/ja", "source/med"):
        print(name, "|", " / ".join(texts[name][:3]))
    studies = ev.splits["heldout"]
    print("refs |", " / ".join(s.report_ja for s in studies[:3]))
    if args.json:
        args.json.write_text(json.dumps({"table": table, "best": [best_w, best_scale]}, indent=2))


if __name__ == "__main__":
    main()

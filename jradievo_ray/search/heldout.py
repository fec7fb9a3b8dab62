"""The end-of-search table: best merge vs every source, the uniform merge, an image-blind
report and the best merge with shuffled images, plus per-source ablations, on held-out data."""

from __future__ import annotations

from typing import Any

from jradievo_ray.config import ScoringConfig
from jradievo_ray.merge.recipe import Recipe, single_source_recipe, uniform_recipe
from jradievo_ray.scoring.fitness import per_finding_f1, score_reports
from jradievo_ray.search.evaluation import Evaluation

TABLE_METRICS = ("n", "rouge_l", "bleu4", "finding_f1", "fitness")
SHUFFLE_SEED = 1234


def row_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (int(metrics[k]) if k == "n" else float(metrics[k])) for k in TABLE_METRICS}


def best_blind_text(search_refs: list[str], cfg: ScoringConfig) -> tuple[str, float]:
    """Among the search split's references, the one text that, written for every study,
    has the highest fitness on the search split."""
    best_text, best_fit = "", float("-inf")
    for text in dict.fromkeys(search_refs):
        fit = score_reports([text] * len(search_refs), search_refs, cfg)["fitness"]
        if fit > best_fit:
            best_text, best_fit = text, fit
    return best_text, best_fit


def blind_row(text: str, heldout_refs: list[str], cfg: ScoringConfig) -> Evaluation:
    """`text` written for every held-out study, scored as a row of the table."""
    preds = [text] * len(heldout_refs)
    metrics = score_reports(preds, heldout_refs, cfg)
    return Evaluation(
        fitness=float(metrics["fitness"]),
        metrics=metrics,
        seconds={},
        per_finding=per_finding_f1(preds, heldout_refs, cfg),
    )


def recipe_rows(names: list[str], best: Recipe) -> dict[str, tuple[Recipe, int | None]]:
    """Every row that needs a merge + generation: name -> (recipe, image shuffle seed)."""
    rows: dict[str, tuple[Recipe, int | None]] = {
        "best": (best, None),
        "uniform": (uniform_recipe(names), None),
        "best_images_shuffled": (best, SHUFFLE_SEED),
    }
    for name in names:
        rows[f"source/{name}"] = (single_source_recipe(names, name), None)
    for name in names:
        rows[f"ablation/{name}"] = (best.with_weight(name, 0.0), None)
    return rows


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    head = f"{'model':28s} {'n':>4s} {'ROUGE-L':>8s} {'BLEU-4':>7s} {'F1':>6s} {'fitness':>8s}"
    lines = [head, "-" * len(head)]
    for name, m in rows.items():
        lines.append(
            f"{name:28s} {m['n']:4d} {m['rouge_l']:8.2f} {m['bleu4']:7.2f}"
            f" {m['finding_f1']:6.2f} {m['fitness']:8.2f}"
        )
    return "\n".join(lines)

"""The full evaluation table: every metric with its 95% CI plus per-finding F1, as the JSON
`jradievo evaluate` writes and the Markdown a paper prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jradievo_ray.scoring.bootstrap import RESAMPLES, SEED, confidence_intervals
from jradievo_ray.scoring.findings import per_label_f1
from jradievo_ray.scoring.labeler import LABELS
from jradievo_ray.scoring.metrics import corpus_metrics, report_stats

NAMES = {
    "bleu1": "BLEU-1",
    "bleu2": "BLEU-2",
    "bleu3": "BLEU-3",
    "bleu4": "BLEU-4",
    "rouge_l": "ROUGE-L",
    "meteor": "METEOR (exact match)",
    "finding_f1_micro": "Finding F1 (micro)",
    "finding_f1_macro": "Finding F1 (macro)",
    "japanese_ratio": "Japanese ratio",
}


def full_scores(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    uncertain_as_positive: bool = True,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, Any]:
    """`jradievo score`'s JSON ({"n", metrics..., "ci95"}) plus "per_finding" ({label: F1}
    for labels present on either side) and "finding_counts" ({label: {"tp","fp","fn"}})."""
    stats = report_stats(predictions, references, uncertain_as_positive=uncertain_as_positive)
    out: dict[str, Any] = {"n": stats.n, **corpus_metrics(stats)}
    out["ci95"] = confidence_intervals(stats, resamples, seed)
    out["per_finding"] = per_label_f1(stats.finding_counts)
    totals = stats.finding_counts.sum(0).astype(int)
    out["finding_counts"] = {
        label: {"tp": int(tp), "fp": int(fp), "fn": int(fn)}
        for label, (tp, fp, fn) in zip(LABELS, totals, strict=True)
    }
    return out


def _num(value: float) -> str:
    return f"{value:.2f}"


def markdown_table(result: dict[str, Any]) -> str:
    """Markdown of a `full_scores` result; "model", "data", "backend" and "settings" (with
    "resamples", "seed", "uncertain_as_positive") are shown when present."""
    lines = ["# Evaluation", ""]
    for key in ("model", "data", "backend"):
        if key in result:
            lines.append(f"- {key}: `{result[key]}`")
    lines.append(f"- reports: {result['n']}")
    settings = result.get("settings", {})
    if "resamples" in settings:
        lines.append(
            f"- 95% CI: percentile bootstrap over reports, {settings['resamples']:,} "
            f"resamples, seed {settings['seed']}"
        )
    if "uncertain_as_positive" in settings:
        how = "present" if settings["uncertain_as_positive"] else "absent"
        lines.append(f"- finding F1: uncertain mentions count as {how}")
    lines += ["", "| Metric | Value | 95% CI |", "|---|---:|---:|"]
    for key, name in NAMES.items():
        if key in result:
            lo, hi = result["ci95"][key]
            lines.append(f"| {name} | {_num(result[key])} | [{_num(lo)}, {_num(hi)}] |")
    lines += [
        "",
        "Scale 0-100; Japanese ratio 0-1 (share of mainly Japanese reports). Tokens: MeCab "
        "(sacrebleu ja-mecab). METEOR counts exact token matches only.",
        "",
        "| Finding | F1 | In references | In predictions |",
        "|---|---:|---:|---:|",
    ]
    per_finding = result["per_finding"]
    for label in LABELS:
        c = result["finding_counts"][label]
        f1 = _num(per_finding[label]) if label in per_finding else "-"
        lines.append(f"| {label} | {f1} | {c['tp'] + c['fn']} | {c['tp'] + c['fp']} |")
    lines += ["", "F1 is '-' for a finding neither side mentions."]
    return "\n".join(lines) + "\n"

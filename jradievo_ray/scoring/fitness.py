"""The search fitness: BLEU-4, ROUGE-L and finding F1 of generated Japanese reports.

Tokenisations and labels are cached per text, so references (the same for every genome)
cost nothing after the first call.
"""

from __future__ import annotations

from collections.abc import Sequence

from jradievo_ray.config import ScoringConfig
from jradievo_ray.scoring.findings import per_label_f1
from jradievo_ray.scoring.metrics import ReportStats, corpus_metrics, report_stats


def _stats(
    predictions: Sequence[str], references: Sequence[str], cfg: ScoringConfig
) -> ReportStats:
    if not references:
        raise ValueError("no reports to score")
    return report_stats(
        predictions,
        references,
        uncertain_as_positive=cfg.uncertain_as_positive,
        blank_non_japanese=cfg.require_japanese,
        meteor=False,
    )


def score_reports(
    predictions: Sequence[str], references: Sequence[str], cfg: ScoringConfig
) -> dict[str, float]:
    """{"n", "rouge_l", "bleu4", "finding_f1" (micro), "fitness", ...}, all 0-100 except n
    and japanese_ratio (0-1). With `cfg.require_japanese` a prediction that is not mainly
    Japanese is scored as the empty string."""
    m = corpus_metrics(_stats(predictions, references, cfg))
    weights = {"bleu4": cfg.bleu4, "rouge_l": cfg.rouge_l, "finding_f1": cfg.finding_f1}
    out: dict[str, float] = {"n": len(references), **m, "finding_f1": m["finding_f1_micro"]}
    out["fitness"] = sum(w * out[k] for k, w in weights.items()) / sum(weights.values())
    return out


def per_finding_f1(
    predictions: Sequence[str], references: Sequence[str], cfg: ScoringConfig
) -> dict[str, float]:
    """{label: F1 0-100} for the labels present in the references or predictions."""
    return per_label_f1(_stats(predictions, references, cfg).finding_counts)

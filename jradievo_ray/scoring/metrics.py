"""Every report metric from per-report statistics that sum over reports.

`report_stats` tokenises and labels each text once; `metrics_from_sums` turns summed
statistics into the metrics, vectorised over any leading axes, so the point estimate and
each bootstrap resample use the very same formula.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jradievo_ray.scoring import lexical
from jradievo_ray.scoring.findings import f1_from_counts, finding_counts, presence
from jradievo_ray.scoring.japanese import is_japanese
from jradievo_ray.scoring.labeler import LABELS
from jradievo_ray.scoring.tokenize import tokenize

METRICS = (
    "bleu1",
    "bleu2",
    "bleu3",
    "bleu4",
    "rouge_l",
    "meteor",
    "finding_f1_micro",
    "finding_f1_macro",
    "japanese_ratio",
)
_B = lexical.BLEU_STATS
_F = len(LABELS) * 3
# Column layout of the flat per-report matrix.
_BLEU = slice(0, _B)
_ROUGE, _METEOR, _JA = _B, _B + 1, _B + 2
_FIND = slice(_B + 3, _B + 3 + _F)
WIDTH = _B + 3 + _F


@dataclass(frozen=True)
class ReportStats:
    """Per-report statistics; `matrix` is (n, WIDTH) float64 (layout above)."""

    matrix: np.ndarray
    has_meteor: bool

    @property
    def n(self) -> int:
        return self.matrix.shape[0]

    @property
    def finding_counts(self) -> np.ndarray:
        return self.matrix[:, _FIND].reshape(-1, len(LABELS), 3)


def report_stats(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    uncertain_as_positive: bool = True,
    blank_non_japanese: bool = False,
    meteor: bool = True,
) -> ReportStats:
    """Statistics of each (prediction, reference) pair.

    `blank_non_japanese` replaces a prediction that is not mainly Japanese by "" (it then
    scores 0 on every metric); `japanese_ratio` still reports the original predictions.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    japanese = np.fromiter((is_japanese(p) for p in predictions), bool, len(predictions))
    if blank_non_japanese:
        predictions = [p if ok else "" for p, ok in zip(predictions, japanese, strict=True)]
    out = np.zeros((len(predictions), WIDTH))
    out[:, _JA] = japanese
    for i, (pred, ref) in enumerate(zip(predictions, references, strict=True)):
        hyp, tgt = tokenize(pred), tokenize(ref)
        out[i, _BLEU] = lexical.bleu_stats(hyp, tgt)
        out[i, _ROUGE] = lexical.rouge_l(hyp, tgt)
        if meteor:
            out[i, _METEOR] = lexical.meteor(hyp, tgt)
    counts = finding_counts(
        presence(predictions, uncertain_as_positive), presence(references, uncertain_as_positive)
    )
    out[:, _FIND] = counts.reshape(len(predictions), _F)
    return ReportStats(out, meteor)


def metrics_from_sums(sums: np.ndarray, n: int | np.ndarray) -> dict[str, np.ndarray]:
    """Metrics (0-100; japanese_ratio 0-1) from column sums of ReportStats.matrix.

    `sums` is (..., WIDTH); `n` the number of reports summed (scalar or broadcastable).
    """
    sums = np.asarray(sums, dtype=np.float64)
    bleu = sums[..., _BLEU]
    micro, macro, _ = f1_from_counts(sums[..., _FIND].reshape(*sums.shape[:-1], len(LABELS), 3))
    out = {f"bleu{k}": lexical.bleu_from_stats(bleu, k) for k in range(1, 5)}
    out["rouge_l"] = 100 * sums[..., _ROUGE] / n
    out["meteor"] = 100 * sums[..., _METEOR] / n
    out["finding_f1_micro"] = micro
    out["finding_f1_macro"] = macro
    out["japanese_ratio"] = sums[..., _JA] / n
    return out


def corpus_metrics(stats: ReportStats) -> dict[str, float]:
    """Point estimates of every metric (METEOR only if it was computed)."""
    if stats.n == 0:
        raise ValueError("no reports to score")
    values = metrics_from_sums(stats.matrix.sum(0), stats.n)
    return {k: float(values[k]) for k in METRICS if k != "meteor" or stats.has_meteor}

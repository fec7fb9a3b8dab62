"""Clinical finding F1 from the CheXpert labels of predictions and references.

A label counts as present when it is 1, or -1 if `uncertain_as_positive` (the CheXbert-style
default). Per report and label we keep (tp, fp, fn), so corpus and bootstrap F1 are sums.
- micro F1: 2·TP / (2·TP + FP + FN) over all 14 labels (0 when nothing is present anywhere);
- macro F1: mean of the per-label F1 over the labels present in some reference or prediction
  (labels absent from both have no defined F1 and are left out).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jradievo_ray.scoring.labeler import LABELS, POSITIVE, UNCERTAIN, label_text


def presence(texts: Sequence[str], uncertain_as_positive: bool = True) -> np.ndarray:
    """(n, 14) bool: label present in each text."""
    present = {POSITIVE, UNCERTAIN} if uncertain_as_positive else {POSITIVE}
    out = np.zeros((len(texts), len(LABELS)), dtype=bool)
    for i, text in enumerate(texts):
        labels = label_text(text)
        for j, name in enumerate(LABELS):
            if labels.get(name) in present:
                out[i, j] = True
    return out


def finding_counts(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(n, 14, 3) int: per report and label, (tp, fp, fn)."""
    return np.stack([pred & ref, pred & ~ref, ~pred & ref], axis=-1).astype(np.int64)


def f1_from_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From summed counts (..., 14, 3): micro F1 (...), macro F1 (...), per-label F1 (..., 14)
    with NaN for labels absent from both sides. All 0-100."""
    counts = np.asarray(counts, dtype=np.float64)
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    denom = 2 * tp + fp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        per_label = np.where(denom > 0, 200 * tp / denom, np.nan)
        tp_all, denom_all = tp.sum(-1), denom.sum(-1)
        micro = np.where(denom_all > 0, 200 * tp_all / denom_all, 0.0)
        present = denom > 0
        macro = np.where(
            present.any(-1), np.where(present, per_label, 0).sum(-1) / present.sum(-1), 0.0
        )
    return micro, macro, per_label


def per_label_f1(counts: np.ndarray) -> dict[str, float]:
    """{label: F1 0-100} for the labels present in references or predictions."""
    _, _, per_label = f1_from_counts(np.asarray(counts).reshape(-1, len(LABELS), 3).sum(0))
    return {name: float(f) for name, f in zip(LABELS, per_label, strict=True) if not np.isnan(f)}

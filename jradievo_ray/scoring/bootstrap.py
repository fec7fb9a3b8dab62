"""Bootstrap confidence intervals and paired-bootstrap comparisons, vectorised.

Each resample draws n reports with replacement; as every metric is a function of summed
per-report statistics, a resample's sums are one matrix product (counts x statistics).
"""

from __future__ import annotations

import numpy as np

from jradievo_ray.scoring.metrics import ReportStats, corpus_metrics, metrics_from_sums

RESAMPLES = 10_000
SEED = 12345
_CHUNK = 1000  # resamples per matrix product (bounds memory at 1000 x n)


def _resample_sums(matrix: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, width): column sums of `matrix` over bootstrap resamples of its rows."""
    n = matrix.shape[0]
    rng = np.random.default_rng(seed)
    # float32 is exact for the integer counts; ROUGE-L/METEOR sums keep ~7 digits.
    stats = matrix.astype(np.float32)
    out = np.empty((resamples, matrix.shape[1]))
    for lo in range(0, resamples, _CHUNK):
        b = min(_CHUNK, resamples - lo)
        idx = rng.integers(0, n, size=(b, n), dtype=np.int64)
        idx += (np.arange(b) * n)[:, None]
        weights = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n)
        out[lo : lo + b] = weights.astype(np.float32) @ stats
    return out


def _interval(values: np.ndarray) -> list[float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]


def confidence_intervals(
    stats: ReportStats, resamples: int = RESAMPLES, seed: int = SEED
) -> dict[str, list[float]]:
    """95% percentile-bootstrap interval of every metric in corpus_metrics."""
    names = corpus_metrics(stats).keys()
    boot = metrics_from_sums(_resample_sums(stats.matrix, resamples, seed), stats.n)
    return {k: _interval(boot[k]) for k in names}


def paired_comparison(
    a: ReportStats, b: ReportStats, resamples: int = RESAMPLES, seed: int = SEED
) -> dict[str, dict[str, float | list[float]]]:
    """Difference B - A of every metric on the same reports, with its 95% interval and a
    two-sided p-value: 2 x the share of resamples whose difference has the other sign
    (or is 0), capped at 1."""
    if a.n != b.n:
        raise ValueError(f"systems scored on different report counts: {a.n} vs {b.n}")
    point_a, point_b = corpus_metrics(a), corpus_metrics(b)
    names = [k for k in point_a if k in point_b]
    width = a.matrix.shape[1]
    sums = _resample_sums(np.hstack([a.matrix, b.matrix]), resamples, seed)
    boot_a = metrics_from_sums(sums[:, :width], a.n)
    boot_b = metrics_from_sums(sums[:, width:], b.n)
    out: dict[str, dict[str, float | list[float]]] = {}
    for k in names:
        diff = boot_b[k] - boot_a[k]
        observed = point_b[k] - point_a[k]
        if observed > 0:
            p = 2 * np.mean(diff <= 0)
        elif observed < 0:
            p = 2 * np.mean(diff >= 0)
        else:
            p = 1.0
        out[k] = {
            "a": point_a[k],
            "b": point_b[k],
            "diff": observed,
            "ci95": _interval(diff),
            "p_value": float(min(1.0, p)),
        }
    return out

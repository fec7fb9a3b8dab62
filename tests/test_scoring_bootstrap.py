"""Bootstrap intervals and paired comparisons: vectorised sums equal explicit resamples."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from random_reports import SENTENCES, random_reports
from sacrebleu.metrics import BLEU

from jradievo_ray.scoring.bootstrap import confidence_intervals, paired_comparison
from jradievo_ray.scoring.metrics import METRICS, corpus_metrics, metrics_from_sums, report_stats

FRAGMENTS = [
    *SENTENCES,
    "心拡大を認める。",
    "肺炎の可能性は否定できない。",
    "肺うっ血を認める。",
    "左胸水あり。",
    "右肋骨骨折あり。",
]


def reports(seed: int, n: int) -> list[str]:
    return random_reports(random.Random(seed), n, FRAGMENTS, (1, 5))


def test_resample_sums_equal_explicitly_resampled_corpora() -> None:
    preds, refs = reports(0, 80), reports(1, 80)
    stats = report_stats(preds, refs)
    rng = np.random.default_rng(0)
    for _ in range(3):
        idx = rng.integers(0, 80, 80)
        weights = np.bincount(idx, minlength=80)
        vectorised = metrics_from_sums(weights @ stats.matrix, 80)
        p, r = [preds[i] for i in idx], [refs[i] for i in idx]
        explicit = corpus_metrics(report_stats(p, r))
        for k in METRICS:
            assert float(vectorised[k]) == pytest.approx(explicit[k], abs=1e-9), k
        sacre = BLEU(tokenize="ja-mecab").corpus_score(p, [r]).score
        assert float(vectorised["bleu4"]) == pytest.approx(sacre, abs=1e-6)


def test_intervals_are_seeded_and_bracket_the_estimate() -> None:
    stats = report_stats(reports(2, 200), reports(3, 200))
    point = corpus_metrics(stats)
    ci = confidence_intervals(stats, resamples=2000, seed=7)
    assert set(ci) == set(METRICS)
    for k, (lo, hi) in ci.items():
        assert lo <= point[k] <= hi, k
    assert ci["bleu4"][1] - ci["bleu4"][0] > 0.5  # 200 random reports: a real spread
    assert confidence_intervals(stats, resamples=2000, seed=7) == ci
    assert confidence_intervals(stats, resamples=2000, seed=8) != ci


def test_all_metrics_with_intervals_for_2500_reports_under_5s() -> None:
    preds, refs = reports(4, 2500), reports(5, 2500)
    start_cpu, start = time.process_time(), time.perf_counter()
    stats = report_stats(preds, refs)
    ci = confidence_intervals(stats)  # 10,000 resamples
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start
    print(f"\n2500 reports, 10,000 resamples: {cpu:.2f} s CPU, {wall:.2f} s wall")
    assert len(ci) == len(METRICS)
    assert cpu < 5.0


def test_paired_comparison() -> None:
    refs = reports(6, 300)
    weak = reports(7, 300)
    strong = [r if i % 2 else w for i, (r, w) in enumerate(zip(refs, weak, strict=True))]
    a, b = report_stats(weak, refs), report_stats(strong, refs)
    out = paired_comparison(a, b, resamples=2000)
    for k in ("bleu4", "rouge_l", "meteor", "finding_f1_micro"):
        assert out[k]["diff"] == pytest.approx(out[k]["b"] - out[k]["a"])
        assert out[k]["diff"] > 0 and out[k]["ci95"][0] > 0, k
        assert out[k]["p_value"] < 0.01, k
    same = paired_comparison(a, report_stats(weak, refs), resamples=500)
    assert all(v["diff"] == 0 and v["p_value"] == 1.0 for v in same.values())
    assert all(v["ci95"] == [0.0, 0.0] for v in same.values())

"""The search fitness (scoring/fitness.py) on known strings."""

from __future__ import annotations

import random
import statistics
import time

import pytest
from random_reports import SENTENCES, random_reports

from jradievo_ray.config import ScoringConfig
from jradievo_ray.scoring.fitness import per_finding_f1, score_reports
from jradievo_ray.scoring.metrics import corpus_metrics, report_stats

REFS = ["右胸水を認める。心拡大なし。", "左気胸あり。", "異常なし。", "心拡大を認める。"]


def test_fields_and_weighted_fitness() -> None:
    cfg = ScoringConfig(bleu4=1.0, rouge_l=2.0, finding_f1=3.0)
    preds = ["右胸水を認める。", "気胸なし。", "異常なし。", "心拡大あり。"]
    m = score_reports(preds, REFS, cfg)
    assert m["n"] == 4
    for k in ("rouge_l", "bleu4", "finding_f1", "fitness"):
        assert 0 <= m[k] <= 100
    full = corpus_metrics(report_stats(preds, REFS, meteor=False))
    assert m["finding_f1"] == full["finding_f1_micro"]
    assert m["bleu4"] == full["bleu4"] and m["rouge_l"] == full["rouge_l"]
    want = (1 * m["bleu4"] + 2 * m["rouge_l"] + 3 * m["finding_f1"]) / 6
    assert m["fitness"] == pytest.approx(want)
    assert score_reports(REFS, REFS, cfg)["fitness"] == pytest.approx(100.0)


def test_finding_f1_by_hand() -> None:
    cfg = ScoringConfig()
    preds = ["右胸水を認める。", "心拡大を認める。"]
    refs = ["右胸水を認める。", "気胸あり。"]
    # Pleural Effusion: TP; Cardiomegaly: FP; Pneumothorax: FN.
    assert score_reports(preds, refs, cfg)["finding_f1"] == pytest.approx(50.0)
    assert per_finding_f1(preds, refs, cfg) == {
        "Cardiomegaly": 0.0,
        "Pneumothorax": 0.0,
        "Pleural Effusion": 100.0,
    }
    assert corpus_metrics(report_stats(preds, refs))["finding_f1_macro"] == pytest.approx(100 / 3)


def test_negated_finding_is_not_a_match() -> None:
    cfg = ScoringConfig()
    assert score_reports(["気胸は認めない。"], ["気胸を認める。"], cfg)["finding_f1"] == 0.0


def test_uncertain_counts_as_positive_by_config() -> None:
    preds, refs = ["肺炎の疑い。"], ["肺炎を認める。"]
    assert score_reports(preds, refs, ScoringConfig())["finding_f1"] == 100.0
    strict = ScoringConfig(uncertain_as_positive=False)
    assert score_reports(preds, refs, strict)["finding_f1"] == 0.0


def test_non_japanese_prediction_scores_zero() -> None:
    refs = ["CTR 55% と心拡大を認める。"]
    preds = ["CTR 55% cardiomegaly"]
    blanked = score_reports(preds, refs, ScoringConfig())
    assert blanked["fitness"] == 0 and blanked["bleu4"] == 0 and blanked["rouge_l"] == 0
    assert blanked["japanese_ratio"] == 0.0
    allowed = score_reports(preds, refs, ScoringConfig(require_japanese=False))
    assert allowed["rouge_l"] > 0


def test_empty_predictions_earn_nothing() -> None:
    m = score_reports([""] * len(REFS), REFS, ScoringConfig())
    assert m["fitness"] == 0


def test_fifty_reports_score_well_under_50ms() -> None:
    rng = random.Random(0)
    refs = random_reports(rng, 50, SENTENCES, 3)
    cfg = ScoringConfig()
    score_reports(refs, refs, cfg)  # warm-up: references tokenised and labelled once
    times = []
    for trial in range(10):  # fresh predictions every time, as for a new genome
        preds = [f"{r}第{trial}回。" for r in random_reports(rng, 50, SENTENCES, 3)]
        start = time.perf_counter()
        score_reports(preds, refs, cfg)
        times.append(time.perf_counter() - start)
    print(f"\nscore 50 reports: median {1e3 * statistics.median(times):.1f} ms")
    assert statistics.median(times) < 0.05

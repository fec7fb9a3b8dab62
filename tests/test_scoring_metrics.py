"""BLEU, ROUGE-L and METEOR equal the reference tools themselves on MeCab tokens."""

from __future__ import annotations

import random

import numpy as np
import pytest
import random_reports
from nltk.translate.meteor_score import single_meteor_score
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_ja_mecab import TokenizerJaMecab

from jradievo_ray.scoring import lexical
from jradievo_ray.scoring.japanese import is_japanese, japanese_ratio
from jradievo_ray.scoring.metrics import corpus_metrics, report_stats
from jradievo_ray.scoring.tokenize import tokenize

SENTENCES = [
    *random_reports.SENTENCES,
    "心胸郭比 0.58 と心拡大を認める。",
    "肺炎の可能性は否定できない。",
    "両側肺野に明らかな異常陰影は認めない。",
    "CTR 55%",
    "No acute cardiopulmonary process.",
    "ｷｮｳｽｲ なし",
    "胸水　貯留",
]


def corpus(seed: int, n: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    preds = random_reports.random_reports(rng, n, SENTENCES, (0, 5))
    refs = random_reports.random_reports(rng, n, SENTENCES, (0, 5))
    preds[0], refs[1] = "", ""  # empty prediction and empty reference
    preds[2] = refs[2]  # an exact match
    return preds, refs


def test_tokens_are_sacrebleus() -> None:
    tok = TokenizerJaMecab()
    for text in SENTENCES:
        assert list(tokenize(text)) == tok(text.rstrip()).split()
    assert tokenize("右胸水を認める。") == ("右", "胸水", "を", "認める", "。")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bleu_equals_sacrebleu(seed: int) -> None:
    preds, refs = corpus(seed, 120)
    stats = report_stats(preds, refs, meteor=False)
    ours = corpus_metrics(stats)
    for order in (1, 2, 3, 4):
        ref = BLEU(tokenize="ja-mecab", max_ngram_order=order).corpus_score(preds, [refs]).score
        assert ours[f"bleu{order}"] == pytest.approx(ref, abs=1e-6)
        assert 0 < ours[f"bleu{order}"] < 100


def test_bleu_edge_cases_equal_sacrebleu() -> None:
    cases = [
        (["心拡大なし。"], ["心拡大なし。"]),  # perfect
        (["気胸"], ["右胸水を認める。"]),  # no match at all
        (["胸水"], ["胸水"]),  # one token: no 2-grams (sacrebleu stops at the empty order)
        (["右胸水"], ["右胸水を認める。"]),  # short: brevity penalty, zero 3-gram matches
        ([""], ["右胸水を認める。"]),  # empty hypothesis
    ]
    for preds, refs in cases:
        ours = corpus_metrics(report_stats(preds, refs, meteor=False))
        for order in (1, 2, 3, 4):
            ref = BLEU(tokenize="ja-mecab", max_ngram_order=order).corpus_score(preds, [refs])
            assert ours[f"bleu{order}"] == pytest.approx(ref.score, abs=1e-6), (preds, order)


class _MeCab:
    def tokenize(self, text: str) -> list[str]:
        return list(tokenize(text))


@pytest.mark.parametrize("seed", [0, 1])
def test_rouge_l_equals_rouge_score(seed: int) -> None:
    preds, refs = corpus(seed, 150)
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_MeCab())
    expected = [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(preds, refs, strict=True)]
    for p, r, e in zip(preds, refs, expected, strict=True):
        assert lexical.rouge_l(tokenize(p), tokenize(r)) == pytest.approx(e, abs=1e-12)
    ours = corpus_metrics(report_stats(preds, refs, meteor=False))["rouge_l"]
    assert ours == pytest.approx(100 * np.mean(expected), abs=1e-6)


def test_lcs_on_long_random_sequences() -> None:
    """Bit-parallel LCS against the textbook DP on sequences longer than a machine word."""
    rng = random.Random(0)
    for _ in range(30):
        a = tuple(rng.choice("abcde") for _ in range(rng.randint(0, 150)))
        b = tuple(rng.choice("abcdef") for _ in range(rng.randint(1, 150)))
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                table[i][j] = (
                    table[i - 1][j - 1] + 1
                    if a[i - 1] == b[j - 1]
                    else max(table[i - 1][j], table[i][j - 1])
                )
        assert lexical.lcs_length(a, b) == table[-1][-1]


class _NoSynonyms:
    def synsets(self, _word: str) -> list:
        return []


class _Identity:
    def stem(self, word: str) -> str:
        return word


@pytest.mark.parametrize("seed", [0, 1])
def test_meteor_equals_nltk_exact_only(seed: int) -> None:
    preds, refs = corpus(seed, 150)
    for p, r in zip(preds, refs, strict=True):
        hyp, ref = tokenize(p), tokenize(r)
        expected = single_meteor_score(
            list(ref), list(hyp), stemmer=_Identity(), wordnet=_NoSynonyms()
        )
        assert lexical.meteor(hyp, ref) == pytest.approx(expected, abs=1e-12)


def test_meteor_exact_only_ignores_case_like_nltk() -> None:
    assert lexical.meteor(("CTR", "拡大"), ("ctr", "拡大")) == pytest.approx(
        single_meteor_score(
            ["ctr", "拡大"], ["CTR", "拡大"], stemmer=_Identity(), wordnet=_NoSynonyms()
        )
    )


def test_identical_reports_score_100_and_unrelated_0() -> None:
    refs = ["右胸水を認める。心拡大なし。", "左気胸あり。", "異常なし。"]
    same = corpus_metrics(report_stats(refs, refs))
    for key in ("bleu1", "bleu4", "rouge_l", "finding_f1_micro", "finding_f1_macro"):
        assert same[key] == pytest.approx(100.0), key
    assert same["meteor"] > 95  # METEOR's fragmentation penalty keeps it below 100
    empty = corpus_metrics(report_stats([""] * 3, refs))
    assert all(empty[k] == 0 for k in empty)


def test_japanese_check() -> None:
    assert is_japanese("右胸水を認める。")
    assert is_japanese("CTR 55%、心拡大あり。")  # 2 Latin letters vs 5 Japanese
    assert is_japanese("ｷｮｳｽｲ")  # half-width katakana
    assert not is_japanese("No acute findings. 胸水")
    assert not is_japanese("CTR 55%")
    assert not is_japanese("")
    assert not is_japanese("。、 123")
    assert japanese_ratio(["胸水あり", "effusion", "", "気胸"]) == 0.5

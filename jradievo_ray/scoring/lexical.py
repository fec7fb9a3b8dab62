"""BLEU, ROUGE-L and METEOR from MeCab tokens, as per-report statistics.

Per-report statistics sum (BLEU) or average (ROUGE-L, METEOR) to the corpus score, so the
bootstrap only re-weights them. The formulas are those of the reference tools:
- BLEU: sacrebleu's corpus BLEU (`tokenize="ja-mecab"`, smoothing "exp", one reference);
  statistics per report are `[hyp_len, ref_len, correct_1..4, total_1..4]`.
- ROUGE-L: rouge-score's LCS F-measure on the same tokens (bit-parallel LCS here).
- METEOR: NLTK's `single_meteor_score` with exact matches only, as no Japanese WordNet
  exists (and Porter stemming means nothing for Japanese); re-implemented here for speed,
  tested equal to NLTK's own function given an identity stemmer and an empty WordNet.
  Nothing is downloaded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

MAX_ORDER = 4
BLEU_STATS = 2 + 2 * MAX_ORDER  # hyp_len, ref_len, correct_1..4, total_1..4
_LOG_ZERO = -9999999999  # sacrebleu.utils.my_log(0)


@lru_cache(maxsize=2**16)
def ngram_counts(tokens: tuple[str, ...]) -> tuple[Counter, ...]:
    """Counts of the 1..4-grams of a token sequence, one Counter per order (the n-grams of
    sacrebleu's extract_all_word_ngrams)."""
    return tuple(
        Counter(zip(*(tokens[i:] for i in range(n)), strict=False)) for n in range(1, MAX_ORDER + 1)
    )


def bleu_stats(hyp: tuple[str, ...], ref: tuple[str, ...]) -> list[int]:
    correct = [0] * MAX_ORDER
    total = [0] * MAX_ORDER
    for n, (hyp_ngrams, ref_ngrams) in enumerate(
        zip(ngram_counts(hyp), ngram_counts(ref), strict=True)
    ):
        total[n] = max(len(hyp) - n, 0)
        correct[n] = sum(
            min(count, ref_ngrams[g]) for g, count in hyp_ngrams.items() if g in ref_ngrams
        )
    return [len(hyp), len(ref), *correct, *total]


def bleu_from_stats(sums: np.ndarray, order: int = MAX_ORDER) -> np.ndarray:
    """sacrebleu's BLEU (smooth "exp", no effective order) from summed statistics.

    `sums` has shape (..., BLEU_STATS); returns BLEU-`order` (0-100) with shape (...).
    """
    sums = np.asarray(sums, dtype=np.float64)
    sys_len, ref_len = sums[..., 0], sums[..., 1]
    correct = sums[..., 2 : 2 + order]
    total = sums[..., 2 + MAX_ORDER : 2 + MAX_ORDER + order]
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(
            sys_len >= ref_len, 1.0, np.where(sys_len > 0, np.exp(1 - ref_len / sys_len), 0.0)
        )
        log_sum = np.zeros(sys_len.shape)
        smooth = np.ones(sys_len.shape)
        alive = np.ones(sys_len.shape, dtype=bool)  # sacrebleu stops at the first empty order
        for n in range(order):
            c, t = correct[..., n], total[..., n]
            alive &= t > 0
            zero = alive & (c == 0)
            smooth = np.where(zero, smooth * 2, smooth)
            prec = np.where(zero, 100.0 / (smooth * t), 100.0 * c / t)
            log_sum += np.where(alive, np.log(np.where(alive, prec, 1.0)), _LOG_ZERO)
        score = bp * np.exp(log_sum / order)
    return np.where(correct.sum(axis=-1) > 0, score, 0.0)


@lru_cache(maxsize=2**16)
def _position_masks(ref: tuple[str, ...]) -> dict[str, int]:
    masks: dict[str, int] = {}
    for i, tok in enumerate(ref):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    return masks


def lcs_length(hyp: Sequence[str], ref: tuple[str, ...]) -> int:
    """Longest common subsequence length, bit-parallel (Allison-Dix / Hyyrö)."""
    masks = _position_masks(ref)
    full = (1 << len(ref)) - 1
    v = full
    for tok in hyp:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return len(ref) - v.bit_count()


def rouge_l(hyp: tuple[str, ...], ref: tuple[str, ...]) -> float:
    """rouge-score's ROUGE-L F-measure (0-1)."""
    if not hyp or not ref:
        return 0.0
    lcs = lcs_length(hyp, ref)
    precision, recall = lcs / len(hyp), lcs / len(ref)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def meteor(
    hyp: tuple[str, ...],
    ref: tuple[str, ...],
    alpha: float = 0.9,
    beta: float = 3.0,
    gamma: float = 0.5,
) -> float:
    """NLTK's `single_meteor_score` (0-1) restricted to exact matches, re-implemented for
    speed: same lower-casing, same alignment (each hypothesis word, from the last, takes the
    latest unused equal reference word), same chunk count and formula."""
    if not hyp or not ref:
        return 0.0
    positions: dict[str, list[int]] = {}
    for j, word in enumerate(ref):
        positions.setdefault(word.lower(), []).append(j)
    matches: list[tuple[int, int]] = []
    for i in range(len(hyp) - 1, -1, -1):
        free = positions.get(hyp[i].lower())
        if free:
            matches.append((i, free.pop()))
    if not matches:
        return 0.0
    matches.reverse()
    chunks = 1 + sum(
        1
        for (h0, r0), (h1, r1) in zip(matches, matches[1:], strict=False)
        if not (h1 == h0 + 1 and r1 == r0 + 1)
    )
    precision, recall = len(matches) / len(hyp), len(matches) / len(ref)
    fmean = precision * recall / (alpha * precision + (1 - alpha) * recall)
    return (1 - gamma * (chunks / len(matches)) ** beta) * fmean

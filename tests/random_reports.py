"""Random Japanese radiology reports for scoring tests and benchmarks (no data set needed).

A report is a few distinct sentences from a bank, joined, so predictions and references
share n-grams and findings the way real ones do.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

SENTENCES: tuple[str, ...] = (
    "右胸水を認める。",
    "心拡大なし。",
    "気胸は認めない。",
    "左下肺野に浸潤影を認める。",
    "異常なし。",
    "ペースメーカーが留置されている。",
    "右上肺野に結節影あり。",
)


def random_reports(
    rng: random.Random,
    n: int,
    sentences: Sequence[str] = SENTENCES,
    count: int | tuple[int, int] = (1, 5),
) -> list[str]:
    """`n` reports, each `count` distinct `sentences` (or `rng.randint(*count)` of them)
    drawn with `rng` and joined."""
    if isinstance(count, int):
        return ["".join(rng.sample(sentences, count)) for _ in range(n)]
    return ["".join(rng.sample(sentences, rng.randint(*count))) for _ in range(n)]

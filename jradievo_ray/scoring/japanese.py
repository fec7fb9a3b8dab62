"""Is a report written in Japanese?

A text is *mainly Japanese* when more than half of its letters (characters with
`str.isalpha()`, i.e. Unicode categories L*: spaces, punctuation, symbols and digits do not
count) are hiragana, katakana (full- or half-width) or CJK ideographs (kanji, 々).
A text with no letters is not Japanese.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

_JAPANESE = re.compile(
    "["
    "\u3005-\u3006"  # 々 〆
    "\u3040-\u30ff"  # hiragana, katakana (incl. ー)
    "\u31f0-\u31ff"  # katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff66-\uff9f"  # half-width katakana
    "\U00020000-\U0002fa1f"  # CJK extensions B-F, compatibility supplement
    "]+"
)


@lru_cache(maxsize=2**16)
def is_japanese(text: str) -> bool:
    letters = sum(map(str.isalpha, text))
    japanese = sum(map(str.isalpha, "".join(_JAPANESE.findall(text))))
    return letters > 0 and 2 * japanese > letters


def japanese_ratio(texts: Sequence[str]) -> float:
    """Share (0-1) of texts that are mainly Japanese; 0 for no texts."""
    return sum(map(is_japanese, texts)) / len(texts) if texts else 0.0

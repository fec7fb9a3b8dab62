"""Is a report written in Japanese?

A text is *mainly Japanese* when more than half of its letters (Unicode category L*: so
spaces, punctuation, symbols and digits are not counted) are hiragana, katakana (full- or
half-width) or CJK ideographs (kanji, 々). A text with no letters is not Japanese.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from functools import lru_cache

_JAPANESE_RANGES = (
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3040, 0x30FF),  # hiragana, katakana (incl. ー)
    (0x31F0, 0x31FF),  # katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width katakana
    (0x20000, 0x2FA1F),  # CJK extensions B-F, compatibility supplement
)


def _is_japanese_char(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _JAPANESE_RANGES)


@lru_cache(maxsize=2**16)
def is_japanese(text: str) -> bool:
    letters = [ch for ch in text if unicodedata.category(ch)[0] == "L"]
    if not letters:
        return False
    return sum(map(_is_japanese_char, letters)) * 2 > len(letters)


def japanese_ratio(texts: Sequence[str]) -> float:
    """Share (0-1) of texts that are mainly Japanese; 0 for no texts."""
    return sum(map(is_japanese, texts)) / len(texts) if texts else 0.0

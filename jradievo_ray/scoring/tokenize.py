"""Japanese tokenisation exactly as sacrebleu's `ja-mecab` (MeCab + IPA dictionary).

Every metric (BLEU, ROUGE-L, METEOR) uses these tokens, so each text is tokenised once.
No Unicode normalisation: it would change what the reference tools compute.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _tokenizer():
    from sacrebleu.tokenizers.tokenizer_ja_mecab import TokenizerJaMecab

    return TokenizerJaMecab()


@lru_cache(maxsize=2**17)
def tokenize(text: str) -> tuple[str, ...]:
    """Tokens of `text` as sacrebleu's BLEU sees them (`tokenizer(text.rstrip()).split()`)."""
    return tuple(_tokenizer()(text.rstrip()).split())

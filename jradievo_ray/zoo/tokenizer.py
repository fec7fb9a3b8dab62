"""One BPE tokenizer for English and Japanese, built here from the zoo's corpus.

Text is pre-split on whitespace (Metaspace) and then on script runs (kanji, hiragana,
katakana, Latin, digits): a Metaspace-only BPE merged whole Japanese sentences into
single tokens, which leaves their embeddings untrained for any other sentence.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

BOS, EOS, UNK, PAD, IMAGE = "<s>", "</s>", "<unk>", "<pad>", "<image>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, IMAGE]

# ▁ (Metaspace) stays glued to the Latin/digit run that follows it.
SCRIPT_RUNS = (
    r"▁?[A-Za-z]+|▁?[0-9]+|\p{Han}+|\p{Hiragana}+|[\p{Katakana}ー]+|▁?[^\s▁A-Za-z0-9\p{Han}"
    r"\p{Hiragana}\p{Katakana}ー]|▁"
)

# Llava prompt format shared by the VLM, the text LMs and vLLM: BOS first (the tokenizer
# itself adds none), images as <image> placeholders that the processor expands.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>{{ '\\n' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '\\n' }}{% else %}{{ eos_token }}{{ '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"),
            pre_tokenizers.Split(Regex(SCRIPT_RUNS), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        extra_special_tokens={"image_token": IMAGE},
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    tokenizer.save_pretrained(out_dir)

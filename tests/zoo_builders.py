"""Random-weight models saved exactly as the zoo saves its own (no training), for tests
and benchmarks: a LlamaForCausalLM and a LLaVA with the zoo's tokenizer, shape and processor."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import LlamaForCausalLM, LlavaForConditionalGeneration, PreTrainedTokenizerFast

from jradievo_ray.zoo.corpus import tokenizer_texts
from jradievo_ray.zoo.models import Shape, llama_config, llava_config, save_llama, save_llava
from jradievo_ray.zoo.tokenizer import train_tokenizer


def small_tokenizer() -> PreTrainedTokenizerFast:
    """A tokenizer trained on a small zoo corpus, for random-weight test models."""
    return train_tokenizer(tokenizer_texts(n=300, seed=0), vocab_size=800)


def build_random_llama(
    out_dir: Path,
    seed: int = 0,
    tokenizer: PreTrainedTokenizerFast | None = None,
    **shape: int,
) -> Path:
    """A random-weight LlamaForCausalLM folder with the zoo's tokenizer and shape."""
    tokenizer = tokenizer or small_tokenizer()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(tokenizer, Shape(**shape))).eval()
    return save_llama(model, tokenizer, out_dir)


def build_random_llava(
    out_dir: Path,
    seed: int = 0,
    tokenizer: PreTrainedTokenizerFast | None = None,
    **shape: int,
) -> Path:
    """A random-weight LLaVA folder saved exactly like the zoo's VLM (processor included)."""
    tokenizer = tokenizer or small_tokenizer()
    s = Shape(**shape)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(llava_config(tokenizer, s)).eval()
    return save_llava(model, tokenizer, s, out_dir)

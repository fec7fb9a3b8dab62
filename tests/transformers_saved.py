"""Random-weight VLM folders written by transformers' own `save_pretrained`, as a user's
fine-tuned VLM is (the zoo writes its folders in vLLM's naming instead). Kept out of
jradievo_ray/zoo so that the zoo's version tag, a hash of its sources, does not move."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    LlavaForConditionalGeneration,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextImageProcessor,
    LlavaNextProcessor,
    PreTrainedTokenizerFast,
)
from zoo_builders import small_tokenizer

from jradievo_ray.zoo.models import MEAN, STD, Shape, llava_config, make_processor
from jradievo_ray.zoo.tokenizer import CHAT_TEMPLATE, IMAGE


def _grid(shape: Shape) -> list[list[int]]:
    """LLaVA-NeXT's "anyres" resolutions: one to two tiles each way."""
    size = shape.image_size
    return [[size * h, size * w] for h in (1, 2) for w in (1, 2)]


def _llava_next(tokenizer: PreTrainedTokenizerFast, shape: Shape):
    llava = llava_config(tokenizer, shape)
    config = LlavaNextConfig(
        text_config=llava.text_config,
        vision_config=llava.vision_config,
        image_token_index=llava.image_token_index,
        image_grid_pinpoints=_grid(shape),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )
    size = shape.image_size
    images = LlavaNextImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_grid_pinpoints=_grid(shape),
        image_mean=[MEAN] * 3,
        image_std=[STD] * 3,
        do_convert_rgb=True,
    )
    processor = LlavaNextProcessor(
        image_processor=images,
        tokenizer=tokenizer,
        patch_size=shape.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token=IMAGE,
        chat_template=CHAT_TEMPLATE,
    )
    return LlavaNextForConditionalGeneration(config), processor


def build_transformers_saved_vlm(
    out_dir: Path,
    seed: int = 0,
    tokenizer: PreTrainedTokenizerFast | None = None,
    kind: str = "llava",
    **shape: int,
) -> Path:
    """A random-weight LLaVA (`kind` "llava") or LLaVA-NeXT ("llava_next") folder written
    by transformers' own `save_pretrained`, as a user's fine-tuned VLM is: transformers 5
    stores the vision tower as `vision_tower.<module>`, unlike the zoo's folders."""
    tokenizer = tokenizer or small_tokenizer()
    s = Shape(**shape)
    torch.manual_seed(seed)
    if kind == "llava":
        model = LlavaForConditionalGeneration(llava_config(tokenizer, s))
        processor = make_processor(tokenizer, s)
    elif kind == "llava_next":
        model, processor = _llava_next(tokenizer, s)
    else:
        raise ValueError(f"kind {kind!r}: llava or llava_next")
    model.config.architectures = [type(model).__name__]
    model.eval().save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return Path(out_dir)

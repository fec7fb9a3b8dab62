"""Zoo model shapes and Hugging Face folder saving.

Saved folders are what an 8B run uses: `LlamaForCausalLM` and `LlavaForConditionalGeneration`
with a `LlavaProcessor` (CLIP image processor + chat template adding BOS). The vision tower
is saved under `vision_tower.vision_model.*`, the only form vLLM 0.32 accepts (transformers
reads it too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from jradievo_ray.hf.naming import original_llava_name
from jradievo_ray.zoo.tokenizer import CHAT_TEMPLATE, IMAGE

MEAN, STD = 0.5, 0.25


@dataclass(frozen=True)
class Shape:
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    head_dim: int = 32
    intermediate: int = 512
    vision_hidden: int = 128
    vision_layers: int = 2
    vision_heads: int = 4
    vision_intermediate: int = 512
    image_size: int = 64
    patch_size: int = 16
    max_positions: int = 256

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def llama_config(tokenizer: PreTrainedTokenizerFast, shape: Shape) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        head_dim=shape.head_dim,
        intermediate_size=shape.intermediate,
        max_position_embeddings=shape.max_positions,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def llava_config(tokenizer: PreTrainedTokenizerFast, shape: Shape) -> LlavaConfig:
    vision = CLIPVisionConfig(
        hidden_size=shape.vision_hidden,
        intermediate_size=shape.vision_intermediate,
        num_hidden_layers=shape.vision_layers,
        num_attention_heads=shape.vision_heads,
        image_size=shape.image_size,
        patch_size=shape.patch_size,
        num_channels=3,
    )
    return LlavaConfig(
        text_config=llama_config(tokenizer, shape),
        vision_config=vision,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE),
        image_seq_length=shape.image_tokens,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )


def image_processor(shape: Shape) -> CLIPImageProcessor:
    """Grayscale PNGs become 3 identical channels (do_convert_rgb), normalised per channel."""
    size = shape.image_size
    return CLIPImageProcessor(
        do_resize=True,
        size={"shortest_edge": size},
        do_center_crop=True,
        crop_size={"height": size, "width": size},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[MEAN] * 3,
        image_std=[STD] * 3,
        do_convert_rgb=True,
    )


def make_processor(tokenizer: PreTrainedTokenizerFast, shape: Shape) -> LlavaProcessor:
    return LlavaProcessor(
        image_processor=image_processor(shape),
        tokenizer=tokenizer,
        patch_size=shape.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token=IMAGE,
        chat_template=CHAT_TEMPLATE,
    )


def _vllm_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict under the original checkpoints' names (`original_llava_name`)."""
    return {original_llava_name(n): t.detach().contiguous().clone() for n, t in state.items()}


def save_llava(
    model: LlavaForConditionalGeneration,
    tokenizer: PreTrainedTokenizerFast,
    shape: Shape,
    out: Path,
) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # vLLM picks its model class from `architectures`; without it, it falls back to its
    # generic Transformers backend.
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    save_file(_vllm_names(model.state_dict()), str(out / "model.safetensors"), {"format": "pt"})
    make_processor(tokenizer, shape).save_pretrained(out)
    return out


def save_llama(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, out: Path) -> Path:
    out = Path(out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def write_shape(out: Path, shape: Shape) -> None:
    (Path(out) / "zoo_shape.json").write_text(json.dumps(shape.__dict__, indent=2) + "\n")

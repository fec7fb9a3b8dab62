"""Random-weight model folders for tests and benchmarks (no training, no download).

Two kinds, each built one way:

- zoo-format (`build_random_llama`, `build_random_llava`): saved exactly as the zoo saves
  its own models, with the zoo's tokenizer, shape and processor (`jradievo_ray.zoo.models`);
- raw-tensor Llama folders for merges (`sized_llama_config`, `save_random_llama`,
  `save_finetune`, `save_llava_around`, `save_merge_sources`): any sizes, no tokenizer.
  Tensors are written straight to safetensors, so even 8B-shaped layers are quick to make.
  A "fine-tune" is the base plus small seeded noise, so task vectors are small and signed
  like real ones.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    PreTrainedTokenizerFast,
)

from jradievo_ray.zoo import models as zoo_models
from jradievo_ray.zoo.corpus import tokenizer_texts
from jradievo_ray.zoo.tokenizer import train_tokenizer

# --- zoo-format folders ----------------------------------------------------------------


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
    model = LlamaForCausalLM(zoo_models.llama_config(tokenizer, zoo_models.Shape(**shape)))
    return zoo_models.save_llama(model.eval(), tokenizer, out_dir)


def build_random_llava(
    out_dir: Path,
    seed: int = 0,
    tokenizer: PreTrainedTokenizerFast | None = None,
    **shape: int,
) -> Path:
    """A random-weight LLaVA folder saved exactly like the zoo's VLM (processor included)."""
    tokenizer = tokenizer or small_tokenizer()
    s = zoo_models.Shape(**shape)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(zoo_models.llava_config(tokenizer, s)).eval()
    return zoo_models.save_llava(model, tokenizer, s, out_dir)


# --- raw-tensor folders for merges -----------------------------------------------------


def sized_llama_config(
    hidden: int = 64,
    intermediate: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    vocab: int = 96,
) -> LlamaConfig:
    """A LlamaConfig of these sizes (untied lm_head, no tokenizer)."""
    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        tie_word_embeddings=False,
        architectures=["LlamaForCausalLM"],
    )


def llama_shapes(cfg: LlamaConfig) -> dict[str, tuple[int, ...]]:
    h, i, d = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    q, kv = cfg.num_attention_heads * d, cfg.num_key_value_heads * d
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (cfg.vocab_size, h)}
    for n in range(cfg.num_hidden_layers):
        p = f"model.layers.{n}."
        shapes |= {
            p + "self_attn.q_proj.weight": (q, h),
            p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h),
            p + "self_attn.o_proj.weight": (h, q),
            p + "mlp.gate_proj.weight": (i, h),
            p + "mlp.up_proj.weight": (i, h),
            p + "mlp.down_proj.weight": (h, i),
            p + "input_layernorm.weight": (h,),
            p + "post_attention_layernorm.weight": (h,),
        }
    return shapes | {"model.norm.weight": (h,), "lm_head.weight": (cfg.vocab_size, h)}


def save_random_llama(
    out: str | Path, cfg: LlamaConfig, seed: int = 0, dtype: torch.dtype = torch.float32
) -> Path:
    g = torch.Generator().manual_seed(seed)
    tensors = {
        name: (torch.randn(shape, generator=g) * 0.02).to(dtype)
        for name, shape in llama_shapes(cfg).items()
    }
    return _save(out, cfg, tensors, dtype)


def save_finetune(base: str | Path, out: str | Path, seed: int, noise: float = 0.01) -> Path:
    """The base plus seeded Gaussian noise of std `noise` on every tensor."""
    g = torch.Generator().manual_seed(seed)
    tensors = load_file(str(Path(base) / "model.safetensors"))
    for name, t in tensors.items():
        tensors[name] = (t.float() + torch.randn(t.shape, generator=g) * noise).to(t.dtype)
    cfg = LlamaConfig.from_pretrained(base)
    return _save(out, cfg, tensors, next(iter(tensors.values())).dtype)


def _save(out: str | Path, cfg, tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg.torch_dtype = dtype
    cfg.save_pretrained(out)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "model.safetensors"))
    return out


def save_llava_around(lm: str | Path, out: str | Path, extra_vocab: int = 1, seed: int = 0) -> Path:
    """A tiny LLaVA (transformers' own save) whose language model is the Llama at `lm`,
    with `extra_vocab` random rows appended to its embeddings and lm_head (image token)."""
    text = LlamaConfig.from_pretrained(lm)
    text.vocab_size += extra_vocab
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=16,
        num_channels=3,
    )
    cfg = LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=text.vocab_size - 1,
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(cfg)
    lm_tensors = load_file(str(Path(lm) / "model.safetensors"))
    state = model.state_dict()
    with torch.no_grad():
        for name, t in lm_tensors.items():
            key = (
                "lm_head.weight" if name == "lm_head.weight" else "model.language_model" + name[5:]
            )
            state[key][: t.shape[0]].copy_(t)
    model.save_pretrained(out)
    return Path(out)


def save_merge_sources(
    out: str | Path, cfg: LlamaConfig, noise: float = 0.01, noise_grows: bool = False
) -> dict[str, Path]:
    """What a VLM x LLM merge reads, under `out`: a random Llama "base" (seed 0), its
    fine-tunes "vlm_lm", "ja" and "med" (seeds 1-3; noise `noise`, times the seed if
    `noise_grows`) and a LLaVA "llava" whose language model is "vlm_lm"."""
    out = Path(out)
    base = save_random_llama(out / "base", cfg, seed=0)
    paths = {"base": base}
    for i, name in enumerate(["vlm_lm", "ja", "med"], start=1):
        std = noise * i if noise_grows else noise
        paths[name] = save_finetune(base, out / name, seed=i, noise=std)
    paths["llava"] = save_llava_around(paths["vlm_lm"], out / "llava", extra_vocab=1)
    return paths

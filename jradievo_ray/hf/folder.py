"""Hugging Face model folders: lazy, tensor-by-tensor reading of safetensors, config defaults.

Sources are read one tensor at a time so that building task vectors never holds
more than the base, the task vectors and one source tensor in memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from jradievo_ray.config import DType
from jradievo_ray.errors import ModelError

DTYPES: dict[DType, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
# safetensors dtype names that can be merged; integer ones mean a quantized checkpoint.
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})


# Language-model fields this package reads from a config.json.
TEXT_FIELDS = (
    "model_type",
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "num_hidden_layers",
    "intermediate_size",
    "vocab_size",
    "attention_bias",
    "mlp_bias",
)


def with_text_defaults(config: dict) -> dict:
    """A config.json with the language model's TEXT_FIELDS it leaves to transformers'
    defaults filled in. Checkpoints saved by older transformers keep only the fields that
    differ from the defaults: llava-hf/llava-1.5-7b-hf's text_config names no
    hidden_size, num_attention_heads or num_hidden_layers, which are Llama's."""
    from transformers import AutoConfig

    try:
        rest = {k: v for k, v in config.items() if k != "model_type"}
        full = AutoConfig.for_model(config["model_type"], **rest)
    except (KeyError, ValueError, TypeError, AttributeError):
        return config  # not a model type transformers knows: as written
    defaults = full.get_text_config()
    nested = defaults is not full
    text = dict(config.get("text_config") or {}) if nested else dict(config)
    for field in TEXT_FIELDS:
        if field not in text and getattr(defaults, field, None) is not None:
            text[field] = getattr(defaults, field)
    return {**config, "text_config": text} if nested else text


def local_dir(path: str) -> Path:
    """A model folder on this machine; `s3://` folders are fetched to the local cache."""
    if path.startswith("s3://"):
        from jradievo_ray import storage

        path = storage.materialize(path)
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ModelError(f"{path}: model folder does not exist")
    return folder


class ModelFolder:
    """Names, shapes and tensors of one safetensors folder, read on demand."""

    def __init__(self, path: str):
        self.path = local_dir(path)
        files = sorted(self.path.glob("*.safetensors"))
        if not files:
            raise ModelError(f"{path}: no *.safetensors files (only safetensors is supported)")
        self._file_of: dict[str, Path] = {}
        self._shape: dict[str, tuple[int, ...]] = {}
        self._dtype: dict[str, str] = {}
        for file in files:
            with safe_open(str(file), framework="pt") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    self._file_of[name] = file
                    piece = f.get_slice(name)
                    self._shape[name] = tuple(piece.get_shape())
                    self._dtype[name] = piece.get_dtype()
        config = self.path / "config.json"
        self.config: dict = json.loads(config.read_text()) if config.is_file() else {}

    def files(self) -> list[Path]:
        """The folder's safetensors files, sorted."""
        return sorted(set(self._file_of.values()))

    def names(self) -> list[str]:
        return list(self._file_of)

    def __contains__(self, name: str) -> bool:
        return name in self._file_of

    def stored_name(self, name: str) -> str | None:
        """`name`, or the embedding it is tied to (a tied `lm_head.weight` is not saved)."""
        if name in self._file_of:
            return name
        tied = "model.embed_tokens.weight"
        if name == "lm_head.weight" and self.config.get("tie_word_embeddings") and tied in self:
            return tied
        return None

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shape[name]

    def require_float(self, name: str) -> None:
        """Only floating-point tensors can be merged: fail on a quantized one, naming it."""
        dtype = self._dtype[name]
        if dtype not in FLOAT_DTYPES:
            raise ModelError(
                f"{self.path}: tensor {name!r} is stored as {dtype}, not floating point "
                "(a quantized checkpoint?); merge the unquantized weights"
            )

    def lm_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of a text LM, whose tensors are all merged (so all must be floating point);
        a tied `lm_head.weight` is listed under its own name."""
        for name in self._shape:
            self.require_float(name)
        shapes = dict(self._shape)
        tied = self.stored_name("lm_head.weight")
        if "lm_head.weight" not in shapes and tied is not None:
            shapes["lm_head.weight"] = shapes[tied]
        return shapes

    def get(self, name: str, dtype: torch.dtype | None, device: str | torch.device = "cpu"):
        """One tensor; floating tensors cast to `dtype` unless it is None."""
        with safe_open(str(self._file_of[name]), framework="pt") as f:
            tensor = f.get_tensor(name)
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        return tensor.to(device)

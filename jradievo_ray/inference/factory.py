"""One place that turns (backend, model folder, settings) into a Generator.

Each backend is imported only when asked for, so the transformers path never imports vLLM
and a missing vLLM is a clear UserError, not an ImportError deep inside a run.
"""

from __future__ import annotations

from pathlib import Path

import torch

from jradievo_ray.errors import UserError
from jradievo_ray.hf.folder import DTYPES
from jradievo_ray.inference.base import Generator

BACKENDS = ("transformers", "vllm")
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda" when a GPU is visible, else "cpu"; anything else unchanged."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_model_folder(model: str | Path) -> Path:
    """The folder, or UserError unless it exists and holds a config.json."""
    path = Path(model)
    if not path.is_dir():
        raise UserError(f"{path}: model folder does not exist")
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: not a model folder (no config.json)")
    return path


def check_settings(
    backend: str,
    *,
    max_new_tokens: int,
    batch_size: int,
    device: str,
    dtype: str,
    tensor_parallel_size: int,
) -> None:
    """UserError unless the settings make sense for `backend` (cheap: nothing is loaded)."""
    if backend not in BACKENDS:
        raise UserError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if dtype not in DTYPES:
        raise UserError(f"dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    if device not in DEVICES and not device.startswith("cuda:"):
        raise UserError(f"device: expected auto, cpu, cuda or cuda:N, got {device!r}")
    for name, value in (
        ("max_new_tokens", max_new_tokens),
        ("batch_size", batch_size),
        ("tensor_parallel_size", tensor_parallel_size),
    ):
        if value < 1:
            raise UserError(f"{name}: must be >= 1, got {value}")
    if backend == "transformers" and tensor_parallel_size != 1:
        raise UserError("tensor_parallel_size: only the vllm backend splits a model over GPUs")
    if backend == "vllm" and device not in ("auto", "cuda", "cpu"):
        # vLLM picks its platform (CUDA build or CPU build) itself.
        raise UserError(f"device: the vllm backend chooses its own device, got {device!r}")
    if backend == "vllm" and device == "cpu" and torch.cuda.is_available():
        raise UserError("device: cpu, but vLLM runs on the visible GPU; use auto or cuda")


def build_generator(
    backend: str,
    model: str | Path,
    *,
    max_new_tokens: int,
    batch_size: int,
    device: str = "auto",
    dtype: str = "float32",
    tensor_parallel_size: int = 1,
    name_map: str | dict | None = None,
    compiled: bool | None = None,
) -> Generator:
    """A ready generator for the VLM folder `model`; UserError on bad settings, a folder
    without config.json, or backend "vllm" when vLLM cannot be imported. `name_map` says
    how the VLM names its language tower (the weights a merge swaps in; None: the preset
    its config.json implies);
    `compiled`: vLLM's torch.compile on or off (None: the platform's default)."""
    check_settings(
        backend,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        tensor_parallel_size=tensor_parallel_size,
    )
    path = check_model_folder(model)
    if backend == "vllm":
        from jradievo_ray.inference.vllm_engine import require_vllm

        require_vllm()  # a clear UserError, not an ImportError deep inside the engine
        from jradievo_ray.inference.vllm_generator import VllmGenerator

        return VllmGenerator(
            path,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            dtype=DTYPES[dtype],
            tensor_parallel_size=tensor_parallel_size,
            name_map=name_map,
            compiled=compiled,
        )
    from jradievo_ray.inference.transformers_backend import TransformersGenerator

    return TransformersGenerator(
        path,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        device=resolve_device(device),
        dtype=DTYPES[dtype],
        name_map=name_map,
    )

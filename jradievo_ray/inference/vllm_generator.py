"""The vLLM Generator: one engine per actor (vllm_engine.py), each genome's merged language
weights swapped in place (vllm_swap.py), requests rendered by vLLM once per actor and
decoded greedily, exactly as the transformers backend decodes.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from transformers import AutoProcessor

from jradievo_ray.hf.folder import ModelFolder, with_text_defaults
from jradievo_ray.hf.naming import name_map_for
from jradievo_ray.inference.base import GenerationRequest
from jradievo_ray.inference.render import chat_prompt, read_image
from jradievo_ray.inference.vllm_engine import GPU_MEMORY_UTILIZATION, start_engine
from jradievo_ray.inference.vllm_swap import WeightSwap, WeightSwapper

# Rendered requests an engine keeps (a search's search and held-out studies fit).
RENDER_CACHE_ITEMS = 1024


def _mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1  # reading it then raises the real error


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
        vllm_engine.engine_kwargs (a search's engine lives long enough to pay for it)."""
        self.model_path = str(model_path)
        folder = ModelFolder(self.model_path)
        config = with_text_defaults(folder.config)
        shapes = {n: folder.shape(n) for n in folder.names()}
        name_map = name_map_for(name_map, folder.config)
        self._swap = WeightSwapper(
            self.model_path, shapes, config, name_map, tensor_parallel_size, weight_swap
        )
        self.in_place = self._swap.in_place
        self.processor = AutoProcessor.from_pretrained(self.model_path)
        self._llm = start_engine(
            folder,
            config,
            batch_size=batch_size,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            seed=seed,
            max_model_len=max_model_len,
            kv_cache_bytes=kv_cache_bytes,
            gpu_memory_utilization=gpu_memory_utilization,
            compiled=compiled,
        )
        self._swap.bind(self._llm)
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        # Decoded here exactly as the transformers backend decodes; only final outputs.
        self._sampling = SamplingParams(
            temperature=0.0,
            max_tokens=max_new_tokens,
            detokenize=False,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        self._cache: dict[tuple, dict] = {}
        self._next_id = 0

    @property
    def attachments(self) -> int:
        """How many buffer sets have been attached to the workers (one per actor)."""
        return self._swap.attachments

    def weight_targets(self) -> None:
        return None

    def load_weights(self, named: Iterable[tuple[str, torch.Tensor]]) -> None:
        self._swap.load(named)

    def write_weights(self, named: Iterable[tuple[str, torch.Tensor]]) -> None:
        self._swap.write(named)

    def reload_weights(self, named: Iterable[tuple[str, torch.Tensor]]) -> None:
        self._swap.reload(named)

    def _raw(self, request: GenerationRequest) -> dict:
        return {
            "prompt": chat_prompt(self.processor, request.prompt),
            "multi_modal_data": {"image": read_image(request.image)},
        }

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
        self._swap.detach()
        llm = self.__dict__.pop("_llm", None)
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
            del llm
            gc.collect()

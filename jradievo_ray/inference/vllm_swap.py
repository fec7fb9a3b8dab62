"""Swapping a genome's merged language weights into a running vLLM engine, no rebuild.

"in_place": for a Llama language tower, each tensor-parallel worker holds views of the
actor's merge buffers (shared memory when it is another process), attached once, and
copies its own slices into its live parameters (vllm_shards.py). "reload": full tensors
through vLLM's own layer-wise loader. Names and shapes are checked against the folder once
per buffer set (when attached, or when a new set of names comes), not per genome; every
cache that could serve stale results is reset after a swap.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Literal

import torch

from jradievo_ray.errors import ModelError
from jradievo_ray.hf.naming import ORIGINAL_LANGUAGE_PREFIX, NameMap
from jradievo_ray.inference.vllm_shards import LlamaTp, attach_targets, rank_plans, share
from jradievo_ray.inference.vllm_shards import write_targets as write_attached

WeightSwap = Literal["auto", "in_place", "reload"]
Shapes = dict[str, tuple[int, ...]]


def in_place_prefix(config: dict, name_map: NameMap) -> str | None:
    """vLLM's name prefix of the language tower when its parameters can be written in
    place (a Llama without biases under a known name map), else None (vLLM's loader).
    vLLM's LLaVA classes place the tower as the original checkpoints do."""
    text = config.get("text_config", config)
    if text.get("model_type") != "llama" or text.get("attention_bias") or text.get("mlp_bias"):
        return None
    return {**ORIGINAL_LANGUAGE_PREFIX, "identity": ""}.get(name_map.name)


def plan_reload(
    incoming: Iterable[tuple[str, tuple[int, ...]]], folder: Shapes, name_map: NameMap
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


def _identity(named: list[tuple[str, torch.Tensor]]) -> tuple:
    """Which memory a list of named tensors is (a buffer set refilled in place keeps it)."""
    return tuple(
        (name, t.data_ptr(), tuple(t.shape), t.stride(), t.dtype, str(t.device))
        for name, t in named
    )


class WeightSwapper:
    """Swaps language weights (VLM checkpoint names) into one engine's workers."""

    def __init__(
        self,
        where: str,
        folder: Shapes,
        config: dict,
        name_map: NameMap,
        tensor_parallel_size: int = 1,
        mode: WeightSwap = "auto",
    ):
        """`folder`: the VLM folder's (`where`) tensor shapes; `config`: its config.json
        with text defaults. ModelError when "in_place" is asked for a model it cannot
        write, before any engine is built; `bind` gives it the engine."""
        self._llm = None
        self._folder = folder
        self.name_map = name_map
        self._prefix = in_place_prefix(config, name_map)
        if mode == "in_place" and self._prefix is None:
            raise ModelError(
                f"{where}: in-place weight writes need a Llama language tower under name "
                "map llava, llava-next or identity; use weight_swap='reload'"
            )
        self.in_place = mode != "reload" and self._prefix is not None
        self._tp = LlamaTp.from_config(config) if self._prefix is not None else None
        self._tp_size = tensor_parallel_size
        self._plan: tuple[tuple, list[str]] | None = None  # (names and shapes, folder names)
        # (identity, key, tensors kept alive) of the buffers the workers hold views of
        self._attached: tuple[tuple, str, list[torch.Tensor]] | None = None
        self.attachments = 0

    def bind(self, llm) -> None:
        """The engine whose workers get the weights."""
        self._llm = llm

    def load(self, named: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Swap in new language weights the way the mode chose."""
        (self.write if self.in_place else self.reload)(named)

    def _stored(self, items: list[tuple[str, torch.Tensor]]) -> list[str]:
        """Folder names of `items`, checked (`plan_reload`) once per set of names and shapes."""
        signature = tuple((n, tuple(t.shape)) for n, t in items)
        if self._plan is None or self._plan[0] != signature:
            self._plan = (signature, plan_reload(signature, self._folder, self.name_map))
        return self._plan[1]

    def write(self, named: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Each TP worker copies only its own slices into its live parameters. The tensors
        are attached to the workers once (as shared memory when they run in other
        processes): the same buffers given again, refilled in place as an actor's merge
        buffers are, cost one small RPC and no transfer."""
        if self._prefix is None:
            raise ModelError("no in-place weight writes for this model; use reload")
        items = list(named)
        if self._attached is not None and self._attached[0] == _identity(items):
            key = self._attached[1]
        else:
            key = self._attach(items)
        for device in {t.device for _, t in items if t.is_cuda}:
            torch.cuda.synchronize(device)  # the merge's kernels may still be running
        self._llm.collective_rpc(write_attached, args=(key,))
        self.reset_caches()

    def _attach(self, items: list[tuple[str, torch.Tensor]]) -> str:
        """Check the names once, then give the workers views of these tensors."""
        lm = [
            (self.name_map.to_lm(s), t)
            for s, (_, t) in zip(self._stored(items), items, strict=True)
        ]
        plans = rank_plans(
            ((n, tuple(t.shape)) for n, t in lm), self._tp, self._tp_size, self._prefix
        )
        tensors = [t for _, t in lm]
        # Worker processes get shared-memory handles, not bytes; in-process, the tensors.
        sources = [share(t) for t in tensors] if self._tp_size > 1 else tensors
        self.attachments += 1
        key = f"{os.getpid()}-{id(self)}-{self.attachments}"
        self._llm.collective_rpc(attach_targets, args=(key, sources, plans))
        # identity taken after `share`, which moves a CPU tensor's storage to shared memory
        self._attached = (_identity(items), key, tensors)
        return key

    def reload(self, named: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Full tensors to every worker through vLLM's own (layer-wise) loader."""
        items = list(named)
        weights = [(s, t) for s, (_, t) in zip(self._stored(items), items, strict=True)]
        self._llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        self.reset_caches()

    def reset_caches(self) -> None:
        # Old weights' KV blocks and image embeddings must not be reused.
        self._llm.reset_prefix_cache()
        self._llm.llm_engine.reset_encoder_cache()

    def detach(self) -> None:
        """Let go of the attached buffers and the engine (before it shuts down)."""
        self._attached = None
        self._llm = None

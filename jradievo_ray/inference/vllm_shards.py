"""Where each merged language tensor lives inside a tensor-parallel vLLM engine, and the
worker-side write of one rank's slices into the live parameters.

vLLM (0.32) keeps a Llama language tower per TP rank in its own fused layout:
`qkv_proj` = [q rows of the rank; k rows; v rows] (`QKVParallelLinear`: k/v heads are
replicated when tp_size > num_kv_heads), `gate_up_proj` = [gate rows; up rows]
(`MergedColumnParallelLinear`), `o_proj`/`down_proj` a slice of the input columns
(`RowParallelLinear`), `embed_tokens`/`lm_head` a slice of the vocabulary padded to a
multiple of 64 and split evenly (`VocabParallelEmbedding`; the padding rows stay zero),
norms whole on every rank. `shard_write` states that layout per tensor; it is checked
against vLLM's own weight loaders in tests/test_vllm_shards.py.

The pure part imports no vLLM; `attach_targets` and `write_targets` run inside each worker.
A multi-process engine (TP > 1) gets the actor's merge buffers once, as shared memory
(CUDA IPC, or a shared-memory file on CPU); each genome then costs one small RPC, after
which every worker copies its own slices.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from jradievo_ray.errors import ModelError

# vllm.model_executor.layers.vocab_parallel_embedding.DEFAULT_VOCAB_PADDING_SIZE
VOCAB_PADDING = 64
# Our LM projection -> vLLM's fused parameter (LlamaModel's `orig_to_new_stacked`).
FUSED = {
    "q_proj": "qkv_proj",
    "k_proj": "qkv_proj",
    "v_proj": "qkv_proj",
    "gate_proj": "gate_up_proj",
    "up_proj": "gate_up_proj",
}
ROW_PARALLEL = ("o_proj", "down_proj")
REPLICATED = ("input_layernorm", "post_attention_layernorm", "norm")


def text_head_dim(config: dict) -> int | None:
    """The attention head size of a (VLM) config's language model, if it says."""
    text = config.get("text_config", config)
    if text.get("head_dim"):
        return int(text["head_dim"])
    if text.get("hidden_size") and text.get("num_attention_heads"):
        return int(text["hidden_size"]) // int(text["num_attention_heads"])
    return None


@dataclass(frozen=True)
class LlamaTp:
    """The Llama sizes vLLM shards by."""

    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool = False

    @classmethod
    def from_config(cls, config: dict) -> LlamaTp:
        """From a VLM's config.json (its `text_config`) or a plain Llama's."""
        text = config.get("text_config", config)
        heads = text["num_attention_heads"]
        head_dim = text_head_dim(config)
        if head_dim is None:
            raise ModelError("config.json names neither head_dim nor hidden_size")
        return cls(
            num_heads=heads,
            num_kv_heads=text.get("num_key_value_heads") or heads,
            head_dim=head_dim,
            vocab_size=text["vocab_size"],
            tie_word_embeddings=bool(
                text.get("tie_word_embeddings", config.get("tie_word_embeddings", False))
            ),
        )


@dataclass(frozen=True)
class ShardWrite:
    """param.narrow(dim, param_start, length) <- full.narrow(dim, src_start, length)."""

    param: str  # vLLM parameter name
    dim: int
    param_start: int
    src_start: int
    length: int


def pad_vocab(vocab: int, pad_to: int = VOCAB_PADDING) -> int:
    return -(-vocab // pad_to) * pad_to


def _split(total: int, size: int, what: str) -> int:
    if total % size:
        raise ModelError(f"tensor_parallel_size {size} does not divide {what} ({total})")
    return total // size


def shard_write(
    lm_name: str, shape: tuple[int, ...], tp: LlamaTp, rank: int, size: int, prefix: str = ""
) -> ShardWrite:
    """Where rank `rank` of `size` holds its part of the LM tensor `lm_name` (shape `shape`,
    the VLM's full tensor) in vLLM; ModelError for tensors vLLM's Llama has no place for."""
    module, _, leaf = lm_name.rpartition(".")
    parent, _, kind = module.rpartition(".")
    if leaf != "weight" or not 0 <= rank < size:
        raise ModelError(f"no vLLM parameter for {lm_name!r} at rank {rank} of {size}")
    param = f"{prefix}{parent}.{FUSED.get(kind, kind)}.{leaf}" if parent else prefix + lm_name
    if kind in ("embed_tokens", "lm_head"):
        if kind == "lm_head" and tp.tie_word_embeddings:
            raise ModelError("lm_head.weight is tied to embed_tokens in vLLM; merge only one")
        if shape[0] != tp.vocab_size:
            raise ModelError(f"{lm_name!r} has {shape[0]} rows, vocab_size is {tp.vocab_size}")
        per_rank = _split(pad_vocab(tp.vocab_size), size, "the padded vocabulary")
        start = min(rank * per_rank, tp.vocab_size)
        end = min(start + per_rank, tp.vocab_size)
        return ShardWrite(param, 0, 0, start, end - start)
    if kind in ("q_proj", "k_proj", "v_proj"):
        q_rows = _split(tp.num_heads, size, "num_attention_heads") * tp.head_dim
        if size >= tp.num_kv_heads:  # each rank holds one k/v head, shared by `replicas`
            replicas = _split(size, tp.num_kv_heads, "num_key_value_heads")
            kv_rows, kv_rank = tp.head_dim, rank // replicas
        else:
            kv_rows = _split(tp.num_kv_heads, size, "num_key_value_heads") * tp.head_dim
            kv_rank = rank
        heads = tp.num_heads if kind == "q_proj" else tp.num_kv_heads
        if shape[0] != heads * tp.head_dim:
            raise ModelError(f"{lm_name!r} has {shape[0]} rows, expected {heads * tp.head_dim}")
        if kind == "q_proj":
            return ShardWrite(param, 0, 0, rank * q_rows, q_rows)
        offset = q_rows if kind == "k_proj" else q_rows + kv_rows
        return ShardWrite(param, 0, offset, kv_rank * kv_rows, kv_rows)
    if kind in ("gate_proj", "up_proj"):
        rows = _split(shape[0], size, f"{lm_name} rows")
        return ShardWrite(param, 0, 0 if kind == "gate_proj" else rows, rank * rows, rows)
    if kind in ROW_PARALLEL:
        cols = _split(shape[1], size, f"{lm_name} columns")
        return ShardWrite(param, 1, 0, rank * cols, cols)
    if kind in REPLICATED:
        return ShardWrite(param, 0, 0, 0, shape[0])
    raise ModelError(f"no vLLM parameter for {lm_name!r}")


RankPlan = list[tuple[ShardWrite, int]]  # (where, index of the full tensor it reads)
WORKER_TARGETS = "jradievo_targets"  # the worker attribute holding its attached targets


def rank_plans(
    named_shapes: Iterable[tuple[str, tuple[int, ...]]], tp: LlamaTp, size: int, prefix: str
) -> dict[int, RankPlan]:
    """Per TP rank, where each (LM name, full shape)'s rank-local slice goes, with the
    index of its full tensor. Every layout error is raised here, before any worker."""
    out: dict[int, RankPlan] = {rank: [] for rank in range(size)}
    for index, (name, shape) in enumerate(named_shapes):
        for rank in range(size):
            out[rank].append((shard_write(name, tuple(shape), tp, rank, size, prefix), index))
    return out


def share(tensor: torch.Tensor) -> tuple:
    """A handle to `tensor`'s memory that another process on this node opens as a view
    (`open_shared`), picklable by plain pickle (vLLM's message queue would otherwise copy
    the bytes): a CUDA IPC handle, or a named shared-memory file into which a CPU
    tensor's storage moves, once and in place (the tensor stays usable)."""
    if tensor.is_cuda:
        from torch.multiprocessing.reductions import reduce_tensor

        return ("cuda", *reduce_tensor(tensor))
    # torch.multiprocessing's "file_system" sharing: a name, which any process can open
    # (its default, a file descriptor, can be received only once).
    manager, name, size = tensor.untyped_storage()._share_filename_cpu_()
    dtype = str(tensor.dtype).removeprefix("torch.")
    return (
        "cpu",
        manager,
        name,
        size,
        dtype,
        tensor.storage_offset(),
        tensor.shape,
        tensor.stride(),
    )


def open_shared(handle: tuple | torch.Tensor) -> torch.Tensor:
    """The tensor behind a `share` handle (a tensor passed in-process is itself)."""
    if isinstance(handle, torch.Tensor):
        return handle
    if handle[0] == "cuda":
        rebuild, args = handle[1:]
        return rebuild(*args)
    _, manager, name, size, dtype, offset, shape, stride = handle
    storage = torch.UntypedStorage._new_shared_filename_cpu(manager, name, size)
    return torch.empty(0, dtype=getattr(torch, dtype)).set_(storage, offset, shape, stride)


def attach_targets(worker, key: str, sources: list, plans: dict[int, RankPlan]) -> int:
    """Run by `llm.collective_rpc` in each worker, once per set of merge buffers: open the
    buffers (`share` handles, or the tensors themselves in-process), check that this
    rank's slices fit its live parameters, and keep views of them and the layers they go
    to for `write_targets`. Returns the number of slices."""
    from vllm.distributed import get_tensor_model_parallel_rank

    tensors = [open_shared(source) for source in sources]
    writes = [
        (w, tensors[i].narrow(w.dim, w.src_start, w.length))
        for w, i in plans[get_tensor_model_parallel_rank()]
    ]
    model = worker.get_model()
    layers = _layers(model, writes)
    layers |= _tied(model, layers)
    setattr(worker, WORKER_TARGETS, (key, writes, layers))
    return len(writes)


def write_targets(worker, key: str) -> int:
    """Run by `llm.collective_rpc` in each worker, once per genome: copy this rank's slices
    of the attached buffers (their current contents, checked at attach) into the live
    parameters, then let each touched layer redo what vLLM does after loading (vLLM's CPU
    build packs linear weights for oneDNN and frees them, and keeps a packed lm_head copy;
    on CUDA unquantized layers do nothing there). Returns the number of elements written."""
    from vllm.config import set_current_vllm_config
    from vllm.model_executor.layers.linear import LinearBase

    attached_key, writes, layers = getattr(worker, WORKER_TARGETS, (None, [], {}))
    if attached_key != key:
        raise ModelError(f"write_targets: buffers {key!r} are not attached to this worker")
    with torch.no_grad(), set_current_vllm_config(worker.vllm_config):
        for layer in layers.values():
            if isinstance(layer, LinearBase) and layer.weight.numel() == 0:  # packed, freed
                weight = torch.empty(_live_shape(layer), dtype=layer.weight.dtype)
                layer.weight = torch.nn.Parameter(weight.to(layer.weight.device), False)
        for w, piece in writes:
            layer = layers[w.param.rpartition(".")[0]]
            layer.weight.narrow(w.dim, w.param_start, w.length).copy_(piece)
        for layer in layers.values():
            if getattr(layer, "quant_method", None) is not None:
                layer.quant_method.process_weights_after_loading(layer)
    return sum(piece.numel() for _, piece in writes)


def _layers(model: torch.nn.Module, writes: list[tuple[ShardWrite, torch.Tensor]]) -> dict:
    """The layers the writes touch, each write checked to fit (ModelError otherwise)."""
    from vllm.model_executor.layers.linear import UnquantizedLinearMethod
    from vllm.model_executor.layers.vocab_parallel_embedding import (
        UnquantizedEmbeddingMethod,
    )

    layers: dict[str, torch.nn.Module] = {}
    for w, piece in writes:
        name = w.param.rpartition(".")[0]
        layer = layers.setdefault(name, model.get_submodule(name))
        method = getattr(layer, "quant_method", None)
        if method is not None and not isinstance(
            method, UnquantizedLinearMethod | UnquantizedEmbeddingMethod
        ):
            raise ModelError(f"{w.param}: {type(method).__name__} weights are not written")
        shape = _live_shape(layer)
        want = (*shape[: w.dim], w.length, *shape[w.dim + 1 :])
        if w.param_start + w.length > shape[w.dim] or tuple(piece.shape) != want:
            raise ModelError(f"{w.param}: slice {w} of {list(piece.shape)} does not fit {shape}")
    return layers


def _tied(model: torch.nn.Module, layers: dict[str, torch.nn.Module]) -> dict:
    """Other layers that hold a written layer's weight (a tied lm_head holds embed_tokens'):
    vLLM's CPU build keeps a packed copy of it in each, which must be redone too."""
    written = {id(layer.weight) for layer in layers.values()}
    return {
        name: module
        for name, module in model.named_modules()
        if name not in layers and id(getattr(module, "weight", None)) in written
    }


def _live_shape(layer: torch.nn.Module) -> tuple[int, ...]:
    """The rank-local weight shape of a vLLM layer, also once its weight was freed."""
    if hasattr(layer, "output_size_per_partition"):
        return (layer.output_size_per_partition, layer.input_size_per_partition)
    return tuple(layer.weight.shape)

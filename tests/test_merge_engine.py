"""ResidentMerger against mergekit (the oracle) on tiny random Llama / LLaVA folders."""

from __future__ import annotations

import pytest
import torch
from mergekit_oracle import run_mergekit
from safetensors.torch import load_file
from zoo_builders import llama_shapes, sized_llama_config

from jradievo_ray.config import MergeConfig
from jradievo_ray.errors import MergeError, ModelError
from jradievo_ray.merge.engine import ResidentMerger
from jradievo_ray.merge.recipe import MergeRecipe, SourceRecipe, single_source_recipe
from jradievo_ray.search.space import make_space

NAMES = set(llama_shapes(sized_llama_config()))  # the tensors of merge_sources' LMs


@pytest.fixture(scope="module")
def zoo(merge_sources):
    torch.set_num_threads(1)
    paths = merge_sources
    merger = ResidentMerger(
        str(paths["base"]),
        "vlm",
        str(paths["llava"]),
        {"ja": str(paths["ja"]), "med": str(paths["med"])},
    )
    return paths, merger


RECIPE = {"vlm": (0.5, 0.7), "ja": (0.8, 0.5), "med": (-0.3, 0.9)}


def _recipe(scale: float, consensus: bool, densities: bool, drop: float = 0.0) -> MergeRecipe:
    return MergeRecipe(
        sources={
            n: SourceRecipe(weight=w, density=d if densities else 1.0)
            for n, (w, d) in RECIPE.items()
        },
        drop_rate=drop,
        scale=scale,
        sign_consensus=consensus,
    )


def _mergekit(paths, tmp_path, method: str, scale: float, densities: bool):
    lm_of = {"vlm": "vlm_lm", "ja": "ja", "med": "med"}
    models = []
    for n, (w, d) in RECIPE.items():
        params = {"weight": w} | ({"density": d} if densities else {})
        models.append({"model": str(paths[lm_of[n]]), "parameters": params})
    config = {
        "merge_method": method,
        "base_model": str(paths["base"]),
        "models": models,
        "parameters": {"lambda": scale},
        "dtype": "float32",
    }
    return run_mergekit(config, tmp_path / method, NAMES)


def _lm_name(vlm_name: str) -> str:
    return vlm_name if vlm_name == "lm_head.weight" else "model." + vlm_name.split(".", 2)[2]


def _assert_matches(merged: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], llava):
    assert {_lm_name(n) for n in merged} == NAMES
    vlm_own = load_file(str(llava / "model.safetensors"))
    for name, tensor in merged.items():
        want = expected[_lm_name(name)]
        rows = want.shape[0]
        assert (tensor[:rows] - want).abs().max().item() <= 1e-5, name
        if tensor.shape != want.shape:  # the VLM's image-token row is kept as is
            legacy = (
                "language_model.lm_head.weight"
                if "lm_head" in name
                else ("language_model.model.embed_tokens.weight")
            )
            assert torch.equal(tensor[rows:], vlm_own[legacy][rows:]), name


def test_ties_equals_mergekit(zoo, tmp_path):
    paths, merger = zoo
    expected = _mergekit(paths, tmp_path, "ties", 1.3, densities=True)
    merged = dict(merger.merged_tensors(_recipe(1.3, consensus=True, densities=True)))
    _assert_matches(merged, expected, paths["llava"])


def test_task_arithmetic_equals_mergekit(zoo, tmp_path):
    paths, merger = zoo
    expected = _mergekit(paths, tmp_path, "task_arithmetic", 0.7, densities=False)
    merged = dict(merger.merged_tensors(_recipe(0.7, consensus=False, densities=False)))
    _assert_matches(merged, expected, paths["llava"])


def test_merge_into_llava_in_place(zoo, tmp_path):
    from transformers import LlavaForConditionalGeneration

    paths, merger = zoo
    model = LlavaForConditionalGeneration.from_pretrained(paths["llava"], dtype=torch.float32)
    targets = dict(model.named_parameters())
    before = {n: p.detach().clone() for n, p in targets.items()}
    ptrs = {n: p.data_ptr() for n, p in targets.items()}
    recipe = _recipe(1.3, consensus=True, densities=True)
    merger.merge_into(recipe, targets)
    expected = dict(merger.merged_tensors(recipe))
    assert set(expected) == set(merger.language_names())
    for name, param in targets.items():
        assert param.data_ptr() == ptrs[name]
        if name in expected:
            assert torch.equal(param.detach(), expected[name]), name
        else:
            assert name.startswith("model.vision_tower.") or "projector" in name, name
            assert torch.equal(param.detach(), before[name]), name


def test_dare_drop_zero_is_ties_and_ignores_seed(zoo):
    _, merger = zoo
    recipe = _recipe(1.3, consensus=True, densities=True, drop=0.0)
    a = dict(merger.merged_tensors(recipe, seed=1))
    b = dict(merger.merged_tensors(recipe, seed=2))
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_dare_keeps_fraction_and_rescales(zoo):
    _, merger = zoo
    p = 0.3
    only_ja = MergeRecipe(sources={"ja": SourceRecipe(1.0)}, drop_rate=p)
    merged = dict(merger.merged_tensors(only_ja, seed=7))
    again = dict(merger.merged_tensors(only_ja, seed=7))
    other = dict(merger.merged_tensors(only_ja, seed=8))
    full = dict(merger.merged_tensors(MergeRecipe(sources={"ja": SourceRecipe(1.0)})))
    base = dict(merger.merged_tensors(MergeRecipe(sources={"ja": SourceRecipe(0.0)})))
    kept = total = 0
    for name, tensor in merged.items():
        assert torch.equal(tensor, again[name]), name
        tau = full[name] - base[name]
        delta = tensor - base[name]
        live = tau != 0  # the VLM's own image-token row has no task vector
        keep = (delta != 0) & live
        kept += int(keep.sum())
        total += int(live.sum())
        torch.testing.assert_close(delta[keep], tau[keep] / (1 - p), rtol=1e-4, atol=1e-6)
    assert abs(kept / total - (1 - p)) < 4 * (p * (1 - p) / total) ** 0.5
    assert any(not torch.equal(merged[n], other[n]) for n in merged)


def test_unknown_source_in_recipe(zoo):
    _, merger = zoo
    with pytest.raises(MergeError, match="unknown sources: nope"):
        list(merger.merged_tensors(MergeRecipe(sources={"nope": SourceRecipe(1.0)})))


def test_mismatched_lm_fails_naming_tensor(zoo, wide_llama):
    paths, _ = zoo
    with pytest.raises(ModelError, match=r"mlp\.(gate|up|down)_proj\.weight"):
        ResidentMerger(str(paths["base"]), "vlm", str(paths["llava"]), {"ja": str(wide_llama)})


def test_host_residency_streams_the_same_merge(zoo):
    paths, merger = zoo
    host = ResidentMerger(
        str(paths["base"]),
        "vlm",
        str(paths["llava"]),
        {"ja": str(paths["ja"]), "med": str(paths["med"])},
        residency="host",
    )
    assert (host.residency, merger.residency) == ("host", "device")
    assert host.resident_bytes == merger.resident_bytes > 0
    for recipe in (_recipe(1.3, True, True, drop=0.2), _recipe(0.7, False, False)):
        want = dict(merger.merged_tensors(recipe, seed=4))
        targets = {n: torch.zeros_like(t) for n, t in want.items()}
        host.merge_into(recipe, targets, seed=4)
        assert all(torch.equal(targets[n], want[n]) for n in want)


@pytest.mark.parametrize("space", ["jradievo", "layer_groups"])
@pytest.mark.parametrize("name", ["vlm", "ja", "med"])
def test_a_source_genome_merges_to_that_source_alone(zoo, space, name):
    """search.init random+sources seeds the search with each source's genome: decoded (with
    TIES sign election on, as the demo searches) it must merge to exactly the held-out
    table's source/<name> row, the task vector of that source alone."""
    _, merger = zoo
    names = ["vlm", "ja", "med"]
    genome_space = make_space(names, MergeConfig(space=space, sign_consensus=True))
    from_genome = dict(merger.merged_tensors(genome_space.decode(genome_space.encode_source(name))))
    alone = dict(merger.merged_tensors(single_source_recipe(names, name)))
    assert from_genome.keys() == alone.keys()
    for tensor in alone:
        torch.testing.assert_close(from_genome[tensor], alone[tensor], rtol=0, atol=1e-6)

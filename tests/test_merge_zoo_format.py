"""The merge engine and `jradievo merge` on folders saved exactly like the demo zoo's
(vLLM-style `vision_tower.vision_model.*` names, processor files)."""

from __future__ import annotations

import pytest
import torch
import yaml

from jradievo_ray.cli import main
from jradievo_ray.merge.engine import ResidentMerger
from jradievo_ray.merge.recipe import MergeRecipe, SourceRecipe

SHAPE = dict(hidden=64, layers=2, heads=2, head_dim=32, intermediate=128, vision_layers=1)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    from zoo_builders import build_random_llama, build_random_llava, small_tokenizer

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("zoo")
    tok = small_tokenizer()
    paths = {
        name: build_random_llama(d / name, seed=i, tokenizer=tok, **SHAPE)
        for i, name in enumerate(["base", "ja", "med"])
    }
    paths["vlm"] = build_random_llava(d / "vlm", seed=3, tokenizer=tok, **SHAPE)
    return {k: str(v) for k, v in paths.items()}


def test_zoo_vlm_merges_and_loads(zoo, tmp_path):
    from transformers import LlavaForConditionalGeneration

    recipe = MergeRecipe(
        sources={
            "vlm": SourceRecipe(0.3, 0.8),
            "ja": SourceRecipe(0.6, 0.5),
            "med": SourceRecipe(0.2),
        },
        scale=1.1,
        sign_consensus=True,
    )
    merger = ResidentMerger(zoo["base"], "vlm", zoo["vlm"], {"ja": zoo["ja"], "med": zoo["med"]})
    model = LlavaForConditionalGeneration.from_pretrained(zoo["vlm"], dtype=torch.float32)
    targets = dict(model.named_parameters())
    merger.merge_into(recipe, targets)
    merged = dict(merger.merged_tensors(recipe))
    assert merged and all(torch.equal(targets[n].detach(), t) for n, t in merged.items())

    config = {
        "merge_method": "ties",
        "base_model": zoo["base"],
        "models": [
            {"model": zoo[n], "parameters": {"weight": s.weight, "density": s.density}}
            for n, s in recipe.sources.items()
        ],
        "parameters": {"lambda": recipe.scale},
        "dtype": "float32",
    }
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(config))
    assert main(["merge", str(tmp_path / "m.yaml"), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "processor_config.json").is_file()
    loaded = LlavaForConditionalGeneration.from_pretrained(tmp_path / "out", dtype=torch.float32)
    for name, param in loaded.named_parameters():
        assert torch.allclose(param, targets[name], atol=1e-5, rtol=0), name

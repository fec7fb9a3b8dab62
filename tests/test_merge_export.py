"""Export: a search's recipe as a mergekit YAML that mergekit and `jradievo merge` turn
into the same model as the resident engine; layer groups, generic methods, global trim."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from mergekit_oracle import run_mergekit
from safetensors import safe_open
from zoo_builders import llama_shapes, save_merge_sources, sized_llama_config

from jradievo_ray.cli import main
from jradievo_ray.config import MergeConfig
from jradievo_ray.merge.engine import ResidentMerger
from jradievo_ray.merge.recipe import MergeRecipe, MethodRecipe, SourceRecipe
from jradievo_ray.search.space import make_space

CFG = sized_llama_config(hidden=64, intermediate=128, layers=4, heads=4, kv_heads=2, vocab=96)
NAMES = set(llama_shapes(CFG))


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("zoo")
    paths = {k: str(v) for k, v in save_merge_sources(d, CFG, noise_grows=True).items()}
    merger = ResidentMerger(
        paths["base"], "vlm", paths["llava"], {"ja": paths["ja"], "med": paths["med"]}
    )
    return paths, merger


def _read(folder) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), "pt") as h:
            out |= {k: h.get_tensor(k) for k in h.keys()}  # noqa: SIM118
    return out


def _lm(vlm_name: str) -> str:
    if vlm_name.endswith("lm_head.weight"):
        return "lm_head.weight"
    return "model." + vlm_name.removeprefix("language_model.model.")


def _run_dir(tmp_path, paths, recipe) -> str:
    run = tmp_path / "run"
    run.mkdir()
    (run / "search.jsonl").write_text("")
    config = {
        "models": {
            "base": {"name": "base", "path": paths["base"]},
            "vlm": {"name": "vlm", "path": paths["llava"]},
            "sources": [{"name": "ja", "path": paths["ja"]}, {"name": "med", "path": paths["med"]}],
        },
        "data": {"search": str(run / "search.jsonl")},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "result.json").write_text(json.dumps({"best": {"recipe": recipe.to_dict()}}))
    return str(run)


def _check_export(tmp_path, paths, merger, recipe, capsys):
    assert main(["export", _run_dir(tmp_path, paths, recipe)]) == 0
    export = tmp_path / "run" / "export"
    text = (export / "merge.yaml").read_text()
    assert "APPROXIMATE" not in text
    model = _read(export / "model")
    vlm = _read(__import__("pathlib").Path(paths["llava"]))
    assert set(model) == set(vlm)
    engine = dict(merger.merged_tensors(recipe, stored_names=True))
    for name, tensor in vlm.items():
        want = engine.get(name, tensor)
        assert torch.equal(model[name], want), name
    # jradievo merge on the exported YAML gives the same VLM
    assert main(["merge", str(export / "merge.yaml"), str(tmp_path / "again")]) == 0
    again = _read(tmp_path / "again")
    assert set(again) == set(model)
    assert max((again[n] - model[n]).abs().max().item() for n in model) <= 1e-5
    # mergekit itself on the text LMs (the VLM's language model as a Llama) agrees
    raw = yaml.safe_load(text)
    raw["models"][0]["model"] = paths["vlm_lm"]
    theirs = run_mergekit(raw, tmp_path / "mk", NAMES)
    for name in engine:
        want = theirs[_lm(name)]
        assert (model[name][: want.shape[0]] - want).abs().max().item() <= 1e-5, name


def test_layer_group_ties_recipe_exports_exactly(zoo, tmp_path, capsys):
    paths, merger = zoo
    cfg = MergeConfig(space="layer_groups", groups=2, split_attn_mlp=True)
    space = make_space(["vlm", "ja", "med"], cfg)
    genome = [float(x) for x in torch.rand(space.size, generator=torch.Generator().manual_seed(1))]
    genome[0] = 0.0  # no DARE: mergekit has an exact counterpart
    recipe = space.decode(genome)
    assert len({g["ja"].weight for g in recipe.groups}) == 4  # the groups really differ
    _check_export(tmp_path, paths, merger, recipe, capsys)


def test_task_arithmetic_recipe_exports_exactly(zoo, tmp_path, capsys):
    paths, merger = zoo
    recipe = MergeRecipe(
        sources={"vlm": SourceRecipe(0.1), "ja": SourceRecipe(0.7), "med": SourceRecipe(-0.2)},
        scale=1.3,
    )
    _check_export(tmp_path, paths, merger, recipe, capsys)


@pytest.mark.parametrize(
    "recipe",
    [
        MethodRecipe(
            "linear", {"vlm": {"weight": 0.2}, "ja": {"weight": 0.5}, "med": {"weight": 0.3}}
        ),
        MethodRecipe(
            "della",
            {
                n: {"weight": w, "density": 1.0, "epsilon": 0.05}
                for n, w in [("vlm", 0.3), ("ja", 0.9), ("med", -0.4)]
            },
            {"lambda": 0.8},
        ),
    ],
    ids=["linear", "della"],
)
def test_method_recipes_run_in_the_engine_and_export(zoo, tmp_path, capsys, recipe):
    paths, merger = zoo
    _check_export(tmp_path, paths, merger, recipe, capsys)


def test_dare_recipe_is_marked_approximate(zoo, tmp_path):
    paths, _ = zoo
    recipe = MergeRecipe(sources={"ja": SourceRecipe(1.0, 0.5)}, drop_rate=0.3, sign_consensus=True)
    assert main(["export", _run_dir(tmp_path, paths, recipe)]) == 0
    assert "APPROXIMATE" in (tmp_path / "run" / "export" / "merge.yaml").read_text()


def test_global_trim_uses_one_threshold_per_source(zoo):
    _, merger = zoo
    density = 0.3
    only_ja = {"ja": SourceRecipe(1.0, density)}
    base = dict(merger.merged_tensors(MergeRecipe(sources={"ja": SourceRecipe(0.0)})))
    full = dict(merger.merged_tensors(MergeRecipe(sources={"ja": SourceRecipe(1.0)})))
    trimmed = dict(merger.merged_tensors(MergeRecipe(sources=only_ja, trim="global")))
    per_tensor = dict(merger.merged_tensors(MergeRecipe(sources=only_ja)))
    kept_mag, dropped_mag = [], []
    for name in base:
        tau = (full[name] - base[name]).reshape(-1)
        live = tau != 0  # the VLM's own image-token row has no task vector
        keep = ((trimmed[name] - base[name]).reshape(-1) != 0) & live
        kept_mag.append(tau[keep].abs())
        dropped_mag.append(tau[~keep & live].abs())
        local = ((per_tensor[name] - base[name]).reshape(-1) != 0).float().mean()
        assert abs(float(local) - density) < 0.02, name  # per tensor: each tensor at density
    kept, dropped = torch.cat(kept_mag), torch.cat(dropped_mag)
    everything = torch.cat([kept, dropped])
    exact = everything.kthvalue(everything.numel() - int(density * everything.numel()) + 1).values
    assert kept.min() >= dropped.max()  # one threshold for the whole model
    assert exact / 2 ** (50 / 8192) <= kept.min() <= exact  # at most one bin below exact
    assert abs(kept.numel() / everything.numel() - density) < 0.005

"""`jradievo merge`: VLM x LLM merges keep every VLM tensor; bad input exits 2, no debris."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from mergekit_oracle import run_mergekit
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from zoo_builders import llama_shapes, save_llava_around, save_merge_sources, sized_llama_config

from jradievo_ray.cli import main
from jradievo_ray.hf.folder import with_text_defaults

NAMES = set(llama_shapes(sized_llama_config()))  # the tensors of merge_sources' LMs


@pytest.fixture(scope="module")
def models(merge_sources, wide_llama):
    torch.set_num_threads(1)
    return {**merge_sources, "wide": wide_llama}


def _write(tmp_path, raw: dict):
    path = tmp_path / "merge.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _ties(models, vlm: str = "llava") -> dict:
    return {
        "merge_method": "ties",
        "base_model": str(models["base"]),
        "models": [
            {"model": str(models[vlm]), "parameters": {"weight": 0.5, "density": 0.7}},
            {"model": str(models["ja"]), "parameters": {"weight": 0.8, "density": 0.5}},
            {"model": str(models["med"]), "parameters": {"weight": 0.3, "density": 0.9}},
        ],
        "parameters": {"lambda": 1.2},
        "dtype": "float32",
    }


def test_vlm_merge_keeps_every_vlm_tensor_and_merges_its_language_tower(models, tmp_path):
    out = tmp_path / "out"
    assert main(["merge", _write(tmp_path, _ties(models)), str(out)]) == 0
    merged = load_file(str(out / "model.safetensors"))
    with safe_open(str(models["llava"] / "model.safetensors"), "pt") as f:
        vlm = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    assert set(merged) == set(vlm)  # every tensor of the VLM, same names
    text = run_mergekit(_ties(models, vlm="vlm_lm"), tmp_path / "mk", NAMES)
    for name, tensor in merged.items():
        if name.startswith(("vision_tower.", "multi_modal_projector.")):
            assert torch.equal(tensor, vlm[name]), name
            continue
        lm = "lm_head.weight" if name.endswith("lm_head.weight") else "model." + name[21:]
        rows = text[lm].shape[0]
        assert (tensor[:rows] - text[lm]).abs().max() <= 1e-5, name
        assert torch.equal(tensor[rows:], vlm[name][rows:]), name  # image-token row kept
    assert (out / "config.json").is_file()
    from transformers import LlavaForConditionalGeneration

    LlavaForConditionalGeneration.from_pretrained(out)  # loads without missing weights


def test_mergekit_itself_drops_llava_tensors(models, tmp_path):
    """Why `jradievo merge` exists for VLMs: mergekit exits cleanly with a partial model."""
    same_vocab = save_llava_around(models["vlm_lm"], tmp_path / "llava", extra_vocab=0)
    raw = _ties(models)
    raw["models"][0]["model"] = str(same_vocab)
    with safe_open(str(same_vocab / "model.safetensors"), "pt") as f:
        every = set(f.keys())
    with pytest.raises(AssertionError, match="incomplete"):
        run_mergekit(raw, tmp_path / "mk", every)
    assert main(["merge", _write(tmp_path, raw), str(tmp_path / "ours")]) == 0
    with safe_open(str(tmp_path / "ours" / "model.safetensors"), "pt") as f:
        assert set(f.keys()) == every


def _expect_error(capsys, tmp_path, raw: dict, match: str) -> None:
    out = tmp_path / "out"
    assert main(["merge", _write(tmp_path, raw), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err and "Traceback" not in err, err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["merge.yaml"]  # nothing half-written


def test_unknown_method(models, tmp_path, capsys):
    _expect_error(
        capsys, tmp_path, _ties(models) | {"merge_method": "frankenmerge"}, "frankenmerge"
    )


def test_missing_model_path(models, tmp_path, capsys):
    raw = _ties(models)
    raw["models"][1]["model"] = str(tmp_path / "nope")
    _expect_error(capsys, tmp_path, raw, "models.1.model")


def test_missing_base(models, tmp_path, capsys):
    raw = {k: v for k, v in _ties(models).items() if k != "base_model"}
    _expect_error(capsys, tmp_path, raw, "needs a base_model")


def test_mismatched_shapes(models, tmp_path, capsys):
    raw = _ties(models)
    raw["models"][2]["model"] = str(models["wide"])
    _expect_error(capsys, tmp_path, raw, "mlp.")


def test_unknown_parameter(models, tmp_path, capsys):
    raw = _ties(models)
    raw["models"][0]["parameters"]["densty"] = 0.5
    _expect_error(capsys, tmp_path, raw, "models.0.parameters.densty")


def test_failure_while_writing_leaves_nothing(models, tmp_path, capsys):
    raw = _ties(models) | {"merge_method": "della"}
    raw["models"][0]["parameters"]["density"] = 0.1  # density - epsilon <= 0, found mid-merge
    _expect_error(capsys, tmp_path, raw, "epsilon")


def test_out_dir_not_empty(models, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["merge", _write(tmp_path, _ties(models)), str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_quantized_tensor_is_refused_by_name(models, tmp_path, capsys):
    """A text LM with an int8 (quantized) language tensor fails, naming it, not a silent cast."""
    q = tmp_path.parent / f"{tmp_path.name}-int8"
    q.mkdir()
    (q / "config.json").write_text((models["med"] / "config.json").read_text())
    tensors = load_file(models["med"] / "model.safetensors")
    name = "model.layers.0.mlp.up_proj.weight"
    tensors[name] = tensors[name].to(torch.int8)
    save_file(tensors, q / "model.safetensors")
    raw = _ties(models)
    raw["models"][2]["model"] = str(q)
    _expect_error(capsys, tmp_path, raw, f"{name!r} is stored as I8")


def test_configs_saved_as_a_diff_against_transformers_defaults(tmp_path):
    """Older transformers save only the config fields that differ from the defaults
    (llava-hf/llava-1.5-7b-hf names no num_hidden_layers); the merge takes the rest from
    transformers, as loading the model would."""
    from transformers import LlamaConfig

    default = LlamaConfig()
    vlm = {"model_type": "llava", "text_config": {"model_type": "llama", "hidden_size": 64}}
    text = with_text_defaults(vlm)["text_config"]
    assert text["hidden_size"] == 64  # written values win
    assert text["num_hidden_layers"] == default.num_hidden_layers
    assert text["num_attention_heads"] == default.num_attention_heads
    assert text["head_dim"] == 64 // default.num_attention_heads
    assert with_text_defaults({"model_type": "llava"})["text_config"]["vocab_size"] == (
        default.vocab_size
    )
    lm = with_text_defaults({"model_type": "llama", "num_key_value_heads": 8})
    assert lm["num_key_value_heads"] == 8 and lm["hidden_size"] == default.hidden_size
    assert with_text_defaults({"model_type": "no-such-model", "a": 1}) == {
        "model_type": "no-such-model",
        "a": 1,
    }

    cfg = sized_llama_config(
        hidden=64, intermediate=128, layers=default.num_hidden_layers, vocab=96
    )
    models = save_merge_sources(tmp_path / "models", cfg)
    full = tmp_path / "full"
    assert main(["merge", _write(tmp_path, _ties(models)), str(full)]) == 0
    for folder in models.values():  # what a diff-saved config leaves out
        path = folder / "config.json"
        config = json.loads(path.read_text())
        config.get("text_config", config).pop("num_hidden_layers")
        path.write_text(json.dumps(config))
    diff = tmp_path / "diff"
    assert main(["merge", _write(tmp_path, _ties(models)), str(diff)]) == 0
    want, got = (
        load_file(str(full / "model.safetensors")),
        load_file(str(diff / "model.safetensors")),
    )
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in want)

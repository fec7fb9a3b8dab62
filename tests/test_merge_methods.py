"""Every registered method vs mergekit 0.1.5 itself, on tiny random Llama folders."""

from __future__ import annotations

import pytest
import torch
import yaml
from mergekit_oracle import run_mergekit
from safetensors.torch import load_file
from zoo_builders import (
    llama_shapes,
    save_finetune,
    save_random_llama,
    sized_llama_config,
)

from jradievo_ray.merge.folder import FolderMerge
from jradievo_ray.merge.mergekit_config import parse_mergekit_config
from jradievo_ray.merge.methods import METHODS

CFG = sized_llama_config(hidden=64, intermediate=128, layers=3, heads=4, kv_heads=2, vocab=96)
NAMES = set(llama_shapes(CFG))


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("lms")
    base = save_random_llama(d / "base", CFG, seed=0)
    out = {"base": str(base)}
    for i, name in enumerate("abc", start=1):
        out[name] = str(save_finetune(base, d / name, seed=i, noise=0.01 * i))
    return out


def _models(lms, params: dict[str, dict]) -> list[dict]:
    return [
        {"model": lms[n], "parameters": p} if p else {"model": lms[n]} for n, p in params.items()
    ]


CASES = {
    "linear": lambda m: {
        "models": _models(
            m, {"a": {"weight": [0.2, 0.9]}, "b": {"weight": 0.5}, "c": {"weight": 0.3}}
        ),
        "parameters": {"normalize": True},
    },
    "task_arithmetic": lambda m: {
        "base_model": m["base"],
        "models": _models(m, {"a": {"weight": [1.0, 0.2, 0.5]}, "b": {"weight": -0.4}, "c": {}}),
        "parameters": {"weight": 0.6, "lambda": 0.8},
    },
    "ties": lambda m: {
        "base_model": m["base"],
        "models": _models(
            m,
            {
                "a": {"weight": 0.7, "density": [0.3, 0.9]},
                "b": {"weight": [{"filter": "mlp", "value": -0.5}, {"value": 0.4}], "density": 0.6},
                "c": {"weight": 0.2, "density": 1.0},
            },
        ),
        "parameters": {"lambda": 1.2},
    },
    "breadcrumbs": lambda m: {
        "base_model": m["base"],
        "models": _models(
            m,
            {
                "a": {"weight": 0.7, "density": 0.8, "gamma": 0.05},
                "b": {"weight": 0.4, "density": 0.6},
            },
        ),
    },
    "breadcrumbs_ties": lambda m: {
        "base_model": m["base"],
        "models": _models(
            m,
            {
                "a": {"weight": 0.7, "density": 0.8, "gamma": 0.05},
                "b": {"weight": -0.4, "density": 0.6},
            },
        ),
        "parameters": {"normalize": True},
    },
    # Random methods are deterministic at density 1 (here: with their rescale / normalize).
    "dare_ties": lambda m: {
        "base_model": m["base"],
        "models": _models(m, {"a": {"weight": 0.7}, "b": {"weight": -0.4}, "c": {"weight": 0.3}}),
    },
    "dare_linear": lambda m: {
        "base_model": m["base"],
        "models": _models(m, {"a": {"weight": 0.7}, "b": {"weight": 0.4}}),
        "parameters": {"lambda": 1.5},
    },
    "della": lambda m: {
        "base_model": m["base"],
        "models": _models(m, {"a": {"weight": 0.7}, "b": {"weight": -0.4}, "c": {"weight": 0.3}}),
    },
    "della_linear": lambda m: {
        "base_model": m["base"],
        "models": _models(m, {"a": {"weight": 0.7}, "b": {"weight": 0.4}}),
    },
    "slerp": lambda m: {
        "base_model": m["a"],
        "models": _models(m, {"a": {}, "b": {}}),
        "parameters": {"t": [{"filter": "self_attn", "value": [0.0, 0.5, 1.0]}, {"value": 0.3}]},
    },
    "nuslerp": lambda m: {
        "base_model": m["base"],
        "models": _models(m, {"a": {"weight": 0.3}, "b": {"weight": [0.4, 0.9]}}),
    },
    "model_stock": lambda m: {
        "base_model": m["base"],
        "models": _models(m, {"a": {}, "b": {}, "c": {}}),
    },
}


def test_every_registered_method_has_a_parity_case():
    assert set(CASES) == set(METHODS)


def test_parameter_names_and_defaults_match_mergekit():
    from mergekit.merge_methods.base import MISSING
    from mergekit.merge_methods.registry import get

    for name, method in METHODS.items():
        theirs = {
            p.name: (None if p.default is MISSING else p.default) for p in get(name).spec.parameters
        }
        ours = {p.name: (None if p.default is ... else p.default) for p in method.params}
        assert ours == theirs, name


@pytest.mark.parametrize("method", sorted(CASES))
def test_method_equals_mergekit(method, lms, tmp_path):
    raw = {"merge_method": method, **CASES[method](lms), "dtype": "float32"}
    expected = run_mergekit(raw, tmp_path / "mergekit", NAMES)
    out = FolderMerge(parse_mergekit_config(raw, "t.yaml")).write(
        tmp_path / "ours", progress=lambda _: None
    )
    ours = load_file(str(out / "model.safetensors"))
    assert set(ours) == NAMES
    for name in NAMES:
        diff = (ours[name] - expected[name]).abs().max().item()
        assert diff <= 1e-5, (name, diff)
    assert yaml.safe_load((out / "mergekit_config.yml").read_text())["merge_method"] == method


def _stats(merged: dict, base: dict, delta_of: dict) -> tuple[float, float, float]:
    """Kept fraction, L1 ratio (merged delta / task vector), kept fraction in the top
    magnitude quartile minus the bottom quartile."""
    kept = total = 0
    l1_out = l1_in = 0.0
    top = bottom = 0.0
    for name in NAMES:
        d = merged[name].double() - base[name].double()
        tau = delta_of[name].double()
        keep = d.abs() > 1e-9
        kept += int(keep.sum())
        total += keep.numel()
        l1_out += float(d.abs().sum())
        l1_in += float(tau.abs().sum())
        mag = tau.abs().reshape(-1)
        q1, q3 = mag.quantile(0.25), mag.quantile(0.75)
        k = keep.reshape(-1).double()
        top += float(k[mag >= q3].mean()) / len(NAMES)
        bottom += float(k[mag <= q1].mean()) / len(NAMES)
    return kept / total, l1_out / l1_in, top - bottom


@pytest.mark.parametrize("method", ["dare_linear", "della_linear"])
def test_random_methods_statistically_match_mergekit(method, lms, tmp_path):
    raw = {
        "merge_method": method,
        "base_model": lms["base"],
        "models": [{"model": lms["a"], "parameters": {"weight": 1.0, "density": 0.6}}],
        "dtype": "float32",
    }
    theirs = run_mergekit(raw, tmp_path / "mergekit", NAMES)
    out = FolderMerge(parse_mergekit_config(raw, "t.yaml")).write(
        tmp_path / "ours", seed=3, progress=lambda _: None
    )
    ours = load_file(str(out / "model.safetensors"))
    base = load_file(lms["base"] + "/model.safetensors")
    a = load_file(lms["a"] + "/model.safetensors")
    tau = {n: a[n] - base[n] for n in NAMES}
    kept, l1, slope = _stats(ours, base, tau)
    kept_mk, l1_mk, slope_mk = _stats(theirs, base, tau)
    assert abs(kept - 0.6) < 0.01 and abs(kept_mk - 0.6) < 0.01
    # L1 rescaling per tensor keeps the task vector's L1 norm (up to per-tensor spread).
    assert abs(l1 - 1) < 0.02 and abs(l1_mk - 1) < 0.02
    if method == "della_linear":  # keep probability rises with magnitude (0.45 -> 0.75)
        assert 0.2 < slope < 0.4 and 0.2 < slope_mk < 0.4
    else:
        assert abs(slope) < 0.05 and abs(slope_mk) < 0.05
    again = FolderMerge(parse_mergekit_config(raw, "t.yaml")).write(
        tmp_path / "again", seed=3, progress=lambda _: None
    )
    assert torch.equal(
        load_file(str(again / "model.safetensors"))["lm_head.weight"], ours["lm_head.weight"]
    )

"""build_generator: settings checked before anything loads; the transformers path builds a
working generator on the device asked for."""

from __future__ import annotations

import pytest
import torch
from zoo_builders import build_random_llava

from jradievo_ray.errors import UserError
from jradievo_ray.inference.factory import build_generator, check_settings, resolve_device
from jradievo_ray.inference.transformers_backend import TransformersGenerator

GOOD = {
    "max_new_tokens": 8,
    "batch_size": 2,
    "device": "auto",
    "dtype": "float32",
    "tensor_parallel_size": 1,
}


@pytest.mark.parametrize(
    ("backend", "change", "message"),
    [
        ("onnx", {}, "backend: expected one of transformers, vllm"),
        ("transformers", {"dtype": "float64"}, "dtype: expected one of"),
        ("transformers", {"device": "tpu"}, "device: expected auto, cpu, cuda"),
        ("transformers", {"max_new_tokens": 0}, "max_new_tokens: must be >= 1, got 0"),
        ("transformers", {"batch_size": -1}, "batch_size: must be >= 1, got -1"),
        ("transformers", {"tensor_parallel_size": 2}, "only the vllm backend"),
        ("vllm", {"device": "cuda:1"}, "the vllm backend chooses its own device"),
    ],
)
def test_bad_settings_are_user_errors(backend, change, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        check_settings(backend, **(GOOD | change))


def test_good_settings_pass():
    check_settings("transformers", **(GOOD | {"device": "cuda:1", "dtype": "bfloat16"}))
    check_settings("vllm", **(GOOD | {"tensor_parallel_size": 4}))
    if not torch.cuda.is_available():  # vLLM's CPU build: the search's device: cpu is fine
        check_settings("vllm", **(GOOD | {"device": "cpu"}))


def test_resolve_device():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"


def test_model_folder_is_checked_before_loading(tmp_path):
    with pytest.raises(UserError, match="model folder does not exist"):
        build_generator("transformers", tmp_path / "none", **GOOD)
    with pytest.raises(UserError, match=r"no config\.json"):
        build_generator("transformers", tmp_path, **GOOD)


def test_transformers_generator_on_cpu(tmp_path):
    vlm = build_random_llava(tmp_path / "vlm", seed=1, layers=1)
    gen = build_generator("transformers", vlm, **(GOOD | {"device": "cpu", "dtype": "bfloat16"}))
    assert isinstance(gen, TransformersGenerator)
    assert gen.device == "cpu" and gen.model.dtype == torch.bfloat16
    assert gen.batch_size == 2 and gen.max_new_tokens == 8

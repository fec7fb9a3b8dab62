"""Run mergekit itself (the correctness oracle) on local folders, in-process, CPU."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file


def run_mergekit(config: dict, out: Path, expected_names: set[str]) -> dict[str, torch.Tensor]:
    """Merge with mergekit's Python API and return its tensors. mergekit can exit cleanly
    after writing only a few tensors (LLaVA folders), so the output's names are checked."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    options = MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True, device="cpu")
    run_merge(MergeConfiguration.model_validate(config), str(out), options)
    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(out.glob("*.safetensors")):
        tensors |= load_file(str(file))
    assert set(tensors) == expected_names, "mergekit wrote an incomplete model"
    return tensors

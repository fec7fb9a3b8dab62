"""mergekit's `model_stock`: interpolate between the base and the models' average by a
ratio set from the mean pairwise cosine of their task vectors."""

from __future__ import annotations

from typing import Any

import torch

from jradievo_ray.merge.methods.registry import Inputs, Method, Param, register


def _model_stock(inputs: Inputs, shared: dict[str, Any], per: dict[str, list[Any]]):
    w0, ws = inputs.base, inputs.models
    shape = w0.shape
    if shared["filter_wise"]:
        if w0.dim() == 1:
            w0, ws = w0.unsqueeze(0), [w.unsqueeze(0) for w in ws]
    else:
        w0, ws = w0.reshape(-1), [w.reshape(-1) for w in ws]
    offsets = [w - w0 for w in ws]
    cosines = []
    for i, a in enumerate(offsets):
        for b in offsets[i + 1 :]:
            norms = torch.norm(a, dim=-1) * torch.norm(b, dim=-1)
            cosines.append(((a * b).sum(dim=-1) / norms.clamp(min=1e-6)).clamp(-1, 1))
    cos = torch.stack(cosines).mean(dim=0).unsqueeze(-1)
    n = len(ws)
    denominator = 1 + (n - 1) * cos
    singular = denominator.abs() < 1e-6
    safe = torch.where(singular, torch.ones_like(denominator), denominator)
    t = torch.where(singular, torch.zeros_like(cos), n * cos / safe)
    average = sum(ws) / n
    return (t * average + (1 - t) * w0).reshape(shape)


register(
    Method(
        name="model_stock",
        params=(Param("filter_wise", bool, False),),
        kernel=_model_stock,
        min_models=2,
    )
)

"""mergekit's spherical interpolations: `slerp` (base and one model, parameter t) and
`nuslerp` (two models weighted, of their task vectors when a base is given)."""

from __future__ import annotations

from typing import Any

import torch

from jradievo_ray.merge.methods.registry import Base, Inputs, Method, Param, register


def slerp(t: float, v0: torch.Tensor, v1: torch.Tensor, dot_threshold: float = 0.9995):
    """Whole-tensor SLERP from v0 (t = 0) to v1 (t = 1), in float32 (float64 stays)."""
    dtype = torch.float64 if v0.dtype == torch.float64 else torch.float32
    a, b = v0.reshape(-1).to(dtype), v1.reshape(-1).to(dtype)
    if a.numel() == 0:
        return v0.clone()
    norm_a = torch.linalg.vector_norm(a)
    norm_b = torch.linalg.vector_norm(b)
    norm_a = torch.where(norm_a > 1e-8, norm_a, 1)
    norm_b = torch.where(norm_b > 1e-8, norm_b, 1)
    dot = ((a / norm_a) * (b / norm_b)).sum().clamp(-1, 1)
    if dot.abs() > dot_threshold:
        out = (1 - t) * a + t * b
    else:
        theta = torch.acos(dot)
        sin_theta = torch.sin(theta)
        out = torch.sin((1 - t) * theta) / sin_theta * a + torch.sin(t * theta) / sin_theta * b
    return out.reshape(v0.shape).to(v0.dtype)


def _slerp(inputs: Inputs, shared: dict[str, Any], per: dict[str, list[Any]]) -> torch.Tensor:
    return slerp(shared["t"], inputs.base, inputs.models[0])


def nuslerp(t: float, v0: torch.Tensor, v1: torch.Tensor, row_wise: bool, flatten: bool):
    out_shape = v0.shape
    if flatten:
        v0, v1 = v0.reshape(-1), v1.reshape(-1)
    elif row_wise:
        v0, v1 = v0.transpose(0, -1), v1.transpose(0, -1)

    def unit(x: torch.Tensor) -> torch.Tensor:
        return x / torch.norm(x, dim=-1, keepdim=True).clamp(min=1e-7)

    cos = torch.sum(unit(v0) * unit(v1), dim=-1, keepdim=True).clamp(-1, 1)
    colinear = (1 - cos.square()) <= 1e-16
    theta = torch.acos(torch.where(colinear, 0, cos))
    sin_theta = torch.sin(theta)
    result = (torch.sin((1 - t) * theta) * v0 + torch.sin(t * theta) * v1) / sin_theta
    result = torch.where(colinear, (1 - t) * v0 + t * v1, result)
    if row_wise and not flatten:
        result = result.transpose(0, -1)
    return result.reshape(out_shape)


def _nuslerp(inputs: Inputs, shared: dict[str, Any], per: dict[str, list[Any]]) -> torch.Tensor:
    w0, w1 = per["weight"]
    total = w0 + w1
    t = 0.5 if abs(total) < 1e-6 else w1 / total
    v0, v1 = inputs.models
    kw = {"row_wise": shared["nuslerp_row_wise"], "flatten": shared["nuslerp_flatten"]}
    if inputs.base is not None:
        return inputs.base + nuslerp(t, v0 - inputs.base, v1 - inputs.base, **kw)
    return nuslerp(t, v0, v1, **kw)


register(
    Method(
        name="slerp",
        params=(Param("t", float),),
        kernel=_slerp,
        min_models=1,
        max_models=1,
    )
)
register(
    Method(
        name="nuslerp",
        params=(
            Param("weight", float, per_model=True),
            Param("nuslerp_row_wise", bool, False),
            Param("nuslerp_flatten", bool, True),
        ),
        kernel=_nuslerp,
        base=Base.OPTIONAL,
        min_models=2,
        max_models=2,
    )
)

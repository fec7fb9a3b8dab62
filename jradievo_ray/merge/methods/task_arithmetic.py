"""mergekit's generalized task arithmetic family: task_arithmetic, ties, dare_*,
breadcrumbs*, della*. Sparsify each task vector, weight, optionally elect signs, sum,
optionally normalise, scale by lambda, add to the base."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from jradievo_ray.merge import fused, ops
from jradievo_ray.merge.methods.registry import Inputs, Method, Param, register


def merge_deltas(
    base: torch.Tensor,
    deltas: torch.Tensor,
    weights: list[float],
    *,
    consensus: bool,
    normalize: bool,
    lam: float,
) -> torch.Tensor:
    """base + lambda * combine(weights * deltas) for deltas [k, *base.shape]."""
    out = torch.empty_like(base)
    total = sum(weights)
    floats, ints = fused.parameters(
        weights,
        [0.0] * len(weights),
        scale=lam,
        divisor=total if normalize and not consensus and abs(total) >= 1e-8 else 1.0,
        dtype=base.dtype,
        device=base.device,
    )
    variant = fused.variant(
        dare=False, trim=False, consensus=consensus, normalize=normalize, weights=weights
    )
    flat = deltas.reshape(len(weights), -1)
    fused.kernels().gta(flat, base.reshape(-1), out.view(-1), floats, ints, variant)
    return out


def _kernel(
    sparsify: str | None,
    consensus: bool,
    inputs: Inputs,
    shared: dict[str, Any],
    per: dict[str, list[Any]],
) -> torch.Tensor:
    base = inputs.base
    deltas = base.new_empty((len(inputs.models), *base.shape))
    for i, model in enumerate(inputs.models):
        delta = model - base
        density = per["density"][i]
        rescale = shared["rescale"]
        if sparsify == "magnitude":
            delta = ops.magnitude(delta, density, rescale)
        elif sparsify == "random":
            delta = ops.bernoulli(delta, density, inputs.generator, rescale)
        elif sparsify == "magnitude_outliers":
            delta = ops.magnitude_outliers(delta, density, per["gamma"][i], rescale)
        elif sparsify == "della_magprune":
            delta = ops.della_magprune(delta, density, per["epsilon"][i], inputs.generator, rescale)
        deltas[i] = delta
    return merge_deltas(
        base,
        deltas,
        per["weight"],
        consensus=consensus,
        normalize=shared["normalize"],
        lam=shared["lambda"],
    )


def _family(
    name: str, sparsify: str | None, consensus: bool, normalize: bool, rescale: bool
) -> Method:
    params = [
        Param("int8_mask", bool, False),
        Param("normalize", bool, normalize),
        Param("rescale", bool, rescale),
        Param("lambda", float, 1.0),
        Param("weight", float, per_model=True),
        Param("density", float, 1.0, per_model=True),
    ]
    if sparsify == "magnitude_outliers":
        params.append(Param("gamma", float, 0.01, per_model=True))
    if sparsify == "della_magprune":
        params.append(Param("epsilon", float, 0.15, per_model=True))
    return register(
        Method(
            name=name,
            params=tuple(params),
            kernel=partial(_kernel, sparsify, consensus),
            random=sparsify in ("random", "della_magprune"),
        )
    )


_family("task_arithmetic", None, consensus=False, normalize=False, rescale=False)
_family("ties", "magnitude", consensus=True, normalize=True, rescale=False)
_family("dare_ties", "random", consensus=True, normalize=False, rescale=True)
_family("dare_linear", "random", consensus=False, normalize=False, rescale=True)
_family("breadcrumbs", "magnitude_outliers", consensus=False, normalize=False, rescale=False)
_family("breadcrumbs_ties", "magnitude_outliers", consensus=True, normalize=False, rescale=False)
_family("della", "della_magprune", consensus=True, normalize=True, rescale=True)
_family("della_linear", "della_magprune", consensus=False, normalize=False, rescale=True)

"""mergekit parameter settings: scalars, per-layer gradient lists and name filters.

A setting is a scalar, a list of scalars (a gradient, interpolated across layers), or a
list of `{filter, value}` conditions (the first whose filter is a substring of the
tensor name wins). A layer's position is t = i / (L - 1) (t = 1 for a single layer);
tensors outside the layers (embeddings, final norm, lm_head) use t = 0, as mergekit does.
"""

from __future__ import annotations

import re
from typing import Any

from jradievo_ray.errors import MergeError

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def layer_index(lm_name: str) -> int | None:
    m = _LAYER.search(lm_name)
    return int(m.group(1)) if m else None


def layer_t(lm_name: str, num_layers: int) -> float:
    i = layer_index(lm_name)
    if i is None:
        return 0.0
    return i / (num_layers - 1) if num_layers > 1 else 1.0


def _scalar(value: Any, kind: type, where: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    elif isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise MergeError(f"{where}: expected {kind.__name__}, got {value!r}")


def evaluate(setting: Any, tensor_name: str, t: float, kind: type, where: str) -> Any:
    """Value of one setting for one tensor; None when no condition matches."""
    if isinstance(setting, dict):
        setting = [setting]
    if not isinstance(setting, list):
        return _scalar(setting, kind, where)
    if not setting:
        return None
    if all(not isinstance(e, dict) for e in setting):
        values = [_scalar(e, kind, where) for e in setting]
        if kind is bool:
            return values[int(t * (len(values) - 1))]
        scaled = t * (len(values) - 1)
        i0 = int(scaled)
        i1 = min(len(values) - 1, i0 + 1)
        frac = scaled - i0
        return (1 - frac) * values[i0] + frac * values[i1]
    for cond in setting:
        if not isinstance(cond, dict) or "value" not in cond or set(cond) - {"value", "filter"}:
            raise MergeError(f"{where}: a condition must be {{filter, value}}, got {cond!r}")
        filt = cond.get("filter")
        if filt is None or filt == "*" or (tensor_name and filt in tensor_name):
            return evaluate(cond["value"], tensor_name, t, kind, where)
    return None


def resolve(
    name: str,
    kind: type,
    default: Any,
    scopes: list[tuple[str, dict | None]],
    tensor: str,
    t: float,
) -> Any:
    """First value found in `scopes` (highest precedence first), else the default.
    A default of `...` means required."""
    for where, scope in scopes:
        if scope and name in scope:
            value = evaluate(scope[name], tensor, t, kind, f"{where}.{name}")
            if value is not None:
                return value
    if default is ...:
        raise MergeError(f"missing required parameter {name!r} for {scopes[0][0]} ({tensor})")
    return default

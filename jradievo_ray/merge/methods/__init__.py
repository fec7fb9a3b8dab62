"""Merge methods by mergekit 0.1.5's names: the registry (registry.py) with every family
module's methods registered, which importing this package does."""

from jradievo_ray.merge.methods import (  # noqa: F401  (importing a family registers it)
    linear,
    model_stock,
    slerp,
    task_arithmetic,
)
from jradievo_ray.merge.methods.registry import METHODS, Base, Inputs, Method, Param, get_method

__all__ = ["METHODS", "Base", "Inputs", "Method", "Param", "get_method"]

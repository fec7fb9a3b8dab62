"""The tiny demo zoo: a base Llama LM, a LLaVA VLM, a Japanese LM and a medical LM,
trained here from scratch on synthetic chest X-rays."""

from jradievo_ray.zoo.build import build_zoo, ensure_zoo, resolve_zoo_path, zoo_overrides

__all__ = [
    "build_zoo",
    "ensure_zoo",
    "resolve_zoo_path",
    "zoo_overrides",
]

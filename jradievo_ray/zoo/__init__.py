"""The tiny demo zoo: a base Llama LM, a LLaVA VLM, a Japanese LM and a medical LM,
trained here from scratch on synthetic chest X-rays, plus random-weight builders for tests."""

from jradievo_ray.zoo.build import build_zoo, ensure_zoo, resolve_zoo_path, zoo_overrides
from jradievo_ray.zoo.models import build_random_llama, build_random_llava

__all__ = [
    "build_random_llama",
    "build_random_llava",
    "build_zoo",
    "ensure_zoo",
    "resolve_zoo_path",
    "zoo_overrides",
]

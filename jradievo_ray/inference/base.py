"""The Generator protocol every inference backend implements.

A generator is built once per actor from the VLM folder; per genome the merged
language-model tensors are loaded into it (in place, no rebuild) and it writes
one report per request, greedily, with the prompt rendered by the VLM's own
processor/chat template.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch


@dataclass(frozen=True)
class GenerationRequest:
    id: str
    image: Path
    prompt: str


class Generator(Protocol):
    def weight_targets(self) -> dict[str, torch.Tensor] | None:
        """Live language-model tensors (VLM checkpoint names) the merge may write into
        directly, or None when the backend keeps its own copy (then use load_weights)."""
        ...

    def load_weights(self, named: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Swap in new language-model weights (VLM checkpoint names); resets stale caches."""
        ...

    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        """One greedy report per request, in order."""
        ...

    def close(self) -> None:
        """Free the model and its engine now; the generator is unusable afterwards."""
        ...

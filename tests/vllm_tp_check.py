"""A tensor-parallel (TP = 2) vLLM engine on vLLM's CPU build, swapped the way an actor
swaps it; run in its own process by tests/test_vllm_tp.py (the engine's workers are
processes of their own, spawned from this one's `__main__`).

    python tests/vllm_tp_check.py A B STUDIES.jsonl OUT.json

Writes the greedy texts of: A; A's buffers refilled with B's language weights and written
in place; the same buffers refilled with A's; B through vLLM's own loader; the buffers
refilled with A's once more; and how many times the buffers were attached to the workers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from test_vllm_backend import _language as language

from jradievo_ray.data.manifest import load_manifest
from jradievo_ray.inference.base import GenerationRequest
from jradievo_ray.inference.vllm_generator import VllmGenerator
from jradievo_ray.zoo.corpus import PROMPT_JA


def main() -> int:
    a, b, studies, out = (Path(p) for p in sys.argv[1:5])
    reqs = [
        GenerationRequest(id=s.id, image=s.image, prompt=PROMPT_JA) for s in load_manifest(studies)
    ]
    engine = VllmGenerator(
        a, max_new_tokens=12, batch_size=8, tensor_parallel_size=2, weight_swap="in_place"
    )
    result = {"a": engine.generate(reqs)}
    buffers = {name: t.clone() for name, t in language(a).items()}  # an actor's buffers
    for label, source in (("b_in_place", b), ("a_in_place", a)):
        for name, tensor in language(source).items():
            buffers[name].copy_(tensor)  # refilled in place, as the merge does
        engine.load_weights(buffers.items())
        result[label] = engine.generate(reqs)
    result["attachments"] = engine.attachments
    engine.reload_weights(language(b).items())
    result["b_reload"] = engine.generate(reqs)
    for name, tensor in language(a).items():  # the attached buffers again, after vLLM's loader
        buffers[name].copy_(tensor)
    engine.load_weights(buffers.items())
    result["a_after_reload"] = engine.generate(reqs)
    result["attachments_at_end"] = engine.attachments
    engine.close()
    out.write_text(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

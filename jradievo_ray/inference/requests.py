"""Generation inputs for `jradievo generate`: JSONL lines `{"id", "image", "prompt"?}`.

`image` is resolved and checked as images.py says; a line without `prompt` gets the
default. Errors name the file and line.
"""

from __future__ import annotations

from pathlib import Path

from jradievo_ray.data.images import check_readable, resolve_image
from jradievo_ray.data.jsonl import read_jsonl, require_str, unique_id
from jradievo_ray.errors import UserError
from jradievo_ray.inference.base import GenerationRequest


def load_requests(path: str | Path, default_prompt: str) -> list[GenerationRequest]:
    path = Path(path)
    requests: list[GenerationRequest] = []
    seen: set[str] = set()
    located: list[tuple[str, Path]] = []  # (file:line, image) for check_readable
    for where, row in read_jsonl(path):
        ident = unique_id(row, where, seen)
        image = resolve_image(require_str(row, "image", where), path.parent, where)
        prompt = row.get("prompt", default_prompt)
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserError(f"{where}: 'prompt' must be a non-empty string")
        requests.append(GenerationRequest(id=ident, image=image, prompt=prompt))
        located.append((where, image))
    if not requests:
        raise UserError(f"{path}: no requests")
    check_readable(located)
    return requests

"""Generation inputs for `jradievo generate`: JSONL lines `{"id", "image", "prompt"?}`.

`image` is relative to the file's folder unless absolute; a line without `prompt` gets the
default. Errors name the file and line.
"""

from __future__ import annotations

import json
from pathlib import Path

from jradievo_ray.errors import UserError
from jradievo_ray.inference.base import GenerationRequest


def load_requests(path: str | Path, default_prompt: str) -> list[GenerationRequest]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file does not exist")
    requests: list[GenerationRequest] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{where}: invalid JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise UserError(f"{where}: expected a JSON object")
            for key in ("id", "image"):
                if not isinstance(row.get(key), str) or not row[key]:
                    raise UserError(f"{where}: '{key}' must be a non-empty string")
            prompt = row.get("prompt", default_prompt)
            if not isinstance(prompt, str) or not prompt.strip():
                raise UserError(f"{where}: 'prompt' must be a non-empty string")
            if row["id"] in seen:
                raise UserError(f"{where}: duplicate id {row['id']!r}")
            seen.add(row["id"])
            image = Path(row["image"])
            if not image.is_absolute():
                image = path.parent / image
            if not image.is_file():
                raise UserError(f"{where}: image not found: {image}")
            requests.append(GenerationRequest(id=row["id"], image=image, prompt=prompt))
    if not requests:
        raise UserError(f"{path}: no requests")
    return requests

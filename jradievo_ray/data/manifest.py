"""JSONL study manifests: `{"id", "image", "findings": [...], "report_en", "report_ja"}`.

`image`: see images.py (resolved, checked readable). Errors name file and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jradievo_ray.data.images import check_readable, resolve_image
from jradievo_ray.data.jsonl import read_jsonl, require_str, unique_id
from jradievo_ray.errors import UserError


@dataclass(frozen=True)
class Study:
    id: str
    image: Path
    findings: list[str] = field(default_factory=list)
    report_en: str = ""
    report_ja: str = ""


def load_manifest(
    path: str | Path, limit: int | None = None, check_images: bool = True
) -> list[Study]:
    path = Path(path)
    studies: list[Study] = []
    seen: set[str] = set()
    located: list[tuple[str, Path]] = []  # (file:line, image) for check_readable
    for where, row in read_jsonl(path):
        ident = unique_id(row, where, seen)
        raw_image = require_str(row, "image", where)
        findings = row.get("findings", [])
        if not isinstance(findings, list) or not all(isinstance(f, str) for f in findings):
            raise UserError(f"{where}: 'findings' must be a list of strings")
        for key in ("report_en", "report_ja"):
            if not isinstance(row.get(key, ""), str):
                raise UserError(f"{where}: '{key}' must be a string")
        image = resolve_image(raw_image, path.parent, where, check_images)
        studies.append(
            Study(
                id=ident,
                image=image,
                findings=findings,
                report_en=row.get("report_en", ""),
                report_ja=row.get("report_ja", ""),
            )
        )
        located.append((where, image))
        if limit is not None and len(studies) >= limit:
            break
    if not studies:
        raise UserError(f"{path}: no studies")
    if check_images:
        check_readable(located)
    return studies

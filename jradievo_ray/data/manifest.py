"""JSONL study manifests: `{"id", "image", "findings": [...], "report_en", "report_ja"}`.

`image` is relative to the manifest's folder unless absolute. Errors name file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

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
    if not path.is_file():
        raise UserError(f"{path}: file does not exist")
    studies: list[Study] = []
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
            if row["id"] in seen:
                raise UserError(f"{where}: duplicate id {row['id']!r}")
            seen.add(row["id"])
            findings = row.get("findings", [])
            if not isinstance(findings, list) or not all(isinstance(f, str) for f in findings):
                raise UserError(f"{where}: 'findings' must be a list of strings")
            for key in ("report_en", "report_ja"):
                if not isinstance(row.get(key, ""), str):
                    raise UserError(f"{where}: '{key}' must be a string")
            image = Path(row["image"])
            if not image.is_absolute():
                image = path.parent / image
            if check_images and not image.is_file():
                raise UserError(f"{where}: image not found: {image}")
            studies.append(
                Study(
                    id=row["id"],
                    image=image,
                    findings=findings,
                    report_en=row.get("report_en", ""),
                    report_ja=row.get("report_ja", ""),
                )
            )
            if limit is not None and len(studies) >= limit:
                break
    if not studies:
        raise UserError(f"{path}: no studies")
    return studies

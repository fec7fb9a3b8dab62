"""JSONL input files, read one way everywhere: errors name the file and the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jradievo_ray.errors import UserError


def read_jsonl(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`file:line`, object) for every non-blank line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: invalid JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected a JSON object")
        yield where, row


def require_str(row: dict[str, Any], key: str, where: str) -> str:
    """row[key] as a non-empty string, else a UserError naming the line."""
    value = row.get(key)
    if not isinstance(value, str) or not value:
        raise UserError(f"{where}: '{key}' must be a non-empty string")
    return value


def unique_id(row: dict[str, Any], where: str, seen: set[str]) -> str:
    """The line's 'id', checked non-empty and not seen before in the file."""
    ident = require_str(row, "id", where)
    if ident in seen:
        raise UserError(f"{where}: duplicate id {ident!r}")
    seen.add(ident)
    return ident

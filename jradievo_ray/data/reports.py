"""Report files: JSONL lines `{"id": str, "text": str}` (predictions, references, labeler
input); errors name file and line."""

from __future__ import annotations

from pathlib import Path

from jradievo_ray.data.jsonl import read_jsonl, unique_id
from jradievo_ray.errors import UserError

_SHOWN = 5  # ids listed in an error message


def read_reports(path: str | Path) -> dict[str, str]:
    """{id: text} in file order; blank lines are skipped."""
    reports: dict[str, str] = {}
    seen: set[str] = set()
    for where, row in read_jsonl(path):
        ident = unique_id(row, where, seen)
        if not isinstance(row.get("text"), str):
            raise UserError(f"{where}: 'text' must be a string")
        reports[ident] = row["text"]
    return reports


def _ids(ids: list[str]) -> str:
    more = f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
    return ", ".join(repr(i) for i in ids[:_SHOWN]) + more


def paired_texts(
    predictions: dict[str, str], references: dict[str, str], pred_name: str, ref_name: str
) -> tuple[list[str], list[str], list[str]]:
    """(ids, prediction texts, reference texts) in reference order; every id on both sides."""
    missing = [i for i in references if i not in predictions]
    if missing:
        raise UserError(f"{pred_name}: no prediction for id(s) {_ids(missing)} of {ref_name}")
    extra = [i for i in predictions if i not in references]
    if extra:
        raise UserError(f"{ref_name}: no reference for id(s) {_ids(extra)} of {pred_name}")
    if not references:
        raise UserError(f"{ref_name}: no reports")
    ids = list(references)
    return ids, [predictions[i] for i in ids], [references[i] for i in ids]

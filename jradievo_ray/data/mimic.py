"""MIMIC-CXR-JPG studies with Japanese findings, selected as JRadiEvo does.

Layout: `ROOT/files/pNN/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg`, the metadata CSV
(`mimic-cxr-2.0.0-metadata.csv[.gz]`: dicom_id, subject_id, study_id, ViewPosition) and a
CSV of study_id -> Japanese findings. Selection (each an option): drop studies whose report
says No Finding (by the Japanese labeler), keep one frontal image per study (PA, else AP;
lowest dicom_id first), then the first N studies ordered by (subject_id, study_id).
Errors name the file and line, or the missing image.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from jradievo_ray.data.manifest import Study
from jradievo_ray.errors import UserError

METADATA_NAMES = ("mimic-cxr-2.0.0-metadata.csv", "mimic-cxr-2.0.0-metadata.csv.gz")
FRONTAL_VIEWS = ("PA", "AP")  # in order of preference


@dataclass(frozen=True)
class Image:
    dicom_id: str
    subject_id: int
    view: str
    where: str  # "file:line" of its metadata row


@dataclass
class Selection:
    """What the loader kept and why it dropped the rest (counts of studies)."""

    studies: list[Study] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str]]]:
    """(file:line, row) for each CSV row; checks the header."""
    if not path.is_file():
        raise UserError(f"{path}: file does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"{path}:1: missing column(s) {', '.join(missing)}")
            start = 2
            for row in reader:
                yield f"{path}:{start}", row
                start = reader.line_num + 1
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: cannot read CSV: {exc}") from None


def _number(value: str | None, prefix: str, where: str, column: str) -> int:
    text = (value or "").strip().removeprefix(prefix)
    if not text.isdigit():
        raise UserError(f"{where}: {column} {value!r} is not a number")
    return int(text)


def read_findings(path: str | Path, text_column: str = "findings_ja") -> dict[int, tuple[str, str]]:
    """{study_id: (Japanese findings, file:line)}; ids may be `50414267` or `s50414267`."""
    findings: dict[int, tuple[str, str]] = {}
    for where, row in _rows(Path(path), ("study_id", text_column)):
        study = _number(row["study_id"], "s", where, "study_id")
        if study in findings:
            raise UserError(f"{where}: duplicate study_id {row['study_id']}")
        findings[study] = ((row[text_column] or "").strip(), where)
    return findings


def read_metadata(path: str | Path) -> dict[int, list[Image]]:
    """{study_id: its images} from the MIMIC-CXR-JPG metadata CSV."""
    images: dict[int, list[Image]] = {}
    for where, row in _rows(Path(path), ("dicom_id", "subject_id", "study_id", "ViewPosition")):
        study = _number(row["study_id"], "s", where, "study_id")
        subject = _number(row["subject_id"], "p", where, "subject_id")
        dicom = (row["dicom_id"] or "").strip()
        if not dicom:
            raise UserError(f"{where}: empty dicom_id")
        view = (row["ViewPosition"] or "").strip().upper()
        images.setdefault(study, []).append(Image(dicom, subject, view, where))
    return images


def image_path(root: Path, subject: int, study: int, dicom_id: str) -> Path:
    sid = f"{subject:08d}"
    return root / "files" / f"p{sid[:2]}" / f"p{sid}" / f"s{study:08d}" / f"{dicom_id}.jpg"


def _scan_tree(root: Path) -> dict[int, tuple[int, list[Path]]]:
    """{study_id: (subject_id, its jpgs)} by walking ROOT/files (when there is no metadata)."""
    files = root / "files"
    if not files.is_dir():
        raise UserError(f"{files}: folder does not exist")
    found: dict[int, tuple[int, list[Path]]] = {}
    for group in sorted(os.scandir(files), key=lambda e: e.name):
        if not (group.is_dir() and group.name.startswith("p")):
            continue
        for subject in sorted(os.scandir(group.path), key=lambda e: e.name):
            if not (subject.is_dir() and subject.name[1:].isdigit()):
                continue
            for study in sorted(os.scandir(subject.path), key=lambda e: e.name):
                if study.is_dir() and study.name.startswith("s") and study.name[1:].isdigit():
                    jpgs = sorted(Path(study.path).glob("*.jpg"))
                    found[int(study.name[1:])] = (int(subject.name[1:]), jpgs)
    return found


def _pick_frontal(images: list[Image]) -> Image | None:
    for view in FRONTAL_VIEWS:
        candidates = sorted((im for im in images if im.view == view), key=lambda im: im.dicom_id)
        if candidates:
            return candidates[0]
    return None


def load_mimic(
    root: str | Path,
    findings_csv: str | Path,
    metadata_csv: str | Path | None = None,
    *,
    text_column: str = "findings_ja",
    no_finding: Callable[[str], bool] | None = None,
    frontal_only: bool = True,
    limit: int | None = None,
) -> Selection:
    """Select studies from a MIMIC-CXR-JPG tree; `metadata_csv` defaults to the one in ROOT.
    `no_finding`: drop the studies whose report it says has no finding (JRadiEvo's rule;
    `jradievo mimic` passes the labeler's `says_no_finding`)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: folder does not exist")
    if metadata_csv is None:
        metadata_csv = next((root / n for n in METADATA_NAMES if (root / n).is_file()), None)
    if metadata_csv is None and frontal_only:
        raise UserError(
            f"{root}: no {METADATA_NAMES[0]} (needed for view positions; give --metadata, "
            "or keep every view)"
        )
    findings = read_findings(findings_csv, text_column)
    metadata = read_metadata(metadata_csv) if metadata_csv is not None else None
    tree = _scan_tree(root) if metadata is None else None
    where = {s: f"{w}: study s{s}" for s, (_, w) in findings.items()}

    def subject_of(study: int) -> int:
        if metadata is not None:
            if study not in metadata:
                raise UserError(f"{where[study]}: not in {metadata_csv}")
            return metadata[study][0].subject_id
        assert tree is not None
        if study not in tree:
            raise UserError(f"{where[study]}: no folder files/p*/p*/s{study:08d} under {root}")
        return tree[study][0]

    selection = Selection()
    for study in sorted(findings, key=lambda s: (subject_of(s), s)):
        text = findings[study][0]
        if not text:
            selection.drop("no findings text")
            continue
        if no_finding is not None and no_finding(text):
            selection.drop("no finding")
            continue
        subject = subject_of(study)
        if metadata is not None:
            chosen = (
                _pick_frontal(metadata[study])
                if frontal_only
                else min(metadata[study], key=lambda im: im.dicom_id)
            )
            if chosen is None:
                selection.drop("no frontal image")
                continue
            path = image_path(root, subject, study, chosen.dicom_id)
            if not path.is_file():
                raise UserError(f"{chosen.where}: image not found: {path}")
        else:
            assert tree is not None
            jpgs = tree[study][1]
            if not jpgs:
                folder = image_path(root, subject, study, "").parent
                raise UserError(f"{where[study]}: no .jpg image in {folder}")
            path = jpgs[0]
        selection.studies.append(Study(id=f"s{study}", image=path, report_ja=text))
        if limit is not None and len(selection.studies) >= limit:
            break
    if not selection.studies:
        raise UserError(f"{findings_csv}: no study left after selection ({selection.dropped})")
    return selection


def write_manifest(studies: list[Study], path: str | Path) -> Path:
    """Write studies as a JSONL manifest that `load_manifest` reads (images relative when
    they lie under the manifest's folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    with path.open("w", encoding="utf-8") as fh:
        for s in studies:
            image = s.image.resolve()
            rel = image.relative_to(base) if image.is_relative_to(base) else image
            row = {
                "id": s.id,
                "image": str(rel),
                "findings": s.findings,
                "report_en": s.report_en,
                "report_ja": s.report_ja,
            }
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path

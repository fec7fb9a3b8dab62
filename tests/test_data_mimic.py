"""MIMIC-CXR-JPG loader on a tiny fake tree in the MIMIC layout."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from jradievo_ray.cli import main
from jradievo_ray.data.manifest import load_manifest
from jradievo_ray.data.mimic import image_path, load_mimic
from jradievo_ray.errors import UserError
from jradievo_ray.scoring.labeler import says_no_finding

# (subject, study, [(dicom_id, view)], Japanese findings)
STUDIES = [
    (10000032, 50000001, [("d1", "PA"), ("d2", "LATERAL")], "右胸水を認める。"),
    (10000032, 50000002, [("a4", "AP"), ("b3", "PA")], "心拡大を認める。"),
    (10000040, 50000003, [("d5", "LATERAL")], "左気胸あり。"),
    (10000050, 50000004, [("d6", "PA")], "異常なし。"),
    (11000001, 50000005, [("d7", "PA")], ""),
    (10000033, 49999999, [("d8", "AP")], "気胸を認める。"),
]


def make_tree(root: Path) -> tuple[Path, Path]:
    meta = root / "mimic-cxr-2.0.0-metadata.csv"
    findings = root / "findings_ja.csv"
    with (
        meta.open("w", newline="", encoding="utf-8") as fm,
        findings.open("w", newline="", encoding="utf-8") as ff,
    ):
        wm, wf = csv.writer(fm), csv.writer(ff)
        wm.writerow(["dicom_id", "subject_id", "study_id", "ViewPosition", "Rows"])
        wf.writerow(["study_id", "findings_ja"])
        for subject, study, images, text in STUDIES:
            wf.writerow([f"s{study}", text])
            for dicom, view in images:
                wm.writerow([dicom, subject, study, view, 8])
                path = image_path(root, subject, study, dicom)
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("L", (8, 8)).save(path)
    return meta, findings


def test_selection(tmp_path: Path) -> None:
    _, findings = make_tree(tmp_path)
    sel = load_mimic(tmp_path, findings, no_finding=says_no_finding)
    assert [s.id for s in sel.studies] == ["s50000001", "s50000002", "s49999999"]
    assert [s.image.stem for s in sel.studies] == ["d1", "b3", "d8"]  # PA preferred over AP
    assert sel.studies[0].image == tmp_path / "files/p10/p10000032/s50000001/d1.jpg"
    assert sel.studies[0].report_ja == "右胸水を認める。"
    assert sel.dropped == {"no frontal image": 1, "no finding": 1, "no findings text": 1}
    assert [
        s.id for s in load_mimic(tmp_path, findings, no_finding=says_no_finding, limit=2).studies
    ] == [
        "s50000001",
        "s50000002",
    ]
    kept = load_mimic(tmp_path, findings, frontal_only=False)
    assert {s.id for s in kept.studies} == {
        "s50000001",
        "s50000002",
        "s50000003",
        "s50000004",
        "s49999999",
    }


def test_tree_walk_without_metadata(tmp_path: Path) -> None:
    meta, findings = make_tree(tmp_path)
    meta.unlink()
    with pytest.raises(UserError, match="metadata"):
        load_mimic(tmp_path, findings, no_finding=says_no_finding)
    sel = load_mimic(tmp_path, findings, no_finding=says_no_finding, frontal_only=False)
    assert [s.image.stem for s in sel.studies][:2] == ["d1", "a4"]  # first jpg by name


def test_missing_image_is_named(tmp_path: Path) -> None:
    meta, findings = make_tree(tmp_path)
    missing = image_path(tmp_path, 10000032, 50000002, "b3")
    missing.unlink()
    with pytest.raises(UserError) as err:
        load_mimic(tmp_path, findings, no_finding=says_no_finding)
    assert str(err.value) == f"{meta}:5: image not found: {missing}"  # row of b3


def test_csv_errors_name_file_and_line(tmp_path: Path) -> None:
    _, findings = make_tree(tmp_path)
    lines = findings.read_text(encoding="utf-8").splitlines()
    findings.write_text("\n".join([*lines[:2], "sabc,胸水あり", *lines[2:]]) + "\n", "utf-8")
    with pytest.raises(UserError, match=rf"{findings}:3: study_id 'sabc' is not a number"):
        load_mimic(tmp_path, findings, no_finding=says_no_finding)
    findings.write_text("study,findings_ja\n1,胸水\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"{findings}:1: missing column\(s\) study_id"):
        load_mimic(tmp_path, findings, no_finding=says_no_finding)
    findings.write_text("study_id,findings_ja\n1,胸水\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"{findings}:2: study s1: not in .*metadata"):
        load_mimic(tmp_path, findings, no_finding=says_no_finding)


def test_cli_writes_a_manifest(tmp_path: Path, capsys) -> None:
    _, findings = make_tree(tmp_path)
    out = tmp_path / "manifest.jsonl"
    argv = ["mimic", "--root", str(tmp_path), "--findings", str(findings), "--out", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "3 studies kept" in captured.err
    studies = load_manifest(out)  # images must exist
    assert [s.id for s in studies] == ["s50000001", "s50000002", "s49999999"]
    assert studies[1].image.resolve() == image_path(tmp_path, 10000032, 50000002, "b3").resolve()
    assert main([*argv[:-2], "--out", str(out), "--limit", "0"]) == 2

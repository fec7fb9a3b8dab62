"""`jradievo evaluate` end to end on a tiny random LLaVA and a synthetic manifest."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from zoo_builders import build_random_llava

from jradievo_ray.cli import main
from jradievo_ray.data.manifest import load_manifest
from jradievo_ray.data.synthetic import write_dataset
from jradievo_ray.inference.base import GenerationRequest
from jradievo_ray.inference.transformers_backend import TransformersGenerator
from jradievo_ray.scoring.findings import per_label_f1
from jradievo_ray.scoring.labeler import LABELS
from jradievo_ray.scoring.metrics import METRICS, report_stats
from jradievo_ray.scoring.table import NAMES, full_scores, markdown_table
from jradievo_ray.zoo.corpus import PROMPT_JA

ROOT = Path(__file__).resolve().parents[1]
FILES = {"predictions.jsonl", "metrics.json", "table.md"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    vlm = build_random_llava(root / "vlm", seed=0)
    manifest = write_dataset(root / "data", seed=0, sizes={"heldout": 6})["heldout"]
    return vlm, manifest


def evaluate(vlm, data, out, *extra: str) -> list[str]:
    return ["evaluate", "--model", str(vlm), "--data", str(data), "--out", str(out), *extra]


def score_json(preds: Path, refs: Path, capsys, *extra: str) -> dict:
    """What `jradievo score` prints for the same predictions and references."""
    capsys.readouterr()
    argv = ["score", "--predictions", str(preds), "--references", str(refs), *extra]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "extra", [[], ["--limit", "4", "--uncertain-as-negative"]], ids=["all", "limit-uncertain"]
)
def test_writes_predictions_and_the_score_table(setup, tmp_path, capsys, extra):
    vlm, manifest = setup
    out = tmp_path / "nested" / "eval"
    scoring = ["--resamples", "300", "--seed", "7"]
    argv = evaluate(vlm, manifest, out, "--max-new-tokens", "8", "--batch-size", "4")
    assert main([*argv, *scoring, *extra]) == 0
    printed = capsys.readouterr()
    assert {p.name for p in out.iterdir()} == FILES
    assert not [p for p in out.parent.iterdir() if p != out]  # no temp folder left
    assert "generated 4/" in printed.err

    studies = load_manifest(manifest, limit=4 if extra else None)
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds] == [s.id for s in studies]
    requests = [GenerationRequest(s.id, s.image, PROMPT_JA) for s in studies]
    direct = TransformersGenerator(vlm, max_new_tokens=8, batch_size=len(studies))
    assert [p["text"] for p in preds] == direct.generate(requests)

    refs = tmp_path / "refs.jsonl"
    refs.write_text(
        "".join(
            json.dumps({"id": s.id, "text": s.report_ja}, ensure_ascii=False) + "\n"
            for s in studies
        ),
        encoding="utf-8",
    )
    uncertain = [f for f in extra if f == "--uncertain-as-negative"]
    expected = score_json(out / "predictions.jsonl", refs, capsys, *scoring, *uncertain)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert {k: metrics[k] for k in expected} == expected
    assert set(expected) == {"n", *METRICS, "ci95"} and metrics["n"] == len(studies)
    stats = report_stats(
        [p["text"] for p in preds],
        [s.report_ja for s in studies],
        uncertain_as_positive=not uncertain,
    )
    assert metrics["per_finding"] == per_label_f1(stats.finding_counts)
    assert metrics["backend"] == "transformers"
    assert metrics["model"] == str(vlm.resolve()) and metrics["data"] == str(manifest.resolve())
    assert metrics["settings"]["uncertain_as_positive"] is not bool(uncertain)
    assert metrics["timing"]["generate_s"] > 0

    table = (out / "table.md").read_text(encoding="utf-8")
    assert table == markdown_table(metrics) and table in printed.out
    for key, name in NAMES.items():
        lo, hi = metrics["ci95"][key]
        assert f"| {name} | {metrics[key]:.2f} | [{lo:.2f}, {hi:.2f}] |" in table
    for label in LABELS:
        assert f"| {label} |" in table


def test_table_of_nontrivial_scores():
    refs = ["右胸水を認める。心拡大なし。", "左気胸あり。", "異常なし。", "心拡大を認める。"]
    preds = ["右胸水あり。", "左気胸を認める。", "異常なし。", "No acute findings."]
    result = full_scores(preds, refs, resamples=200, seed=1)
    assert 0 < result["bleu1"] < 100 and result["japanese_ratio"] == 0.75
    table = markdown_table(result)
    assert f"| BLEU-1 | {result['bleu1']:.2f} |" in table
    assert "| Pleural Effusion | 100.00 | 1 | 1 |" in table
    assert "| Cardiomegaly | 0.00 | 1 | 0 |" in table
    assert "| Fracture | - | 0 | 0 |" in table


def test_rerun_replaces_its_own_output_but_not_a_foreign_folder(setup, tmp_path, capsys):
    vlm, manifest = setup
    out = tmp_path / "eval"
    fast = ["--max-new-tokens", "4", "--resamples", "50"]
    assert main([*evaluate(vlm, manifest, out), *fast, "--limit", "2"]) == 0
    assert main([*evaluate(vlm, manifest, out), *fast, "--limit", "3"]) == 0
    assert json.loads((out / "metrics.json").read_text())["n"] == 3
    assert {p.name for p in tmp_path.iterdir()} == {"eval"}
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main([*evaluate(vlm, manifest, out), *fast]) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "metrics.json").read_text())["n"] == 3


def _bad_manifest(tmp_path: Path, manifest: Path, case: str) -> tuple[Path, str]:
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    for r in rows:
        r["image"] = str(manifest.parent / r["image"])
    lines = [json.dumps(r, ensure_ascii=False) for r in rows[:3]]
    data = tmp_path / "bad.jsonl"
    if case == "json":
        lines[1] = "{not json"
        message = f"{data}:2: invalid JSON"
    elif case == "image":
        rows[2]["image"] = str(tmp_path / "gone.png")
        lines[2] = json.dumps(rows[2], ensure_ascii=False)
        message = f"{data}:3: image not found: {tmp_path / 'gone.png'}"
    else:
        rows[1]["report_ja"] = ""
        lines[1] = json.dumps(rows[1], ensure_ascii=False)
        message = f"{data}: study {rows[1]['id']!r} has no 'report_ja'"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data, message


@pytest.mark.parametrize("case", ["json", "image", "reference"])
def test_bad_manifest_exits_2_naming_file_and_line(setup, tmp_path, capsys, case):
    vlm, manifest = setup
    data, message = _bad_manifest(tmp_path, manifest, case)
    assert main(evaluate(vlm, data, tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_bad_model_folder_or_options_exit_2(setup, tmp_path, capsys):
    vlm, manifest = setup
    cases = [
        (tmp_path / "nowhere", [], "model folder does not exist"),
        (tmp_path, [], "not a model folder (no config.json)"),
        (vlm, ["--limit", "0"], "--limit: must be >= 1"),
        (vlm, ["--batch-size", "0"], "batch_size: must be >= 1"),
        (vlm, ["--tensor-parallel-size", "2"], "only the vllm backend"),
    ]
    for model, extra, message in cases:
        capsys.readouterr()
        assert main([*evaluate(model, manifest, tmp_path / "out"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, err
        assert not (tmp_path / "out").exists()


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_backend_without_vllm_is_one_error_line_from_the_real_cli(setup, tmp_path):
    vlm, manifest = setup
    argv = evaluate(vlm, manifest, tmp_path / "out", "--backend", "vllm")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "jradievo_ray.cli", *argv], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "vllm cannot be imported" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()

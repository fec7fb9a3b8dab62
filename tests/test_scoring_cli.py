"""`jradievo score`, `label` and `compare` end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jradievo_ray.cli import main
from jradievo_ray.scoring.metrics import METRICS, corpus_metrics, report_stats

REFS = {
    "s1": "右胸水を認める。心拡大なし。",
    "s2": "左気胸あり。",
    "s3": "異常なし。",
    "s4": "心拡大を認める。肺炎が疑われる。",
}
PREDS = {
    "s3": "異常なし。",
    "s1": "右胸水あり。",
    "s4": "心拡大なし。",
    "s2": "左気胸を認める。",
}


def write(path: Path, rows: dict[str, str]) -> str:
    path.write_text(
        "".join(
            json.dumps({"id": k, "text": v}, ensure_ascii=False) + "\n" for k, v in rows.items()
        ),
        encoding="utf-8",
    )
    return str(path)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_score_prints_every_metric_with_ci(tmp_path: Path, capsys) -> None:
    p, r = write(tmp_path / "p.jsonl", PREDS), write(tmp_path / "r.jsonl", REFS)
    code, out, _ = run(
        ["score", "--predictions", p, "--references", r, "--resamples", "300"], capsys
    )
    assert code == 0
    result = json.loads(out)
    assert list(result) == ["n", *METRICS, "ci95"]
    assert set(result["ci95"]) == set(METRICS)
    ids = list(REFS)
    expected = corpus_metrics(report_stats([PREDS[i] for i in ids], [REFS[i] for i in ids]))
    assert result["n"] == 4
    for k in METRICS:
        assert result[k] == pytest.approx(expected[k]), k


def test_score_missing_ids_exit_2(tmp_path: Path, capsys) -> None:
    preds = {k: v for k, v in PREDS.items() if k != "s2"} | {"extra": "胸水あり"}
    p, r = write(tmp_path / "p.jsonl", preds), write(tmp_path / "r.jsonl", REFS)
    code, out, err = run(["score", "--predictions", p, "--references", r], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "'s2'" in err and "p.jsonl" in err
    del preds["extra"]
    write(tmp_path / "p.jsonl", preds | {"s2": "x", "extra": "y"})
    code, _, err = run(["score", "--predictions", p, "--references", r], capsys)
    assert code == 2 and "'extra'" in err


def test_bad_json_line_is_named(tmp_path: Path, capsys) -> None:
    p = tmp_path / "p.jsonl"
    p.write_text('{"id": "s1", "text": "胸水"}\n{"id": "s2", "text": \n', encoding="utf-8")
    r = write(tmp_path / "r.jsonl", REFS)
    code, _, err = run(["score", "--predictions", str(p), "--references", r], capsys)
    assert code == 2 and f"{p}:2: invalid JSON" in err
    p.write_text('{"id": "s1", "text": 3}\n', encoding="utf-8")
    code, _, err = run(["score", "--predictions", str(p), "--references", r], capsys)
    assert code == 2 and f"{p}:1: 'text' must be a string" in err


def test_label_command(tmp_path: Path, capsys) -> None:
    src = write(tmp_path / "in.jsonl", REFS)
    code, out, _ = run(["label", src], capsys)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == list(REFS)
    assert rows[0]["labels"] == {"Cardiomegaly": 0, "Pleural Effusion": 1}
    assert rows[2]["labels"] == {"No Finding": 1}
    assert rows[3]["labels"] == {"Cardiomegaly": 1, "Pneumonia": -1}


def test_compare_command(tmp_path: Path, capsys) -> None:
    r = write(tmp_path / "r.jsonl", REFS)
    a = write(tmp_path / "a.jsonl", PREDS)
    b = write(tmp_path / "b.jsonl", REFS)
    code, out, _ = run(["compare", "--references", r, a, b, "--resamples", "300"], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["n"] == 4 and set(result["metrics"]) == set(METRICS)
    bleu = result["metrics"]["bleu4"]
    assert set(bleu) == {"a", "b", "diff", "ci95", "p_value"}
    assert bleu["b"] == pytest.approx(100.0) and bleu["diff"] > 0

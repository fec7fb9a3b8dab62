"""The evaluation journal on its own: lines as they arrive, a torn last line dropped."""

from __future__ import annotations

import json

import pytest

from jradievo_ray.errors import UserError
from jradievo_ray.search import journal
from jradievo_ray.search.evaluation import STAGES, Evaluation, Failure
from jradievo_ray.search.journal import Journal, Placement
from jradievo_ray.search.loop import cache_from

SECONDS = dict.fromkeys(STAGES, 0.5)


def test_each_entry_is_on_disk_when_append_returns(tmp_path):
    path = tmp_path / "evaluations.jsonl"
    log = Journal(path)
    ok = Evaluation(fitness=40.0, metrics={"fitness": 40.0}, seconds=SECONDS)
    log.append(journal.entry([0.1, 0.2], ok, Placement(1, "node-a", 1), penalty=0.0))
    assert json.loads(path.read_text()) == {
        "genome": [0.1, 0.2],
        "fitness": 40.0,
        "metrics": {"fitness": 40.0},
        "error": None,
        "actor": 1,
        "node": "node-a",
        "attempt": 1,
        "seconds": SECONDS,
    }
    bad = Failure("ValueError: merge blew up")
    log.append(journal.entry([0.3, 0.4], bad, Placement(0, None, 3), penalty=0.0))
    log.close()
    rows = journal.read(path)
    assert [r["error"] for r in rows] == [None, "ValueError: merge blew up"]
    assert rows[1]["fitness"] == 0.0 and rows[1]["metrics"] is None and rows[1]["attempt"] == 3
    assert list(cache_from(rows)) == [(0.1, 0.2), (0.3, 0.4)]


def test_a_line_torn_by_a_kill_is_dropped_and_the_next_starts_clean(tmp_path):
    path = tmp_path / "evaluations.jsonl"
    ok = Evaluation(fitness=1.0, metrics={}, seconds=SECONDS)
    line = json.dumps(journal.entry([0.5], ok, Placement(0, "n", 1), 0.0))
    path.write_text(line + "\n" + line[:20])  # killed while writing the second line
    assert len(journal.read(path)) == 1
    log = Journal(path)
    log.append(journal.entry([0.7], ok, Placement(0, "n", 1), 0.0))
    log.close()
    assert [r["genome"] for r in journal.read(path)] == [[0.5], [0.7]]


def test_a_damaged_line_in_the_middle_is_named(tmp_path):
    path = tmp_path / "evaluations.jsonl"
    path.write_text('{"genome": [1]}\nnot json\n')
    with pytest.raises(UserError, match=r"evaluations.jsonl:1: a journal line needs genome"):
        journal.read(path)
    path.write_text("not json\n")
    with pytest.raises(UserError, match=r"evaluations.jsonl:1: not a journal line"):
        journal.read(path)
    assert journal.read(tmp_path / "none.jsonl") == []

"""Local writes that a crash cannot leave half done: one file, or a whole folder."""

from __future__ import annotations

import pytest

from jradievo_ray.errors import UserError
from jradievo_ray.storage import write_atomic, write_folder_atomic


def test_write_atomic_replaces_a_file_and_leaves_no_temporary(tmp_path):
    path = write_atomic(tmp_path / "sub" / "a.json", "one")
    write_atomic(path, b"two")
    assert path.read_text() == "two"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def _files(name: str, text: str):
    def fill(folder):
        (folder / name).write_text(text)

    return fill


def test_a_folder_appears_whole(tmp_path):
    out = write_folder_atomic(tmp_path / "out", _files("x.txt", "1"))
    assert (out / "x.txt").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_fill_leaves_the_old_folder_and_nothing_else(tmp_path):
    out = write_folder_atomic(tmp_path / "out", _files("x.txt", "old"))

    def broken(folder):
        (folder / "half.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_folder_atomic(out, broken, replace=True)
    assert [p.name for p in out.iterdir()] == ["x.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_replace_swaps_the_whole_folder(tmp_path):
    out = write_folder_atomic(tmp_path / "out", _files("old.txt", "0"))
    write_folder_atomic(out, _files("new.txt", "1"), replace=True)
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_killed_attempts_leftovers_are_cleared(tmp_path):
    stale = tmp_path / ".out.partial"
    stale.mkdir()
    (stale / "half.txt").write_text("half")
    out = write_folder_atomic(tmp_path / "out", _files("x.txt", "1"))
    assert [p.name for p in out.iterdir()] == ["x.txt"]
    assert not stale.exists()


def test_a_full_folder_is_not_overwritten_unless_asked(tmp_path):
    out = write_folder_atomic(tmp_path / "out", _files("x.txt", "1"))
    with pytest.raises(UserError, match="exists and is not empty"):
        write_folder_atomic(out, _files("y.txt", "2"))
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="not a folder"):
        write_folder_atomic(tmp_path / "file", _files("y.txt", "2"), replace=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert [p.name for p in write_folder_atomic(empty, _files("z", "")).iterdir()] == ["z"]

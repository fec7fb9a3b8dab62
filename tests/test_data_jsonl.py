import pytest

from jradievo_ray.data.manifest import load_manifest
from jradievo_ray.data.synthetic import write_dataset
from jradievo_ray.errors import UserError


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("d"), seed=1, sizes={"search": 3})["search"]


def with_lines(tmp_path, manifest, *extra):
    bad = manifest.parent / f"bad{len(list(manifest.parent.glob('bad*')))}.jsonl"
    bad.write_text(manifest.read_text() + "\n" + "\n".join(extra) + "\n", encoding="utf-8")
    return bad


def test_loads_studies_with_images_relative_to_the_file(manifest):
    studies = load_manifest(manifest)
    assert len(studies) == 3 and all(s.image.is_file() and s.report_ja for s in studies)
    assert [s.id for s in load_manifest(manifest, limit=2)] == [s.id for s in studies[:2]]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"image": "x.png"}', "'id' must be a non-empty string"),
        ('{"id": "n1"}', "'image' must be a non-empty string"),
        ('{"id": "n1", "image": "missing.png"}', "image not found"),
        ('{"id": "n1", "image": "x.png", "findings": "cardiomegaly"}', "'findings' must be"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, manifest, line, message):
    bad = with_lines(tmp_path, manifest, line)
    with pytest.raises(UserError, match=message) as exc:
        load_manifest(bad)
    assert str(exc.value).startswith(f"{bad}:5: ")  # 3 studies, a blank line, then this


def test_an_unreadable_image_is_named_after_every_line_is_parsed(tmp_path, manifest):
    (manifest.parent / "truncated.png").write_bytes(b"")
    bad = with_lines(tmp_path, manifest, '{"id": "n1", "image": "truncated.png"}')
    with pytest.raises(UserError) as exc:
        load_manifest(bad)
    assert str(exc.value).startswith(f"{bad}:5: cannot read image ")
    assert len(load_manifest(bad, check_images=False)) == 4


def test_duplicate_ids_and_missing_files(tmp_path, manifest):
    first = manifest.read_text().splitlines()[0]
    with pytest.raises(UserError, match=r":5: duplicate id"):
        load_manifest(with_lines(tmp_path, manifest, first))
    with pytest.raises(UserError, match="file does not exist"):
        load_manifest(tmp_path / "nope.jsonl")

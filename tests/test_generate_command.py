import importlib.util
import json

import pytest
from zoo_builders import build_random_llava

from jradievo_ray.cli import main
from jradievo_ray.data.synthetic import write_split
from jradievo_ray.inference.requests import load_requests
from jradievo_ray.inference.transformers_backend import TransformersGenerator
from jradievo_ray.zoo.corpus import PROMPT_JA


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("generate")
    vlm = build_random_llava(root / "vlm", seed=5, layers=2)
    manifest = write_split(root / "data", "t", 3, seed=0)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    data = root / "data" / "requests.jsonl"
    lines = [{"id": r["id"], "image": r["image"]} for r in rows]
    lines[1]["prompt"] = "所見を記述してください。"
    data.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    return vlm, data


def test_generate_writes_one_line_per_request_in_order(setup, tmp_path, capsys):
    vlm, data = setup
    out = tmp_path / "sub" / "pred.jsonl"
    argv = ["generate", "--model", str(vlm), "--data", str(data), "--out", str(out)]
    assert main([*argv, "--max-new-tokens", "8", "--batch-size", "2"]) == 0
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    requests = load_requests(data, PROMPT_JA)
    assert [g["id"] for g in got] == [r.id for r in requests]
    assert requests[1].prompt != PROMPT_JA and requests[0].prompt == PROMPT_JA
    expected = TransformersGenerator(vlm, max_new_tokens=8, batch_size=3).generate(requests)
    assert [g["text"] for g in got] == expected
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "invalid JSON"),
        ('{"image": "x.png"}', "'id' must be a non-empty string"),
        ('{"id": "a", "image": "nowhere.png"}', "image not found"),
        ('{"id": "a", "image": "img.png", "prompt": 3}', "'prompt' must be"),
        ('["a"]', "expected a JSON object"),
    ],
)
def test_bad_line_exits_2_naming_file_and_line(setup, tmp_path, capsys, line, message):
    vlm, _ = setup
    (tmp_path / "img.png").write_bytes(b"")
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "ok", "image": "img.png"}\n\n' + line + "\n")
    argv = ["generate", "--model", str(vlm), "--data", str(data), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{data}:3: " in err and message in err
    assert not (tmp_path / "o").exists()


def test_duplicate_ids_and_missing_model(setup, tmp_path, capsys):
    vlm, data = setup
    dup = tmp_path / "dup.jsonl"
    row = json.loads(data.read_text().splitlines()[0])
    row["image"] = str(data.parent / row["image"])
    dup.write_text((json.dumps(row) + "\n") * 2)
    argv = ["generate", "--model", str(vlm), "--data", str(dup), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert f"{dup}:2: duplicate id" in capsys.readouterr().err
    argv = ["generate", "--model", str(tmp_path), "--data", str(data), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "not a model folder" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_backend_without_vllm_is_a_clear_error(setup, tmp_path, capsys):
    vlm, data = setup
    argv = ["generate", "--model", str(vlm), "--data", str(data), "--out", str(tmp_path / "o")]
    assert main([*argv, "--backend", "vllm"]) == 2
    assert "vllm cannot be imported" in capsys.readouterr().err


def test_unreadable_image_exits_2_naming_its_line_before_a_model_is_built(setup, tmp_path, capsys):
    vlm, data = setup
    real = load_requests(data, PROMPT_JA)[0].image
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    bad = tmp_path / "in.jsonl"
    bad.write_text(
        json.dumps({"id": "a", "image": str(real)}) + '\n{"id": "b", "image": "broken.png"}\n'
    )
    argv = ["generate", "--model", str(vlm), "--data", str(bad), "--out", str(tmp_path / "o")]
    assert main([*argv, "--backend", "transformers"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: cannot read image {tmp_path / 'broken.png'}: not an image file" in err
    assert "backend ready" not in err and not (tmp_path / "o").exists()


def test_images_relative_to_the_working_directory_when_not_beside_the_file(
    setup, tmp_path, monkeypatch
):
    _, data = setup
    real = load_requests(data, PROMPT_JA)[0].image
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "x.png").write_bytes(real.read_bytes())
    (tmp_path / "sub").mkdir()
    lines = tmp_path / "sub" / "in.jsonl"
    lines.write_text('{"id": "a", "image": "imgs/x.png"}\n')
    monkeypatch.chdir(tmp_path)
    assert load_requests(lines, PROMPT_JA)[0].image == tmp_path / "imgs" / "x.png"
    (tmp_path / "sub" / "imgs").mkdir()  # beside the file wins when both exist
    (tmp_path / "sub" / "imgs" / "x.png").write_bytes(real.read_bytes())
    assert load_requests(lines, PROMPT_JA)[0].image == tmp_path / "sub" / "imgs" / "x.png"

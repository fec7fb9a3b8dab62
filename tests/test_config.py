import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from jradievo_ray.config import DEMO_CONFIG, apply_overrides, load_config
from jradievo_ray.data.synthetic import write_split
from jradievo_ray.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_demo_config_is_jobs_demo():
    assert (ROOT / "jobs" / "demo.yaml").read_text() == DEMO_CONFIG.read_text()
    cfg = load_config()
    assert [m.name for m in cfg.models.merge_sources] == ["vlm", "ja", "med"]
    assert cfg.models.vlm.path == "zoo:vlm"


def test_8b_config_matches_the_paper_setup():
    cfg = load_config(ROOT / "jobs" / "jradievo-8b.yaml")
    assert cfg.models.dtype == "float16"
    assert len(cfg.models.sources) == 3
    assert cfg.data.search_limit == 50
    assert cfg.inference.max_new_tokens == 256
    assert cfg.search.population >= 2


def test_set_overrides_any_field_with_yaml_values():
    cfg = load_config(
        None,
        [
            "search.generations=3",
            "merge.scale.high=1.5",
            "models.sources.0.path=/x",
            "merge.sign_consensus=false",
        ],
    )
    assert cfg.search.generations == 3
    assert cfg.merge.scale.high == 1.5
    assert cfg.models.sources[0].path == "/x"
    assert cfg.merge.sign_consensus is False


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("search.popluation=3", "search.popluation"),
        ("search.population=many", "search.population"),
        ("merge.density.low=-1", "merge"),
        ("scoring.bleu4=-2", "scoring.bleu4"),
        ("inference.backend=onnx", "inference.backend"),
    ],
)
def test_bad_field_names_the_dotted_field(override, field):
    with pytest.raises(UserError) as exc:
        load_config(None, [override])
    assert str(exc.value).startswith(f"demo.yaml: {field}")


def test_frozen_and_extra_forbidden():
    cfg = load_config()
    with pytest.raises(ValidationError):
        cfg.search.population = 3  # type: ignore[misc]
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["models"]["extra"] = 1
    with pytest.raises(UserError, match="models.extra"):
        from jradievo_ray.config import parse_config

        parse_config(raw, "x.yaml")


def test_bad_override_syntax():
    with pytest.raises(UserError, match="expected dotted.key=value"):
        apply_overrides({}, ["novalue"], "f.yaml")


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "jradievo_ray.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_cli_bad_config_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["search"]["tournament_size"] = 1
    bad.write_text(yaml.safe_dump(raw))
    proc = run_cli("search", "--config", str(bad), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {bad}: search.tournament_size: Input should be greater than or equal to 2"
    ]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_cli_typo_is_named_before_missing_sections(tmp_path):
    """A file holding only a misspelt section: the typo, not the missing models, is the error."""
    bad = tmp_path / "typo.yaml"
    bad.write_text("serch:\n  generations: 2\n")
    proc = run_cli("search", "--config", str(bad), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {bad}: serch: unknown field (did you mean search?)"
    ]


@pytest.mark.parametrize(
    "override, message",
    [
        ("serch.generations=2", "serch: unknown field (did you mean search?)"),
        ("search.generatons=3", "search.generatons: unknown field (did you mean generations?)"),
        ("resources.num_actor=2", "resources.num_actor: unknown field (did you mean num_actors?)"),
        ("models.sources.0.pth=x", "models.sources.0.pth: unknown field (did you mean path?)"),
        (
            "merge.method_bounds.density.lo=0",
            "merge.method_bounds.density.lo: unknown field (did you mean low?)",
        ),
        ("search.zzzzzz=1", "search.zzzzzz: unknown field"),
    ],
)
def test_set_typo_names_the_closest_field(override, message):
    with pytest.raises(UserError) as exc:
        load_config(None, [override])
    assert str(exc.value) == f"demo.yaml: {message}"


def test_unknown_field_reported_before_a_bad_value(tmp_path):
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["search"]["population"] = 0  # invalid too, but the typo below comes first
    raw["search"]["mutaton_prob"] = 0.5
    from jradievo_ray.config import parse_config

    with pytest.raises(UserError) as exc:
        parse_config(raw, "x.yaml")
    assert (
        str(exc.value) == "x.yaml: search.mutaton_prob: unknown field (did you mean mutation_prob?)"
    )


def test_cli_invalid_yaml_names_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  base: [unclosed\n")
    proc = run_cli("search", "--config", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {bad}: line ")
    assert "Traceback" not in proc.stderr


def test_missing_model_folder_reported_before_ray(tmp_path):
    cfg = tmp_path / "c.yaml"
    raw = yaml.safe_load((ROOT / "jobs" / "jradievo-8b.yaml").read_text())
    cfg.write_text(yaml.safe_dump(raw))
    proc = run_cli("search", "--config", str(cfg), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: {cfg}: models.base.path: model folder does not exist: /models/Meta-Llama-3-8B"
    )
    assert not (tmp_path / "run").exists()  # nothing started


def _config_with_data(tmp_path, data: dict):
    for name in ("base", "vlm", "ja"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["models"]["base"]["path"] = str(tmp_path / "base")
    raw["models"]["vlm"]["path"] = str(tmp_path / "vlm")
    raw["models"]["sources"] = [{"name": "ja", "path": str(tmp_path / "ja")}]
    raw["data"] = data
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    return cfg


def test_missing_data_file_reported(tmp_path):
    cfg = _config_with_data(tmp_path, {"search": str(tmp_path / "nope.jsonl")})
    proc = run_cli("search", "--config", str(cfg), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"error: {cfg}: data.search: file does not exist: {tmp_path / 'nope.jsonl'}"
    )


def test_bad_manifest_line_reported_before_ray(tmp_path):
    write_split(tmp_path / "d", "search", 2, seed=0)
    heldout = write_split(tmp_path / "d", "heldout", 3, seed=1)
    with heldout.open("a") as fh:
        fh.write('{"id": "late", "image": "gone.png", "report_ja": "x"}\n')
    search = str(tmp_path / "d" / "search.jsonl")
    cfg = _config_with_data(tmp_path, {"search": search, "heldout": str(heldout)})
    proc = run_cli("search", "--config", str(cfg), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: {cfg}: data.heldout: {heldout}:4: image not found: {tmp_path / 'd' / 'gone.png'}"
    )
    assert not (tmp_path / "run").exists()


def test_cli_stopped_search_is_one_error_line_and_exit_75(monkeypatch, capsys):
    from jradievo_ray import cli
    from jradievo_ray.commands import search
    from jradievo_ray.errors import SearchStopped

    def stopped(args):
        raise SearchStopped("no evaluation actor is left; continue with: --resume runs/x")

    monkeypatch.setattr(search, "run", stopped)
    assert cli.main(["search", "--out", "runs/x"]) == 75
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "error: no evaluation actor is left; continue with: --resume runs/x"
    ]


def test_placement_and_start_timeout_defaults():
    cfg = load_config(None, [])
    assert cfg.resources.placement == "spread" and cfg.resources.actor_start_timeout_s > 0
    with pytest.raises(UserError, match="resources.placement"):
        load_config(None, ["resources.placement=scatter"])
    with pytest.raises(UserError, match="resources.actor_start_timeout_s"):
        load_config(None, ["resources.actor_start_timeout_s=0"])

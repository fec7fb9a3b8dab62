"""The real pipeline end to end on the demo zoo: CLI search, kill + resume, Ray Jobs.

The zoo is trained once per machine (cached under $JRADIEVO_HOME) by the first test that
needs it; everything here uses the same code paths as an 8B run.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SMALL = [
    "search.population=4",
    "search.generations=2",
    "data.search_limit=12",
    "data.heldout_limit=16",
    "resources.num_actors=1",
]


def sets(*items: str) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def env() -> dict[str, str]:
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{BIN}:{os.environ['PATH']}"}


@pytest.fixture(scope="session")
def zoo() -> Path:
    from jradievo_ray.zoo import ensure_zoo

    return ensure_zoo()


def jradievo(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "jradievo"), *args], capture_output=True, text=True, env=env(), timeout=timeout
    )


@pytest.fixture(scope="module")
def small_run(zoo, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """The small search on the transformers backend, once for the tests that read it."""
    out = tmp_path_factory.mktemp("small") / "run"
    return jradievo("search", "--out", str(out), *sets(*SMALL)), out


def test_small_search_end_to_end(small_run):
    proc, out = small_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "gen 0/2" in proc.stdout and "gen 2/2" in proc.stdout and "ETA" in proc.stdout
    result = json.loads((out / "result.json").read_text())
    assert len(result["best"]["genome"]) == 8
    assert set(result["best"]["recipe"]["sources"]) == {"vlm", "ja", "med"}
    rows = result["heldout"]
    assert {
        "best",
        "uniform",
        "source/vlm",
        "source/ja",
        "source/med",
        "blind",
        "best_images_shuffled",
    } <= set(rows)
    for m in rows.values():
        assert set(m) == {"n", "rouge_l", "bleu4", "finding_f1", "fitness"}
        assert m["n"] == 16 and all(0 <= m[k] <= 100 for k in m if k != "n")
    assert set(result["ablation"]) == {"vlm", "ja", "med"}
    assert {"best", "blind", "source/ja"} <= set(result["heldout_per_finding"])
    assert result["mlflow"]["tracking_uri"].startswith("sqlite:///")
    for row in ("best", "uniform", "blind", "best_images_shuffled"):
        assert row in proc.stdout  # the end-of-search table
    assert (out / "config.yaml").is_file() and (out / "fitness.png").is_file()
    assert (out / "pareto.png").is_file()


def test_the_result_holds_the_pareto_front_with_held_out_rows(small_run):
    _, out = small_run
    result = json.loads((out / "result.json").read_text())
    front = result["pareto"]
    assert front
    objectives = ["finding_f1", "rouge_l", "bleu4"]
    for m in front:
        assert set(m) == {"genome", "recipe", "search", "heldout"}
        assert list(m["search"]) == objectives
        assert set(m["heldout"]) == set(result["heldout"]["best"])
        others = [o for o in front if o is not m]
        assert not any(
            all(o["search"][k] >= m["search"][k] for k in objectives) and o["search"] != m["search"]
            for o in others
        )
    # max_fitness picks the hall of fame's best, a front member; its held-out row is the table's
    [best] = [m for m in front if m["genome"] == result["best"]["genome"]]
    assert best["heldout"] == result["heldout"]["best"]
    journal = [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]
    for e in journal:  # every genome evaluated is on the front or dominated by a member
        assert any(all(m["search"][k] >= e["metrics"][k] for k in objectives) for m in front)


def test_the_result_names_the_zoo_that_produced_it(small_run, zoo):
    proc, out = small_run
    result = json.loads((out / "result.json").read_text())
    built = json.loads((zoo / "zoo.json").read_text())
    from jradievo_ray.zoo.build import fingerprint

    assert result["zoo"] == {
        "tag": built["version"],
        "seed": 0,
        "fingerprint": fingerprint(zoo),
    }
    assert built["fingerprint"] == fingerprint(zoo)
    assert re.fullmatch(r"[0-9a-f]{12}", built["fingerprint"])
    assert f"weights fingerprint {built['fingerprint']}" in proc.stdout


def test_the_search_on_vllm_actors_is_the_search_on_transformers(small_run, tmp_path):
    """inference.backend vllm: each actor builds one vLLM engine and swaps every genome's
    merge into it. Its greedy texts are transformers', so the seeded search must take the
    same path to the same best merge and the same held-out table."""
    pytest.importorskip("vllm", reason="vllm not installed (scripts/install_vllm_cpu.sh VENV)")
    proc, out = small_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "vllm"
    vllm = jradievo(
        "search",
        "--out",
        str(run),
        *sets(*SMALL, "inference.backend=vllm", "inference.compile=false"),
    )
    assert vllm.returncode == 0, vllm.stderr[-3000:]
    want = json.loads((out / "result.json").read_text())
    got = json.loads((run / "result.json").read_text())
    assert yaml.safe_load((run / "config.yaml").read_text())["inference"]["backend"] == "vllm"
    assert got["best"] == want["best"]
    assert [g["max"] for g in got["generations"]] == [g["max"] for g in want["generations"]]
    assert got["heldout"] == want["heldout"]


def test_killed_at_each_final_phase_resumes_to_the_uninterrupted_result(small_run, tmp_path):
    """The small search SIGKILLed (driver and private Ray) at each phase after the last
    generation, one after another, each time resumed: during the held-out rows, with the
    export written but not in place, with export/ in place, and half-way through the final
    MLflow logging. The end is the uninterrupted run's result.json. (Kills inside and
    between generations: test_crash_resume.py.)"""
    proc, full = small_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "part"

    def search(*args: str, fault: str | None = None) -> subprocess.CompletedProcess:
        run_env = {k: v for k, v in env().items() if k != "JRADIEVO_FAULT"}
        if fault:
            run_env["JRADIEVO_FAULT"] = fault
        return subprocess.run(
            [str(BIN / "jradievo"), "search", *args],
            capture_output=True,
            text=True,
            env=run_env,
            timeout=600,
            start_new_session=True,  # the fault kills this process group
        )

    first = search("--out", str(out), *sets(*SMALL), fault="heldout:2")
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    for fault in ("export", "exported", "logging", None):
        assert not (out / "result.json").exists()
        resumed = search("--resume", str(out), fault=fault)
        want = -signal.SIGKILL if fault else 0
        assert resumed.returncode == want, (fault, resumed.stderr[-3000:])
    a = json.loads((full / "result.json").read_text())
    b = json.loads((out / "result.json").read_text())
    assert b["best"] == a["best"] and b["zoo"] == a["zoo"]
    assert b["heldout"] == a["heldout"] and b["ablation"] == a["ablation"]
    keys = ("gen", "max", "mean", "min", "evaluated")
    assert [{k: g[k] for k in keys} for g in b["generations"]] == [
        {k: g[k] for k in keys} for g in a["generations"]
    ]
    assert sorted(p.name for p in (out / "export").iterdir()) == ["merge.yaml", "model"]
    assert not list(out.glob(".export*"))  # no partial export left behind
    same = "same weights as the uninterrupted run's export"
    for f in (full / "export" / "model").glob("*.safetensors"):
        assert (out / "export" / "model" / f.name).read_bytes() == f.read_bytes(), same

    again = search("--resume", str(out))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nothing to resume" in again.stdout and "best_images_shuffled" in again.stdout
    assert json.loads((out / "result.json").read_text()) == b


def test_ray_job_submit_runs_the_default_demo_grounded(zoo, tmp_path):
    """README's Ray Jobs recipe with the default demo config, on the zoo this machine
    trained. The held-out table must show what held on every zoo + search seed measured
    (benchmarks/RESULTS.md, seeds 0-6): the merge beats the uniform merge and every source
    (each behind the VLM's vision tower and projector) on fitness, and reads the image
    (finding F1 5+ above itself with shuffled images). The demo's other rules hold on most
    seeds but not all (seed 6), so on another CPU's zoo they are no test's business here:
    test_demo_honesty_rules_hold_on_this_machines_zoo (slow) checks them all."""
    ray = str(BIN / "ray")
    out = tmp_path / "demo"
    # Token authentication on both sides (as the README shows), with a token of this test's
    # own so that whatever ~/.ray holds plays no part.
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    start = [
        ray,
        "start",
        "--head",
        "--node-ip-address",
        "127.0.0.1",
        "--dashboard-host",
        "127.0.0.1",
        "--port",
        "6390",
        "--num-cpus",
        "2",
        "--disable-usage-stats",
    ]
    subprocess.run(start, check=True, env=env() | auth, capture_output=True, timeout=180)
    try:
        proc = subprocess.run(
            [
                ray,
                "job",
                "submit",
                "--address",
                "http://127.0.0.1:8265",
                "--working-dir",
                str(ROOT),
                "--",
                "jradievo",
                "search",
                "--config",
                "jobs/demo.yaml",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            env=env() | auth,
            timeout=1200,
            cwd=ROOT,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        job_id = re.search(r"raysubmit_\w+", proc.stdout + proc.stderr).group(0)
        ask = (
            "from ray.job_submission import JobSubmissionClient as C; "
            f"print(C('http://127.0.0.1:8265').get_job_status('{job_id}').value)"
        )
        status = subprocess.run(
            [sys.executable, "-c", ask],
            capture_output=True,
            text=True,
            env=env() | auth,
            timeout=120,
        )
        assert status.stdout.strip() == "SUCCEEDED", status.stderr[-2000:]
    finally:
        subprocess.run([ray, "stop", "--force"], env=env() | auth, capture_output=True, timeout=120)
    result = json.loads((out / "result.json").read_text())
    h = result["heldout"]
    best = h["best"]
    assert best["n"] >= 200
    rivals = ["uniform", *(row for row in h if row.startswith("source/"))]
    assert {"source/vlm", "source/ja", "source/med"} <= set(rivals)
    for row in rivals:
        assert best["fitness"] > h[row]["fitness"], (row, h)
    assert best["finding_f1"] >= h["best_images_shuffled"]["finding_f1"] + 5
    assert (out / "export" / "merge.yaml").is_file()
    assert (out / "export" / "model" / "config.json").is_file()


@pytest.mark.slow
def test_demo_honesty_rules_hold_on_this_machines_zoo(tmp_path):
    """Every rule of the demo (benchmarks/demo_seeds.py) on zoo + search seed 0 as this
    machine trains it: they held on seeds 0-5 of the box in RESULTS.md, not on seed 6."""
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "demo_seeds.py"),
            "--seeds",
            "0",
            "--out",
            str(tmp_path / "runs"),
            "--json",
            str(tmp_path / "seeds.json"),
        ],
        capture_output=True,
        text=True,
        env=env(),
        timeout=1800,
    )
    report = json.loads((tmp_path / "seeds.json").read_text())
    assert report["all_hold"], (report["runs"][0]["checks"], proc.stdout[-3000:])

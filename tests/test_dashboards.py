"""The Grafana dashboard: its files are what dashboards/build.py writes (JSON and the
kube-prometheus-stack ConfigMap), and every panel's query returns data from a real
Prometheus (Debian's `prometheus`) that scrapes Ray's service-discovery file during a toy
search. GPU panels are only checked to be valid queries: a node without GPUs exports no
GPU metrics, so they have no data here."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import ray
import yaml
from conftest import ROOT
from metrics_search import SearchThread, finite, free_port, poll, start_ray

GPU_METRICS = ("ray_node_gpus_utilization", "ray_node_gram_used")
RATE_WINDOW = "10m"  # stands in for Grafana's $__rate_interval: the whole toy search


def build_module():
    spec = importlib.util.spec_from_file_location("dashboard_build", ROOT / "dashboards/build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def queries(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel."""
    return [
        (p["title"], t["expr"])
        for p in dashboard["panels"]
        if p["type"] != "row"
        for t in p["targets"]
    ]


def test_files_are_what_build_writes():
    build = build_module()
    assert build.DASHBOARD.read_text() == build.dashboard_json()
    assert build.CONFIGMAP.read_text() == build.configmap_yaml()
    configmap = yaml.safe_load(build.CONFIGMAP.read_text())
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["labels"] == {"grafana_dashboard": "1"}
    assert configmap["data"] == {"jradievo-search.json": build.DASHBOARD.read_text()}
    dashboard = json.loads(build.DASHBOARD.read_text())
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert names == ["datasource", "run"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("needs Prometheus: apt-get install -y prometheus (Debian package)")
    subprocess.run(["apt-get", "install", "-y", "prometheus"], check=True, capture_output=True)
    return shutil.which("prometheus") or pytest.fail("apt-get installed no prometheus binary")


def api(port: int, path: str, **params: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5) as response:
            return response.status == 200
    except OSError:  # not listening yet
        return False


def has_finite_data(port: int, expr: str) -> bool:
    result = api(port, "query", query=expr)["result"]
    return any(finite(float(r["value"][1])) for r in result)


def test_every_panel_has_data_from_prometheus(tmp_path):
    binary = prometheus_binary()
    dashboard = json.loads(build_module().DASHBOARD.read_text())
    _, session = start_ray(dashboard=True)
    prometheus = None
    try:
        discovery = Path(session) / "prom_metrics_service_discovery.json"
        poll(discovery.is_file, f"Ray's {discovery.name}")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": "ray", "file_sd_configs": [{"files": [str(discovery)]}]}
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        prometheus = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "prometheus.log").open("w"),
        )
        poll(lambda: ready(port), "Prometheus ready")
        hold = tmp_path / "hold"
        hold.touch()
        search = SearchThread(tmp_path / "run", hold, fail_above=0.75, stage_s=0.25)
        search.start()
        # Genomes go once Prometheus holds the search's first metrics: the counters then
        # rise over several scrapes, so rate() panels have something to show.
        poll(
            lambda: api(port, "query", query="ray_jradievo_actors_alive == 2")["result"],
            "the search's metrics in Prometheus",
        )
        hold.unlink()
        run = search.finish()["mlflow"]["run_id"]
        assert run in api(port, "label/run/values", **{"match[]": "ray_jradievo_evaluations_done"})

        for title, expr in queries(dashboard):
            query = expr.replace("$run", run).replace("$__rate_interval", RATE_WINDOW)
            assert "$" not in query, f"{title}: unsubstituted variable in {query}"
            if any(metric in query for metric in GPU_METRICS):
                api(port, "query", query=query)  # a valid query; no GPU here, so no data
                continue
            poll(lambda q=query: has_finite_data(port, q), f"panel {title!r}: {query}")
    finally:
        if prometheus:
            prometheus.terminate()
            prometheus.wait(30)
        ray.shutdown()

"""Writes the search's Grafana dashboard (jradievo-search.json) and the ConfigMap that
kube-prometheus-stack's Grafana sidecar loads it from, both from the panels below:
`python dashboards/build.py` after editing them (tests/test_dashboards.py checks that the
files are what this writes, and queries every panel against a real Prometheus)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DASHBOARD = HERE / "jradievo-search.json"
CONFIGMAP = HERE / "kube-prometheus-stack" / "jradievo-search-configmap.yaml"
UID = "jradievo-search"
RUN = 'run=~"$run"'
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# (title, unit, [(legend, PromQL)], width); GPU panels have no data on a node without GPUs.
SEARCH_PANELS: list[tuple[str, str, list[tuple[str, str]], int]] = [
    (
        "Evaluations per minute",
        "short",
        [
            (
                "{{status}} {{run}}",
                f"sum by (run, status) (rate(ray_jradievo_evaluations_total{{{RUN}}}"
                "[$__rate_interval])) * 60",
            )
        ],
        12,
    ),
    (
        "Fitness (0-100)",
        "short",
        [
            ("best {{run}}", f"max by (run) (ray_jradievo_best_fitness{{{RUN}}})"),
            (
                "mean of last generation {{run}}",
                f"max by (run) (ray_jradievo_mean_fitness{{{RUN}}})",
            ),
        ],
        12,
    ),
    (
        "Mean seconds per stage",
        "s",
        [
            (
                "{{stage}} {{run}}",
                f"sum by (run, stage) (rate(ray_jradievo_stage_seconds_sum{{{RUN}}}"
                "[$__rate_interval])) / sum by (run, stage) "
                f"(rate(ray_jradievo_stage_seconds_count{{{RUN}}}[$__rate_interval]))",
            )
        ],
        12,
    ),
    (
        "Seconds per stage, 90th percentile",
        "s",
        [
            (
                "{{stage}} {{run}}",
                "histogram_quantile(0.9, sum by (le, run, stage) "
                f"(rate(ray_jradievo_stage_seconds_bucket{{{RUN}}}[$__rate_interval])))",
            )
        ],
        12,
    ),
    (
        "Progress",
        "short",
        [
            ("evaluations done {{run}}", f"max by (run) (ray_jradievo_evaluations_done{{{RUN}}})"),
            (
                "generation (steady-state: round) done {{run}}",
                f"max by (run) (ray_jradievo_generation_done{{{RUN}}})",
            ),
        ],
        8,
    ),
    (
        "Actors",
        "short",
        [
            ("alive {{run}}", f"max by (run) (ray_jradievo_actors_alive{{{RUN}}})"),
            (
                "genomes in flight {{run}}",
                f"max by (run) (ray_jradievo_genomes_in_flight{{{RUN}}})",
            ),
        ],
        8,
    ),
    (
        "Actor replacements (total)",
        "short",
        [("{{run}}", f"max by (run) (ray_jradievo_actor_replacements_total{{{RUN}}})")],
        8,
    ),
]
NODE_PANELS: list[tuple[str, str, list[tuple[str, str]], int]] = [
    (
        "CPU utilisation per node",
        "percent",
        [("{{ip}}", "avg by (ip) (ray_node_cpu_utilization)")],
        12,
    ),
    (
        "Memory used per node",
        "bytes",
        [
            ("used {{ip}}", "sum by (ip) (ray_node_mem_used)"),
            ("total {{ip}}", "sum by (ip) (ray_node_mem_total)"),
        ],
        12,
    ),
    (
        "GPU utilisation per GPU",
        "percent",
        [("{{ip}} GPU {{GpuIndex}}", "avg by (ip, GpuIndex) (ray_node_gpus_utilization)")],
        12,
    ),
    (
        "GPU memory used per GPU (MiB)",
        "decmbytes",
        [("{{ip}} GPU {{GpuIndex}}", "sum by (ip, GpuIndex) (ray_node_gram_used)")],
        12,
    ),
]


def panel(pid: int, title: str, unit: str, targets: list[tuple[str, str]], x: int, y: int, w: int):
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": leg,
            }
            for i, (leg, expr) in enumerate(targets)
        ],
    }


def row(pid: int, title: str, y: int) -> dict[str, Any]:
    return {
        "id": pid,
        "type": "row",
        "title": title,
        "collapsed": False,
        "panels": [],
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
    }


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    for title, group in (("Search", SEARCH_PANELS), ("Ray nodes", NODE_PANELS)):
        panels.append(row(len(panels) + 1, title, y))
        y += 1
        x = 0
        for name, unit, targets, w in group:
            if x + w > 24:
                x, y = 0, y + 8
            panels.append(panel(len(panels) + 1, name, unit, targets, x, y, w))
            x += w
        y += 8
    variables = [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
        },
        {
            "name": "run",
            "label": "Search (MLflow run id)",
            "type": "query",
            "datasource": DATASOURCE,
            "query": {"query": "label_values(ray_jradievo_evaluations_done, run)", "refId": "run"},
            "definition": "label_values(ray_jradievo_evaluations_done, run)",
            "refresh": 2,
            "multi": True,
            "includeAll": True,
            "allValue": ".*",
            "current": {},
            "hide": 0,
            "sort": 1,
        },
    ]
    return {
        "uid": UID,
        "title": "jradievo search",
        "description": "Live metrics of jradievo searches (ray_jradievo_*) and Ray's node metrics",
        "tags": ["jradievo", "ray"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "panels": panels,
    }


def dashboard_json() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def configmap_yaml() -> str:
    """The ConfigMap kube-prometheus-stack's Grafana sidecar picks up (its default label)."""
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "jradievo-search-dashboard", "labels": {"grafana_dashboard": "1"}},
        "data": {DASHBOARD.name: dashboard_json()},
    }
    return yaml.dump(doc, Dumper=LiteralDumper, sort_keys=False, width=1000)


class LiteralDumper(yaml.SafeDumper):
    """Writes the dashboard JSON as a `|` block, so that the ConfigMap reads like the file."""


LiteralDumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar(
        "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None
    ),
)


def main() -> None:
    DASHBOARD.write_text(dashboard_json())
    CONFIGMAP.write_text(configmap_yaml())


if __name__ == "__main__":
    main()

"""MLflow logging for one search: a parent run, per-generation metrics, tables, artifacts.

Default store: a sqlite file in the run folder, artifacts beside it, nothing leaves the
machine. Generated report text is logged only when `tracking.log_report_text` is set.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

MAX_PARAM_LEN = 6000


def default_uri(out_dir: Path) -> str:
    return f"sqlite:///{(out_dir / 'mlflow.db').resolve()}"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value, ensure_ascii=False)[:MAX_PARAM_LEN]
    return flat


class Tracker:
    """One MLflow parent run; resumable by run id."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        out_dir: Path,
        run_id: str | None = None,
        artifacts: str | None = None,
    ):
        """`artifacts`: where a new experiment keeps its artifacts (default: the server's
        choice, or `mlartifacts/` beside a sqlite store)."""
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        if run_id is None:
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                if artifacts is None and uri.startswith("sqlite"):
                    artifacts = (out_dir / "mlartifacts").resolve().as_uri()
                exp_id = self.client.create_experiment(experiment, artifact_location=artifacts)
            else:
                exp_id = exp.experiment_id
            run_id = self.client.create_run(exp_id, run_name=out_dir.name).info.run_id
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.run_id = run_id

    def log_params(self, config: dict[str, Any]) -> None:
        params = [Param(k, v) for k, v in flatten(config).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(batch), 500):
            self.client.log_batch(self.run_id, metrics=batch[i : i + 500])

    def metric_steps(self, key: str) -> set[int]:
        """The steps at which `key` was logged to this run."""
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    def log_table(self, rows: list[dict[str, Any]], name: str) -> None:
        if rows:
            columns = {k: [r.get(k) for r in rows] for k in rows[0]}
            self.client.log_table(self.run_id, data=columns, artifact_file=name)

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def log_file(self, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def log_figure(self, fig: Any, name: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            fig.savefig(path, dpi=100, bbox_inches="tight")
            self.log_file(path)

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)

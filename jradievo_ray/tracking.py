"""MLflow logging for one search: a parent run, per-generation metrics, tables, artifacts,
a nested child run per evaluated genome, and the best merge's registered model version.

Default store: a sqlite file in the run folder, artifacts beside it, nothing leaves the
machine. Generated report text is logged only when `tracking.log_report_text` is set.
Credentials come from the environment (MLflow's and boto3's variables) and are never logged.
"""

from __future__ import annotations

import json
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

MAX_PARAM_LEN = 6000
MAX_TAG_LEN = 5000
PARENT_TAG = "mlflow.parentRunId"
INDEX_TAG = "journal_index"  # a child's line in evaluations.jsonl: what resume skips by


@dataclass(frozen=True)
class Child:
    """One evaluated genome's nested run."""

    index: int
    name: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)


def genome_child(
    index: int,
    entry: dict[str, Any],
    stage: tuple[str, int],
    genes: dict[str, float],
    recipe: dict[str, Any],
) -> Child:
    """The child run of journal line `index`: genes and decoded recipe as params, fitness,
    scores and seconds per stage as metrics, where and when it ran as tags. `stage`:
    ("generation" or "round", its number)."""
    scores = {
        k: v
        for k, v in (entry["metrics"] or {}).items()
        if k not in ("n", "fitness") and isinstance(v, int | float)
    }
    seconds = {f"seconds/{k}": v for k, v in (entry["seconds"] or {}).items()}
    tags = {
        stage[0]: str(stage[1]),
        "actor": str(entry["actor"]),
        "node": str(entry["node"]),
        "attempt": str(entry["attempt"]),
    }
    if entry["error"]:
        tags["error"] = entry["error"]
    return Child(
        index=index,
        name=f"{stage[0][0]}{stage[1]}-{index}",
        params={
            **flatten({f"gene/{k}": v for k, v in genes.items()}),
            **flatten(recipe, "recipe."),
        },
        metrics={"fitness": entry["fitness"], **scores, **seconds},
        tags=tags,
    )


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
        info = self.client.get_run(run_id).info
        self.experiment_id = info.experiment_id
        self.artifact_uri = info.artifact_uri
        # Child runs are logged off the search's thread, one at a time, in order.
        self._children = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-children")
        self._pending: list[Future] = []

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

    def logged_children(self) -> set[int]:
        """The journal indexes of this run's finished child runs. A child a kill left
        unfinished is deleted, so that it is logged again whole."""
        done: set[int] = set()
        token = None
        query = f"tags.`{PARENT_TAG}` = '{self.run_id}'"
        while True:
            page = self.client.search_runs(
                [self.experiment_id], query, max_results=1000, page_token=token
            )
            for run in page:
                index = run.data.tags.get(INDEX_TAG)
                if run.info.status == "FINISHED" and index is not None:
                    done.add(int(index))
                else:
                    self.client.delete_run(run.info.run_id)
            token = page.token
            if not token:
                return done

    def log_children(self, children: list[Child]) -> None:
        """Queue child runs for the background logger; raises what an earlier batch raised."""
        self._reap(block=False)
        if children:
            self._pending.append(self._children.submit(self._log_children, children))

    def _log_children(self, children: list[Child]) -> None:
        for child in children:
            tags = {PARENT_TAG: self.run_id, INDEX_TAG: str(child.index), **child.tags}
            tags = {k: v[:MAX_TAG_LEN] for k, v in tags.items()}
            run_id = self.client.create_run(
                self.experiment_id, run_name=child.name, tags=tags
            ).info.run_id
            now = int(time.time() * 1000)
            params = [Param(k, v) for k, v in child.params.items()]
            metrics = [Metric(k, float(v), now, 0) for k, v in child.metrics.items()]
            for i in range(0, max(len(params), 1), 100):
                batch = metrics if i == 0 else []
                self.client.log_batch(run_id, metrics=batch, params=params[i : i + 100])
            self.client.set_terminated(run_id)

    def wait_children(self) -> None:
        """Return once every queued child run is logged."""
        self._reap(block=True)

    def _reap(self, block: bool) -> None:
        """Drop finished child batches (all of them, waiting, with `block`), re-raising the
        first error."""
        pending, self._pending = self._pending, []
        for future in pending:
            if block or future.done():
                future.result()
            else:
                self._pending.append(future)

    def register(
        self, name: str, source: str, tags: dict[str, str], description: str
    ) -> tuple[str, bool]:
        """This run's version of registered model `name` (created once: a resumed search
        finds the version it registered before a kill); returns (version, created)."""
        if not self.client.search_registered_models(f"name = '{name}'"):
            self.client.create_registered_model(name)
        query = f"name = '{name}' and run_id = '{self.run_id}'"
        for found in self.client.search_model_versions(query):
            return found.version, False
        tags = {k: v[:MAX_TAG_LEN] for k, v in tags.items()}
        made = self.client.create_model_version(
            name, source, run_id=self.run_id, tags=tags, description=description
        )
        return made.version, True

    def finish(self, status: str = "FINISHED") -> None:
        """End the run once its child runs are logged (a failed search keeps its first
        error: a child's is raised only when the search itself succeeded)."""
        try:
            self._reap(block=True)
        except Exception:
            if status == "FINISHED":
                raise
        finally:
            self._children.shutdown(wait=True)
        self.client.set_terminated(self.run_id, status=status)

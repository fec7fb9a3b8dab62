"""For the live-metrics tests: a private Ray that exports metrics on a free loopback port,
a toy evaluator with real stage seconds that holds its genomes while a file exists, a toy
search run in a thread, and a reader of a metrics endpoint."""

from __future__ import annotations

import functools
import math
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import ray
import ray.cloudpickle
import toy_evaluator
from prometheus_client.parser import text_string_to_metric_families

from jradievo_ray.config import load_config
from jradievo_ray.search.evaluation import STAGES, Evaluation
from jradievo_ray.search.run import run_search

SETTINGS = [
    "data.heldout=null",
    "search.export_best=false",
    "search.population=6",
    "search.generations=2",
    "resources.num_actors=2",
    "resources.num_cpus_per_actor=0.5",
    "resources.max_retries=2",
]
STAGE_SLEEP_S = 0.05


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ray(dashboard: bool) -> tuple[int, str]:
    """A fresh private Ray whose node exports metrics every second on a free port;
    returns that port and the session folder. `dashboard`: also Ray's dashboard (on
    loopback), which writes the Prometheus service-discovery file."""
    ray.shutdown()
    port = free_port()
    extra = {"dashboard_host": "127.0.0.1", "dashboard_port": free_port()} if dashboard else {}
    ctx = ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=dashboard,
        _node_ip_address="127.0.0.1",
        _metrics_export_port=port,
        _system_config={"metrics_report_interval_ms": 1000},
        log_to_driver=False,
        **extra,
    )
    return port, ctx.address_info["session_dir"]


class TimedToy(toy_evaluator.ToyEvaluator):
    """The toy objective, held while the file `hold` exists; each stage sleeps `stage_s`
    and reports the seconds it really took."""

    def __init__(self, hold: str, stage_s: float = STAGE_SLEEP_S, **kwargs: Any):
        super().__init__(**kwargs)
        self.hold = Path(hold)
        self.stage_s = stage_s

    def evaluate_genome(self, genome: list[float]) -> Evaluation:
        while self.hold.exists():
            time.sleep(0.02)
        seconds = {}
        for stage in STAGES:
            t0 = time.perf_counter()
            time.sleep(self.stage_s)
            seconds[stage] = time.perf_counter() - t0
        toy = super().evaluate_genome(genome)
        return Evaluation(fitness=toy.fitness, metrics=toy.metrics, seconds=seconds)


class SearchThread(threading.Thread):
    """run_search on TimedToy in a thread: its genomes wait while `hold` exists. One actor
    process dies at the first genome whose first gene is above 0.5 (once); genomes whose
    first gene is above `fail_above` fail. `settings` go after SETTINGS."""

    def __init__(
        self,
        out: Path,
        hold: Path,
        fail_above: float,
        stage_s: float = STAGE_SLEEP_S,
        settings: tuple[str, ...] = (),
    ):
        super().__init__(daemon=True)
        ray.cloudpickle.register_pickle_by_value(toy_evaluator)
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        self.cfg = load_config(None, [*SETTINGS, *settings])
        self.out = out
        self.factory = functools.partial(
            TimedToy,
            hold=str(hold),
            stage_s=stage_s,
            fail_above=fail_above,
            die_above=0.5,
            marker=str(out.parent / "died"),
        )
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = run_search(
                self.cfg, self.out, evaluator_factory=self.factory, log=lambda _: None
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test's finish()
            self.error = exc

    def finish(self, timeout: float = 300) -> dict[str, Any]:
        self.join(timeout)
        assert not self.is_alive(), "the search did not finish"
        if self.error:
            raise self.error
        assert self.result is not None
        return self.result


def samples(port: int, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample called `name` (with its labels) on the metrics endpoint."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == name
    ]


def poll(check, what: str, deadline_s: float = 120.0):
    """Call `check` until it returns something truthy; fail naming `what` after the deadline."""
    end = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < end:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: not seen within {deadline_s:g} s (last: {last})")


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))

"""Shared fixtures: a local Ray instance on loopback, the repo root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_local():
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


# toy_evaluator.py lives beside the tests and is shipped to Ray workers by value
import sys  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

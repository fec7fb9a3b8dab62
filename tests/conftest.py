"""Shared fixtures: a local Ray instance on loopback, the repo root, the merge tests'
source folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Ray reads this at import: with it, every node a test starts (cluster_utils raylets
# included) binds 127.0.0.1 instead of this machine's address.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture
def ray_local():
    """A private local Ray of 2 CPUs, started once and shared by the tests that use it
    (a test that joins another cluster, as test_node_failure.py does, disconnects it; the
    next user starts a fresh one). Ray shuts it down when the session ends."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
        )
    yield ray


@pytest.fixture(scope="session")
def merge_sources(tmp_path_factory) -> dict[str, Path]:
    """What a VLM x LLM merge reads (zoo_builders.save_merge_sources of the default
    sized_llama_config()): "base", "vlm_lm", "ja", "med" and "llava". Shared by the merge
    tests, so read-only: a test that edits a source builds its own."""
    from zoo_builders import save_merge_sources, sized_llama_config

    return save_merge_sources(tmp_path_factory.mktemp("merge_sources"), sized_llama_config())


@pytest.fixture(scope="session")
def wide_llama(tmp_path_factory) -> Path:
    """A Llama like merge_sources' base but for a wider MLP (intermediate 256): a source
    whose tensors do not fit theirs."""
    from zoo_builders import save_random_llama, sized_llama_config

    return save_random_llama(tmp_path_factory.mktemp("wide"), sized_llama_config(intermediate=256))

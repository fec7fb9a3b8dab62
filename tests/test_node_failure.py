"""Node loss on a real multi-node Ray cluster: a head and worker raylets on 127.0.0.1
(`ray.cluster_utils.Cluster`, as Ray's own fault-tolerance tests), GPUs declared on the
workers so that actors can only live there. The search joins it through
`resources.ray_address`. A node is removed at a chosen point of the search (after its
n-th evaluation, from the driver), never by racing a timer: its actors' evaluations hang
until the node is gone."""

import functools
import re
from collections import Counter

import pytest
import ray
import ray.cloudpickle
import toy_evaluator
from ray.cluster_utils import Cluster
from test_search_ray import toy_config

from jradievo_ray import faults
from jradievo_ray.errors import SearchStopped
from jradievo_ray.search import checkpoint, journal
from jradievo_ray.search.actors import ActorPool
from jradievo_ray.search.evaluation import GenomeTask
from jradievo_ray.search.resources import ActorResources
from jradievo_ray.search.run import run_search

ray.cloudpickle.register_pickle_by_value(toy_evaluator)
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

GPUS = 2  # per worker node: two actors of one GPU each


@pytest.fixture(scope="module")
def cluster():
    head = {
        "num_cpus": 0,
        "include_dashboard": False,
        # A dead node is declared dead after ~1 s instead of Ray's default ~30 s.
        "_system_config": {
            "health_check_initial_delay_ms": 0,
            "health_check_period_ms": 500,
            "health_check_failure_threshold": 2,
        },
    }
    ray.shutdown()  # the search joins this cluster, not a local Ray an earlier test left
    c = Cluster(initialize_head=True, head_node_args=head)
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture
def workers(cluster):
    """Adds worker nodes; removes whatever workers are left after the test."""
    added = []

    def add(n: int = 1, gpus: int = GPUS):
        nodes = [cluster.add_node(num_cpus=2, num_gpus=gpus) for _ in range(n)]
        cluster.wait_for_nodes()
        added.extend(nodes)
        return nodes

    yield add
    for node in added:
        if node in cluster.worker_nodes:
            cluster.remove_node(node)


def cluster_config(cluster, **overrides):
    sets = {
        "search.population": 8,
        "resources.num_actors": 4,
        "resources.num_gpus_per_actor": 1,
        "resources.num_cpus_per_actor": 0.5,
        "resources.ray_address": cluster.address,
        **overrides,
    }
    return toy_config(**sets)


def on_evaluation(monkeypatch, n: int, action):
    """Run `action` in the driver right after the search's n-th evaluation is recorded."""
    count = 0

    def point(name: str) -> None:
        nonlocal count
        if name == "evaluated":
            count += 1
            if count == n:
                action()

    monkeypatch.setattr(faults, "point", point)


def hanging_on(node, tmp_path, after_hung=GPUS):
    """The toy objective, hanging on `node`, the others starting to evaluate once
    `after_hung` actors (by default all of that node's) are hung."""
    hang_dir = tmp_path / "hung"
    hang_dir.mkdir()
    return functools.partial(
        toy_evaluator.ToyEvaluator,
        hang_on_node=node.node_id,
        hang_dir=str(hang_dir),
        after_hung=after_hung,
    )


def generations(result):
    return [{k: v for k, v in g.items() if k != "seconds"} for g in result["generations"]]


@pytest.fixture(scope="module")
def reference(cluster, tmp_path_factory):
    """The same search with no fault (two healthy worker nodes)."""
    nodes = [cluster.add_node(num_cpus=2, num_gpus=GPUS) for _ in range(2)]
    cluster.wait_for_nodes()
    out = tmp_path_factory.mktemp("reference")
    result = run_search(cluster_config(cluster), out, evaluator_factory=toy_evaluator.ToyEvaluator)
    for node in nodes:
        cluster.remove_node(node)
    return result


@pytest.mark.parametrize("add_one", [True, False], ids=["node-added", "none-added"])
def test_node_lost_mid_generation(cluster, workers, reference, monkeypatch, tmp_path, add_one):
    doomed, _ = workers(2)
    factory = hanging_on(doomed, tmp_path)

    def lose_node():
        cluster.remove_node(doomed, allow_graceful=False)
        if add_one:
            workers(1)

    on_evaluation(monkeypatch, 3, lose_node)  # generation 0 has 8 genomes
    lines = []
    result = run_search(
        cluster_config(cluster), tmp_path, evaluator_factory=factory, log=lines.append
    )

    assert result["best"] == reference["best"]  # generational: the no-fault result
    assert generations(result) == generations(reference)
    entries = journal.read(tmp_path / "evaluations.jsonl")
    assert all(e["error"] is None for e in entries)  # none penalised for the loss
    assert doomed.node_id not in {e["node"] for e in entries}
    assert sum(e["attempt"] == 2 for e in entries) == 2  # the two hung genomes, retried
    lost = [line for line in lines if re.match(rf"actor \d on node {doomed.node_id} lost", line)]
    assert len(lost) == 2, lines
    assert "3 of 4 actors remain" in lost[0] and "2 of 4 actors remain" in lost[1]
    if not add_one:  # no node has room: the replacements never start, nothing waits on them
        assert not any(re.match(r"actor \d replaced on node", line) for line in lines)


def test_node_lost_in_steady_state(cluster, workers, monkeypatch, tmp_path):
    doomed, _ = workers(2)
    factory = hanging_on(doomed, tmp_path)
    on_evaluation(monkeypatch, 5, lambda: cluster.remove_node(doomed, allow_graceful=False))
    cfg = cluster_config(cluster, **{"search.dispatch": "steady_state", "search.evaluations": 24})
    run_search(cfg, tmp_path, evaluator_factory=factory, log=print)
    entries = journal.read(tmp_path / "evaluations.jsonl")
    assert len(entries) == 24 and all(e["error"] is None for e in entries)
    assert len({tuple(e["genome"]) for e in entries}) == 24
    assert (
        not (tmp_path / "inflight.json").exists()
        or (tmp_path / "inflight.json").read_text() == "[]"
    )


def test_no_actor_left_stops_resumably(cluster, workers, reference, monkeypatch, tmp_path):
    (only,) = workers(1)
    cfg = cluster_config(
        cluster, **{"resources.num_actors": 2, "resources.actor_start_timeout_s": 3}
    )
    frozen = tmp_path / "frozen"
    factory = functools.partial(toy_evaluator.ToyEvaluator, hang_if=str(frozen))

    def lose_the_only_node():
        frozen.touch()  # what is sent from now on never returns: the node dies with it
        cluster.remove_node(only, allow_graceful=False)

    on_evaluation(monkeypatch, 8, lose_the_only_node)  # the last of generation 0
    with pytest.raises(SearchStopped) as stop:
        run_search(cfg, tmp_path, evaluator_factory=factory, log=print)
    message = str(stop.value)
    assert "none could be placed within resources.actor_start_timeout_s (3 s)" in message
    assert "0.5 CPU, 1 GPU" in message and f"jradievo search --resume {tmp_path}" in message
    assert checkpoint.load(tmp_path).gen == 0  # generation 1 was under way
    kept = journal.read(tmp_path / "evaluations.jsonl")
    assert len(kept) == 8

    frozen.unlink()

    monkeypatch.setattr(faults, "point", lambda name: None)
    workers(1)
    resumed = run_search(cfg, tmp_path, resume=True, evaluator_factory=factory, log=print)
    assert resumed["best"] == reference["best"]
    assert generations(resumed) == generations(reference)
    entries = journal.read(tmp_path / "evaluations.jsonl")
    assert entries[: len(kept)] == kept
    assert len({tuple(e["genome"]) for e in entries}) == len(entries)  # nothing evaluated twice


def test_replacements_start_on_a_node_added_later(cluster, workers, tmp_path):
    (old,) = workers(1)
    lines = []
    factory = hanging_on(old, tmp_path, after_hung=0)  # what reaches the old node hangs
    pool = ActorPool(factory, 2, ActorResources(0.5, 1), 2, lines.append)
    pool.start_all()
    cluster.remove_node(old, allow_graceful=False)
    (new,) = workers(1)
    genomes = [[0.1 * i] * 8 for i in range(4)]
    placements = {}
    outcomes = pool.map([GenomeTask(g) for g in genomes], lambda i, _, p: placements.update({i: p}))
    pool.start_all()  # the replacement the map did not wait for
    pool.shutdown()
    assert [o.fitness for o in outcomes] == [
        toy_evaluator.ToyEvaluator().evaluate_genome(g).fitness for g in genomes
    ]
    assert {p.node for p in placements.values()} == {new.node_id}
    assert (
        sum(
            line.startswith(f"actor {a} on node {old.node_id} lost")
            for a in (0, 1)
            for line in lines
        )
        == 2
    )
    assert sum(f"replaced on node {new.node_id}" in line for line in lines) == 2


@pytest.mark.parametrize(("placement", "per_node"), [("spread", [2, 2]), ("pack", [4])])
def test_actors_spread_across_nodes_or_pack(cluster, workers, placement, per_node):
    workers(2, gpus=4)
    pool = ActorPool(toy_evaluator.ToyEvaluator, 4, ActorResources(0.5, 1), 2, placement=placement)
    pool.start_all()
    counts = sorted(Counter(pool.nodes).values(), reverse=True)
    pool.shutdown()
    assert counts == per_node

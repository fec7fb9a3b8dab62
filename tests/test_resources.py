import json
import subprocess
import sys
import textwrap

import pytest

from jradievo_ray.config import InferenceConfig, ResourcesConfig
from jradievo_ray.errors import UserError
from jradievo_ray.search.resources import actor_resources, check_fits, cluster_demand


def _res(backend="vllm", tp=1, gpus=0.0, cpus=1.0):
    return actor_resources(
        InferenceConfig(backend=backend, tensor_parallel_size=tp),
        ResourcesConfig(num_gpus_per_actor=gpus, num_cpus_per_actor=cpus),
    )


def test_single_device_actors_take_the_configured_share():
    assert _res("transformers").bundles == [{"CPU": 1.0}]
    half = _res("vllm", gpus=0.5, cpus=2)
    assert (half.num_cpus, half.num_gpus) == (2, 0.5)
    assert half.bundles == [{"CPU": 2, "GPU": 0.5}]


def test_tensor_parallel_actor_owns_its_gpus_on_one_node():
    for gpus in (0.0, 4.0):  # unset: follows the tensor-parallel size
        res = _res("vllm", tp=4, gpus=gpus, cpus=8)
        assert res.num_gpus == 4 and res.bundles == [{"CPU": 8, "GPU": 4}]
    assert cluster_demand(_res("vllm", tp=4, cpus=8), 3) == {"CPU": 24, "GPU": 12}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "transformers", "tp": 2}, "need inference.backend vllm"),
        ({"tp": 2, "gpus": 1}, "num_gpus_per_actor: 1, but inference.tensor_parallel_size is 2"),
        ({"tp": 2, "gpus": 0.5}, "owns exactly its tensor-parallel GPUs"),
    ],
)
def test_inconsistent_configs_are_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        _res(**kwargs)


def test_check_fits_names_the_missing_resource():
    check_fits({"CPU": 2, "GPU": 4}, {"CPU": 16, "GPU": 4, "memory": 1e9})
    with pytest.raises(UserError, match="need 8 GPU in all, the Ray cluster has 4"):
        check_fits({"CPU": 2, "GPU": 8}, {"CPU": 16, "GPU": 4})
    with pytest.raises(UserError, match="has 0"):
        check_fits({"GPU": 1}, {"CPU": 16})


# A fake two-node cluster: Ray hands out GPU ids it was told exist, so placement is real.
PLACEMENT = textwrap.dedent(
    """
    import json, ray
    from ray.cluster_utils import Cluster
    from jradievo_ray.config import InferenceConfig, ResourcesConfig
    from jradievo_ray.search.actors import ActorPool
    from jradievo_ray.search.evaluation import STAGES, Evaluation, GenomeTask
    from jradievo_ray.search.resources import actor_resources, check_fits, cluster_demand

    class GpuProbe:
        def evaluate_genome(self, genome):
            gpus = [float(g) for g in ray.get_gpu_ids()]
            return Evaluation(0.0, {"gpus": gpus}, dict.fromkeys(STAGES, 0.0))

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "num_gpus": 0})
    for _ in range(2):
        cluster.add_node(num_cpus=1, num_gpus=2)
    ray.init(address=cluster.address, log_to_driver=False)
    res = actor_resources(InferenceConfig(backend="vllm", tensor_parallel_size=2),
                          ResourcesConfig(num_cpus_per_actor=0.5))
    check_fits(cluster_demand(res, 2), ray.cluster_resources())
    try:
        check_fits(cluster_demand(res, 3), ray.cluster_resources())
        too_many = None
    except Exception as exc:
        too_many = str(exc)

    pool = ActorPool(GpuProbe, 2, res, max_retries=0)
    pool.start_all()  # both built, so the two tasks go to two actors
    seen = []
    outcomes = pool.map(
        [GenomeTask([0.0]), GenomeTask([0.0])], lambda i, out, where: seen.append(where.node)
    )
    out = [[node, o.metrics["gpus"]] for node, o in zip(seen, outcomes)]
    pool.shutdown()
    print("RESULT " + json.dumps({"actors": out, "too_many": too_many}))
    ray.shutdown()
    cluster.shutdown()
    """
)


@pytest.mark.integration
def test_tensor_parallel_actors_on_a_fake_multi_gpu_cluster():
    run = subprocess.run(
        [sys.executable, "-c", PLACEMENT], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    (node_a, gpus_a), (node_b, gpus_b) = result["actors"]
    assert len(gpus_a) == len(gpus_b) == 2  # each actor sees its two GPUs
    assert node_a != node_b  # a whole node each: two GPUs per node
    assert "need 6 GPU in all, the Ray cluster has 4" in result["too_many"]

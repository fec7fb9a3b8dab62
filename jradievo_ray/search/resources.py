"""Ray resources of one evaluation actor, derived from the config (pure; no Ray here).

An actor holds one generator. With vLLM and `inference.tensor_parallel_size` = N > 1 the
actor owns N GPUs of one node: its engine runs N worker processes ("mp" executor) on the
GPUs Ray assigned to the actor (CUDA_VISIBLE_DEVICES), and the merge runs in the actor on
the first of them. Each actor is one bundle of the pool's placement group, so its GPUs
are reserved together on one node or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from jradievo_ray.config import InferenceConfig, Placement, ResourcesConfig
from jradievo_ray.errors import UserError


@dataclass(frozen=True)
class ActorResources:
    num_cpus: float
    num_gpus: float

    @property
    def bundles(self) -> list[dict[str, float]]:
        """Placement-group bundles of one actor (one bundle: everything on one node)."""
        bundle = {"CPU": self.num_cpus}
        if self.num_gpus:
            bundle["GPU"] = self.num_gpus
        return [bundle]


def group_strategy(placement: Placement) -> str:
    """Ray's placement-group strategy for `resources.placement`. Both are soft: SPREAD puts
    the bundles on as many nodes as it can, so a lost node takes the fewest actors with
    it; PACK on as few as it can (fewer nodes to keep, sources loaded on fewer hosts)."""
    return {"spread": "SPREAD", "pack": "PACK"}[placement]


def actor_resources(inference: InferenceConfig, resources: ResourcesConfig) -> ActorResources:
    tp = inference.tensor_parallel_size
    gpus = resources.num_gpus_per_actor
    if tp == 1:
        return ActorResources(resources.num_cpus_per_actor, gpus)
    if inference.backend != "vllm":
        raise UserError(
            f"inference.tensor_parallel_size: {tp} GPUs per actor need inference.backend "
            f"vllm (the {inference.backend} backend runs on one device)"
        )
    if gpus == 0:
        gpus = float(tp)
    if gpus != tp:
        raise UserError(
            f"resources.num_gpus_per_actor: {gpus:g}, but inference.tensor_parallel_size is "
            f"{tp}; an actor owns exactly its tensor-parallel GPUs (set both to {tp})"
        )
    return ActorResources(resources.num_cpus_per_actor, gpus)


def cluster_demand(actor: ActorResources, num_actors: int) -> dict[str, float]:
    """Resources all actors need at once."""
    total: dict[str, float] = {}
    for _ in range(num_actors):
        for bundle in actor.bundles:
            for key, value in bundle.items():
                total[key] = total.get(key, 0) + value
    return total


def check_fits(demand: dict[str, float], available: dict[str, float]) -> None:
    """UserError naming the first resource the cluster lacks (Ray would wait forever)."""
    for key, need in demand.items():
        have = available.get(key, 0)
        if need > have:
            raise UserError(
                f"resources: the actors need {need:g} {key} in all, the Ray cluster has "
                f"{have:g}; lower resources.num_actors or the per-actor resources"
            )

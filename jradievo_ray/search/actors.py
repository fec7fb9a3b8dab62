"""Thin Ray actors around an evaluator, and a pool that survives actor death.

The evaluator comes from a picklable factory, so the same pool runs the real
GenomeEvaluator on GPUs and tiny toy objectives in tests; tasks and outcomes are the types
of search/evaluation.py.
"""

from __future__ import annotations

import re
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import ray
from ray.exceptions import RayActorError
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from jradievo_ray.errors import UserError
from jradievo_ray.search.evaluation import Evaluator, Failure, Outcome, Task, run_task
from jradievo_ray.search.journal import Placement
from jradievo_ray.search.resources import ActorResources


class ActorStartError(RuntimeError):
    """An actor's evaluator failed to build (bad model folder, out of memory ...)."""


def start_error(exc: Exception) -> Exception:
    """What an actor's failed __init__ means to the user: its own UserError (bad input the
    driver could not check, such as an s3:// manifest), else an ActorStartError."""
    found = re.search(rf"{re.escape(UserError.__module__)}\.UserError: (.+)", str(exc))
    if found:
        return UserError(found.group(1))
    return ActorStartError(f"evaluation actor could not start: {exc}")


class EvalActor:
    """Holds one evaluator (sources resident) for its whole life."""

    def __init__(self, factory: Callable[[], Evaluator], num_threads: int):
        import torch

        torch.set_num_threads(max(1, num_threads))
        self.evaluator = factory()

    def node_id(self) -> str:
        """The Ray node this actor lives on."""
        return ray.get_runtime_context().get_node_id()

    def run(self, task: Task) -> Outcome:
        """Evaluate one task; a failure comes back as data, it never kills the search."""
        try:
            return run_task(self.evaluator, task)
        except Exception as exc:  # noqa: BLE001 - any genome failure is penalised, not fatal
            return Failure(f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=3))


class ActorPool:
    """Dispatches tasks to persistent actors as they free up; replaces dead actors."""

    def __init__(
        self,
        factory: Callable[[], Any],
        size: int,
        resources: ActorResources,
        max_retries: int,
        log: Callable[[str], None] = print,
    ):
        self._remote = ray.remote(EvalActor).options(
            num_cpus=resources.num_cpus, num_gpus=resources.num_gpus
        )
        self._factory = factory
        self._resources = resources
        self._threads = max(1, int(resources.num_cpus))
        self.max_retries = max_retries
        self.log = log
        self.size = size
        self._groups: list[PlacementGroup | None] = []
        self.actors: list[Any] = []  # started by the first map: a resumed run may need none
        self._nodes: list[str | None] = []  # each actor's Ray node, once it has answered
        self.replaced = 0

    def _start(self) -> None:
        while len(self.actors) < self.size:
            actor, group = self._spawn()
            self.actors.append(actor)
            self._groups.append(group)
            self._nodes.append(None)

    def _spawn(self) -> tuple[Any, PlacementGroup | None]:
        """A new actor; one owning several GPUs gets them together on one node."""
        if self._resources.num_gpus <= 1:
            return self._remote.remote(self._factory, self._threads), None
        group = placement_group(self._resources.bundles, strategy=self._resources.strategy)
        strategy = PlacementGroupSchedulingStrategy(
            placement_group=group, placement_group_capture_child_tasks=True
        )
        actor = self._remote.options(scheduling_strategy=strategy).remote(
            self._factory, self._threads
        )
        return actor, group

    def _replace(self, a: int) -> None:
        old = self._groups[a]
        self.actors[a], self._groups[a] = self._spawn()
        self._nodes[a] = None
        if old is not None:
            remove_placement_group(old)
        self.replaced += 1

    def _node(self, a: int) -> str | None:
        """Actor a's Ray node (asked once per actor, after its first answer)."""
        if self._nodes[a] is None:
            try:
                self._nodes[a] = ray.get(self.actors[a].node_id.remote())
            except RayActorError:
                return None
        return self._nodes[a]

    def map(
        self,
        tasks: list[Task],
        on_result: Callable[[int, Outcome, Placement], None] | None = None,
    ) -> list[Outcome]:
        """Run tasks; outcomes in task order, each also given to `on_result` as it arrives,
        with where it ran."""
        results: list[Outcome | None] = [None] * len(tasks)

        def arrived(i: int, outcome: Outcome, placement: Placement) -> None:
            results[i] = outcome
            if on_result:
                on_result(i, outcome, placement)

        self.stream(iter(enumerate(tasks)), arrived)
        return results  # type: ignore[return-value]

    def stream(
        self,
        tasks: Iterator[tuple[int, Task]],
        on_result: Callable[[int, Outcome, Placement], None],
    ) -> None:
        """Keep every actor busy: each time one is free, the next (key, task) is drawn from
        `tasks` (a generator may breed it then, from the results so far); ends when `tasks`
        is exhausted and nothing is in flight. A task whose actor dies is retried on a
        fresh actor up to max_retries times, then reported as a Failure."""
        self._start()
        retry: deque[tuple[int, Task]] = deque()
        attempts: dict[int, int] = {}
        idle = list(range(len(self.actors)))
        inflight: dict[ray.ObjectRef, tuple[int, Task, int]] = {}
        exhausted = False
        while True:
            while idle and (retry or not exhausted):
                if retry:
                    key, task = retry.popleft()
                else:
                    drawn = next(tasks, None)
                    if drawn is None:
                        exhausted = True
                        break
                    key, task = drawn
                a = idle.pop()
                inflight[self.actors[a].run.remote(task)] = (key, task, a)
            if not inflight:
                return
            done, _ = ray.wait(list(inflight), num_returns=1)
            for ref in done:
                key, task, a = inflight.pop(ref)
                try:
                    result = ray.get(ref)
                except RayActorError as exc:  # died, its node died, or unreachable
                    if exc.actor_init_failed:  # every replacement would fail the same way
                        raise start_error(exc) from None
                    attempts[key] = attempts.get(key, 0) + 1
                    node = self._nodes[a]
                    self.log(f"actor {a} lost ({type(exc).__name__}); replacing it")
                    self._replace(a)
                    idle.append(a)
                    if attempts[key] <= self.max_retries:
                        retry.append((key, task))
                        continue
                    result = Failure(f"actor died {attempts[key]} times")
                    placement = Placement(a, node, attempts[key])
                else:
                    idle.append(a)
                    placement = Placement(a, self._node(a), attempts.get(key, 0) + 1)
                on_result(key, result, placement)

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        for group in self._groups:
            if group is not None:
                remove_placement_group(group)

"""Thin Ray actors around an evaluator, and a pool that survives actor and node loss.

The evaluator comes from a picklable factory, so the same pool runs the real
GenomeEvaluator on GPUs and tiny toy objectives in tests; tasks and outcomes are the types
of search/evaluation.py.

An actor goes through three states: placed (its process is up on a node), built (its
evaluator is loaded) and lost. The pool sends work only to built actors, so a replacement
that no node has room for holds nothing up: the search goes on with the actors that
remain, and the replacement joins once a node has room (one is added). Only when no actor
is left, and Ray has found none of the waiting ones a node, does a deadline run:
after `start_timeout_s` the pool stops the search with SearchStopped (its run folder
resumes). Starting a process and loading models have no deadline.
"""

from __future__ import annotations

import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError
from ray.util.placement_group import (
    PlacementGroup,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from jradievo_ray.errors import SearchStopped, UserError
from jradievo_ray.search.evaluation import Evaluator, Failure, Outcome, Task, run_task
from jradievo_ray.search.journal import Placement
from jradievo_ray.search.metrics import SearchMetrics
from jradievo_ray.search.resources import ActorResources, group_strategy

ROOM_POLL_S = 1.0  # while no actor can work: how often to ask Ray whether one has room


class ActorStartError(RuntimeError):
    """An actor's evaluator failed to build (bad model folder, out of memory ...)."""


def start_error(exc: Exception) -> Exception:
    """What an actor's failed build means to the user: its own UserError (bad input the
    driver could not check, such as an s3:// manifest), else an ActorStartError."""
    cause = exc.cause if isinstance(exc, RayTaskError) else exc
    if isinstance(cause, UserError):
        return UserError(str(cause))
    return ActorStartError(f"evaluation actor could not start: {cause}")


class EvalActor:
    """Holds one evaluator (sources resident) for its whole life."""

    def __init__(self, num_threads: int):
        self.num_threads = num_threads
        self.evaluator: Evaluator | None = None

    def node_id(self) -> str:
        """The Ray node this actor lives on (answers as soon as the actor is placed)."""
        return ray.get_runtime_context().get_node_id()

    def build(self, factory: Callable[[], Evaluator]) -> None:
        """Load the evaluator: the slow part of an actor's start (sources, engine)."""
        import torch

        torch.set_num_threads(max(1, self.num_threads))
        self.evaluator = factory()

    def run(self, task: Task) -> Outcome:
        """Evaluate one task; a failure comes back as data, it never kills the search."""
        assert self.evaluator is not None, "run before build"
        try:
            return run_task(self.evaluator, task)
        except Exception as exc:  # noqa: BLE001 - any genome failure is penalised, not fatal
            return Failure(f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=3))


class ActorPool:
    """Dispatches tasks to persistent actors as they free up; replaces lost actors.

    All actors share one placement group, one bundle each: a bundle never spans nodes (a
    tensor-parallel actor's GPUs are together), and the group's strategy spreads the
    bundles across nodes or packs them (`placement`). When a node dies, Ray places its
    bundles again as soon as some node has room."""

    def __init__(
        self,
        factory: Callable[[], Any],
        size: int,
        resources: ActorResources,
        max_retries: int,
        log: Callable[[str], None] = print,
        placement: str = "spread",
        start_timeout_s: float = 900.0,
        metrics: SearchMetrics | None = None,
    ):
        self._remote = ray.remote(EvalActor)
        self._factory = factory
        self._resources = resources
        self._strategy = group_strategy(placement)
        self._threads = max(1, int(resources.num_cpus))
        self.max_retries = max_retries
        self.start_timeout_s = start_timeout_s
        self.log = log
        self.metrics = metrics
        self.size = size
        self._group: PlacementGroup | None = None
        self.actors: list[Any] = []
        self.nodes: list[str | None] = []  # each actor's Ray node, once placed
        self._placing: dict[ray.ObjectRef, int] = {}  # node_id probe -> actor index
        self._building: dict[ray.ObjectRef, int] = {}  # build call -> actor index
        self._built: set[int] = set()  # actors that can take work
        self._awaiting_room: set[int] = set()  # lost actors whose replacement is not placed
        self.replaced = 0
        self.waited_seconds = 0.0  # time spent with no actor built (starts, node loss)

    @property
    def remaining(self) -> int:
        """Actors not lost: built, loading, or starting for the first time (a lost actor's
        replacement counts again once it is placed)."""
        return self.size - len(self._awaiting_room)

    def _start(self) -> None:
        if self._group is None:
            self._group = placement_group(
                self._resources.bundles * self.size, strategy=self._strategy
            )
        while len(self.actors) < self.size:
            self.actors.append(None)
            self.nodes.append(None)
            self._spawn(len(self.actors) - 1)

    def start_all(self) -> None:
        """Start every actor now and wait until all are built (benchmarks time the search
        alone this way); normally actors start with the first task."""
        self._start()
        while self._placing or self._building:
            done, _ = ray.wait([*self._placing, *self._building], num_returns=1)
            self._starting(done[0])

    def _spawn(self, a: int) -> None:
        """A new actor in bundle a of the group; it is placed whenever Ray has room."""
        strategy = PlacementGroupSchedulingStrategy(
            placement_group=self._group,
            placement_group_bundle_index=a,
            placement_group_capture_child_tasks=True,
        )
        actor = self._remote.options(
            num_cpus=self._resources.num_cpus,
            num_gpus=self._resources.num_gpus,
            scheduling_strategy=strategy,
        ).remote(self._threads)
        self.actors[a] = actor
        self.nodes[a] = None
        self._placing[actor.node_id.remote()] = a

    def _lose(self, a: int, exc: Exception) -> None:
        """Actor a died (or its node did): say so, and start a replacement in its bundle."""
        self._built.discard(a)
        ray.kill(self.actors[a], no_restart=True)  # an unreachable one must free its bundle
        node = self.nodes[a] or "not yet placed"
        self._awaiting_room.add(a)
        self.log(
            f"actor {a} on node {node} lost ({type(exc).__name__}); {self.remaining} of "
            f"{self.size} actors remain; a replacement starts when a node has room"
        )
        self._spawn(a)
        self.replaced += 1
        if self.metrics:
            self.metrics.replaced()

    def _starting(self, ref: ray.ObjectRef) -> int | None:
        """Handle a finished placement probe or build; the actor index if it is now built."""
        if ref in self._placing:
            a = self._placing.pop(ref)
            try:
                self.nodes[a] = ray.get(ref)
            except RayActorError as exc:
                self._lose(a, exc)
                return None
            if a in self._awaiting_room:
                self._awaiting_room.discard(a)
                self.log(
                    f"actor {a} replaced on node {self.nodes[a]}; {self.remaining} of "
                    f"{self.size} actors"
                )
            self._building[self.actors[a].build.remote(self._factory)] = a
            return None
        a = self._building.pop(ref)
        try:
            ray.get(ref)
        except RayActorError as exc:
            self._lose(a, exc)
            return None
        except Exception as exc:  # noqa: BLE001 - every replacement would fail the same way
            self.shutdown()  # its slots go back to the cluster
            raise start_error(exc) from None
        self._built.add(a)
        return a

    def _room_found(self) -> bool:
        """Whether Ray has given a node to the bundle of any actor still to be placed."""
        nodes = placement_group_table(self._group)["bundles_to_node_id"]
        return any(nodes.get(a) for a in self._placing.values())

    def _stopped(self) -> SearchStopped:
        bundle = ", ".join(f"{v:g} {k}" for k, v in self._resources.bundles[0].items())
        return SearchStopped(
            f"no evaluation actor is left and none could be placed within "
            f"resources.actor_start_timeout_s ({self.start_timeout_s:g} s): no node has room "
            f"for an actor ({bundle})"
        )

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
        """Keep every built actor busy: each time one is free, the next (key, task) is drawn
        from `tasks` (a generator may breed it then, from the results so far); ends when
        `tasks` is exhausted and nothing is in flight, whatever replacements are still
        waiting for room. A task whose actor dies is retried on another actor up to
        max_retries times, then reported as a Failure."""
        first = next(tasks, None)
        if first is None:  # nothing to do: start no actor (a resumed run may need none)
            return
        queue: deque[tuple[int, Task]] = deque([first])  # drawn or retried, not yet sent
        self._start()
        attempts: dict[int, int] = {}
        idle = sorted(self._built)
        inflight: dict[ray.ObjectRef, tuple[int, Task, int]] = {}
        exhausted = False
        empty_since: float | None = None  # when the pool last had no built actor
        while True:
            while idle:
                if queue:
                    key, task = queue.popleft()
                elif exhausted or (drawn := next(tasks, None)) is None:
                    exhausted = True
                    break
                else:
                    key, task = drawn
                a = idle.pop()
                inflight[self.actors[a].run.remote(task)] = (key, task, a)
            self._observe(len(inflight))
            if not inflight and not queue and exhausted:
                return
            timeout = None
            if not self._built and not self._building:  # nothing can work until one starts
                timeout = ROOM_POLL_S
                if self._room_found():  # its process is starting: no deadline for that
                    empty_since = None
                else:
                    empty_since = empty_since or time.monotonic()
                    left = self.start_timeout_s - (time.monotonic() - empty_since)
                    if left <= 0:
                        raise self._stopped()
                    timeout = min(left, ROOM_POLL_S)
            else:
                empty_since = None
            waiting = [*inflight, *self._placing, *self._building]
            t0 = time.monotonic()
            done, _ = ray.wait(waiting, num_returns=1, timeout=timeout)
            if not self._built:
                self.waited_seconds += time.monotonic() - t0
            for ref in done:
                if ref not in inflight:
                    built = self._starting(ref)
                    if built is not None:
                        idle.append(built)
                    continue
                key, task, a = inflight.pop(ref)
                try:
                    result = ray.get(ref)
                except RayActorError as exc:  # died, its node died, or unreachable
                    attempts[key] = attempts.get(key, 0) + 1
                    node = self.nodes[a]
                    self._lose(a, exc)
                    if attempts[key] <= self.max_retries:
                        queue.append((key, task))
                        continue
                    result = Failure(f"actor died {attempts[key]} times")
                    placement = Placement(a, node, attempts[key])
                else:
                    idle.append(a)
                    placement = Placement(a, self.nodes[a], attempts.get(key, 0) + 1)
                on_result(key, result, placement)

    def _observe(self, in_flight: int) -> None:
        if self.metrics:
            self.metrics.actors(len(self._built), in_flight)

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        if self._group is not None:
            remove_placement_group(self._group)
            self._group = None
        self.actors, self.nodes = [], []
        self._placing, self._building, self._built, self._awaiting_room = {}, {}, set(), set()
        self._observe(0)

"""The Pareto front of a search's evaluations and the rule that picks `best` from it
(`search.pick`). Pure functions over objective vectors, all maximised."""

from __future__ import annotations

from collections.abc import Sequence

from deap import tools

from jradievo_ray.search.nsga2 import multi_individual


def front(points: Sequence[tuple[float, ...]]) -> list[int]:
    """Indices of the non-dominated points, in input order (DEAP's non-dominated sort).
    Points with equal objective vectors do not dominate each other: all are kept."""
    if not points:
        return []
    inds = [multi_individual([i], p) for i, p in enumerate(points)]
    first = tools.sortNondominated(inds, len(inds), first_front_only=True)[0]
    return sorted(int(ind[0]) for ind in first)


def knee(points: Sequence[tuple[float, ...]]) -> int:
    """Index of the point nearest the ideal point (1, ..., 1) once each objective is scaled
    to [0, 1] over `points` (a constant objective counts as 1 for all); the first on ties."""
    lows = [min(col) for col in zip(*points, strict=True)]
    highs = [max(col) for col in zip(*points, strict=True)]

    def gap(p: tuple[float, ...]) -> float:
        ranges = zip(p, lows, highs, strict=True)
        scaled = [(v - lo) / (hi - lo) if hi > lo else 1.0 for v, lo, hi in ranges]
        return sum((1.0 - x) ** 2 for x in scaled)

    return min(range(len(points)), key=lambda i: gap(points[i]))


def pick(
    rule: str,
    objectives: Sequence[str],
    points: Sequence[tuple[float, ...]],
    fitness: Sequence[float],
) -> int:
    """Index (into the front's `points`) of the member `rule` picks: knee, or the highest on
    one objective (ties: higher fitness, then the first). max_fitness is the search's
    hall of fame, not a front rule."""
    if rule == "knee":
        return knee(points)
    j = list(objectives).index(rule)
    return max(range(len(points)), key=lambda i: (points[i][j], fitness[i], -i))

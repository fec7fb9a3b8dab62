"""The Pareto front of a search, the `search.pick` rules, and the settings around them."""

from __future__ import annotations

import random

import pytest
from test_config import run_cli

from jradievo_ray.config import load_config
from jradievo_ray.errors import UserError
from jradievo_ray.search.pareto import front, knee, pick


def dominated(p, q) -> bool:
    """q dominates p (all maximised)."""
    return all(b >= a for a, b in zip(p, q, strict=True)) and q != p


def test_the_front_is_exactly_the_non_dominated_points_in_input_order():
    rng = random.Random(5)
    for _ in range(30):
        points = [tuple(rng.choice(range(6)) for _ in range(3)) for _ in range(25)]
        expected = [i for i, p in enumerate(points) if not any(dominated(p, q) for q in points)]
        assert front(points) == expected
    assert front([(1.0, 2.0), (1.0, 2.0), (0.5, 0.5)]) == [0, 1]  # equal points: both kept
    assert front([]) == []


def test_knee_is_the_member_nearest_the_scaled_ideal_point():
    points = [(100.0, 0.0), (62.0, 60.0), (60.0, 62.0), (0.0, 100.0)]
    assert knee(points) == 1  # the first of two equally near
    assert knee([(10.0, 5.0), (12.0, 5.0)]) == 1  # a constant objective is no tie-breaker


def test_pick_an_objective_takes_its_highest_then_the_fitter():
    points = [(90.0, 10.0), (90.0, 20.0), (40.0, 80.0)]
    objectives = ["finding_f1", "rouge_l"]
    assert pick("finding_f1", objectives, points, [50.0, 55.0, 60.0]) == 1
    assert pick("rouge_l", objectives, points, [50.0, 55.0, 60.0]) == 2
    assert pick("knee", objectives, points, [50.0, 55.0, 60.0]) == 1


@pytest.mark.parametrize(
    "sets, message",
    [
        (
            ["search.strategy=cma_es", "search.dispatch=steady_state"],
            "search: strategy cma_es: CMA-ES updates its distribution once per generation, "
            "so it cannot run with dispatch steady_state",
        ),
        (
            ["search.strategy=nsga2", "search.dispatch=steady_state"],
            "search: strategy nsga2: NSGA-II selects its parents once per generation",
        ),
        (["search.pick=bleu4", "search.objectives=[rouge_l]"], "pick: 'bleu4' is none of"),
        (["search.objectives=[rouge_l, rouge_l]"], "objectives: each at most once"),
        (["search.objectives=[fitness]"], "search.objectives.0: Input should be"),
        (["search.strategy=cmaes"], "search.strategy: Input should be"),
        (["search.sigma0=0"], "search.sigma0: Input should be greater than 0"),
    ],
)
def test_strategy_settings_are_checked(sets, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, sets)


@pytest.mark.parametrize("strategy", ["ga", "random"])
def test_ga_and_random_run_steady_state(strategy):
    cfg = load_config(None, [f"search.strategy={strategy}", "search.dispatch=steady_state"])
    assert cfg.search.chosen_strategy == strategy


def test_the_default_strategy_is_nsga2_and_ga_under_steady_state():
    assert load_config(None, []).search.chosen_strategy == "nsga2"
    steady = load_config(None, ["search.dispatch=steady_state"]).search
    assert steady.strategy is None and steady.chosen_strategy == "ga"


def test_cli_refuses_cma_es_steady_state_with_one_error_line(tmp_path):
    sets = ["--set", "search.strategy=cma_es", "--set", "search.dispatch=steady_state"]
    proc = run_cli("search", "--out", str(tmp_path / "run"), *sets)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and "cma_es" in line and "steady_state" in line
    assert "Traceback" not in proc.stderr + proc.stdout

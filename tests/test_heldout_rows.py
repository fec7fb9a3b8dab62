"""Row definitions of the held-out table on toy generators (issue: image-blind and
shuffled-image baselines). The merge and the generator are stubs here on purpose: these
tests check the logic around them; the real pipeline is exercised in test_e2e.py."""

from __future__ import annotations

import pytest

from jradievo_ray.config import ScoringConfig, load_config
from jradievo_ray.data.synthetic import write_dataset
from jradievo_ray.merge.recipe import uniform_recipe
from jradievo_ray.scoring.fitness import score_reports
from jradievo_ray.search import heldout
from jradievo_ray.search.evaluation import STAGES
from jradievo_ray.search.evaluator import GenomeEvaluator, derangement


class NoMerge:
    def merge_into(self, recipe, targets, seed=0):
        pass


class ConstantGenerator:
    def weight_targets(self):
        return {}

    def load_weights(self, named):
        raise AssertionError("the merge writes into weight_targets")

    def generate(self, requests):
        return ["心拡大を認める。"] * len(requests)

    def close(self):
        pass


class EchoGenerator(ConstantGenerator):
    """Writes the reference report of whichever image it is shown."""

    def __init__(self, by_image):
        self.by_image = by_image

    def generate(self, requests):
        return [self.by_image[r.image] for r in requests]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return write_dataset(root, seed=3, sizes={"search": 12, "heldout": 12})


def evaluator(data, generator):
    cfg = load_config(None, [f"data.search={data['search']}", f"data.heldout={data['heldout']}"])
    return GenomeEvaluator(cfg, merger=NoMerge(), generator=generator)


@pytest.mark.parametrize("n", range(2, 30))
def test_derangement_moves_every_study(n):
    perm = derangement(n, seed=n)
    assert sorted(perm) == list(range(n))
    assert all(i != p for i, p in enumerate(perm))
    assert derangement(n, seed=n) == perm


def test_constant_generator_scores_the_same_with_shuffled_images(data):
    ev = evaluator(data, ConstantGenerator())
    recipe = uniform_recipe(["vlm", "ja", "med"])
    plain = ev.evaluate_recipe(recipe, "heldout")
    shuffled = ev.evaluate_recipe(recipe, "heldout", shuffle_seed=heldout.SHUFFLE_SEED)
    assert plain.metrics == shuffled.metrics


def test_a_generator_that_reads_the_image_loses_when_images_are_shuffled(data):
    ev0 = evaluator(data, ConstantGenerator())
    by_image = {s.image: s.report_ja for s in ev0.splits["heldout"]}
    ev = evaluator(data, EchoGenerator(by_image))
    recipe = uniform_recipe(["vlm", "ja", "med"])
    plain = ev.evaluate_recipe(recipe, "heldout").metrics
    shuffled = ev.evaluate_recipe(recipe, "heldout", shuffle_seed=7).metrics
    assert plain["fitness"] == pytest.approx(100.0)
    assert shuffled["finding_f1"] < plain["finding_f1"]
    assert shuffled["fitness"] < plain["fitness"]


def test_a_search_genome_ships_scores_and_stage_seconds_a_row_also_its_details(data):
    ev = evaluator(data, ConstantGenerator())
    genome = ev.evaluate_genome([0.1, 0.5, 0.5, 0.5, 0.3, 0.3, 0.3, 1.0])
    assert genome.texts is None and genome.per_finding is None
    assert set(genome.seconds) == set(STAGES) and all(v >= 0 for v in genome.seconds.values())
    assert genome.fitness == genome.metrics["fitness"]
    row = ev.evaluate_recipe(uniform_recipe(["vlm", "ja", "med"]), "heldout")
    assert row.texts == ["心拡大を認める。"] * 12 and row.per_finding
    assert row.seconds["weight_load"] == 0.0  # merged in place into the generator


def test_blind_text_is_the_argmax_over_search_references(data):
    ev = evaluator(data, ConstantGenerator())
    refs = [s.report_ja for s in ev.splits["search"]]
    cfg = ScoringConfig()
    text, fit = heldout.best_blind_text(refs, cfg)
    brute = {t: score_reports([t] * len(refs), refs, cfg)["fitness"] for t in refs}
    assert text in refs
    assert fit == max(brute.values()) == brute[text]
    row = heldout.blind_row(text, [s.report_ja for s in ev.splits["heldout"]], cfg)
    assert row.metrics["n"] == 12
    assert (
        row.fitness
        == row.metrics["fitness"]
        == pytest.approx(
            score_reports([text] * 12, [s.report_ja for s in ev.splits["heldout"]], cfg)["fitness"]
        )
    )
    assert row.per_finding and all(0 <= v <= 100 for v in row.per_finding.values())


def test_rows_cover_sources_uniform_shuffle_and_ablations():
    names = ["vlm", "ja", "med"]
    best = uniform_recipe(names).with_weight("ja", 0.7)
    rows = heldout.recipe_rows(names, best)
    assert rows["best"] == (best, None)
    assert rows["best_images_shuffled"] == (best, heldout.SHUFFLE_SEED)
    assert rows["uniform"][0] == uniform_recipe(names)
    assert rows["source/ja"][0].sources["ja"].weight == 1.0
    assert rows["source/ja"][0].sources["vlm"].weight == 0.0
    for n in names:
        ab = rows[f"ablation/{n}"][0]
        assert ab.sources[n].weight == 0.0
        assert all(ab.sources[m] == best.sources[m] for m in names if m != n)

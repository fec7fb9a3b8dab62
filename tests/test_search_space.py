import pytest

from jradievo_ray.config import Bounds, MergeConfig
from jradievo_ray.merge.recipe import MergeRecipe, single_source_recipe, uniform_recipe
from jradievo_ray.search.space import make_space

NAMES = ["vlm", "ja", "med"]


def test_layout_and_decode():
    space = make_space(NAMES, MergeConfig())
    assert space.size == 8
    assert space.gene_names == [
        "drop_rate",
        "density/vlm",
        "density/ja",
        "density/med",
        "weight/vlm",
        "weight/ja",
        "weight/med",
        "scale",
    ]
    r = space.decode([0.2, 0.5, 0.6, 0.7, 0.1, 0.8, 0.3, 1.4])
    assert r.drop_rate == 0.2
    assert r.scale == 1.4
    assert r.sources["ja"].weight == 0.8 and r.sources["ja"].density == 0.6
    assert r.sources["vlm"].density == 0.5 and r.sources["med"].weight == 0.3
    assert r.sign_consensus is True


def test_decode_clips_to_bounds_and_checks_length():
    cfg = MergeConfig(scale=Bounds(low=0.0, high=2.0), density=Bounds(low=0.1, high=1.0))
    space = make_space(NAMES, cfg)
    r = space.decode([-1, 0.0, 5, 0.5, -3, 2, 0.5, 9])
    assert r.drop_rate == 0.0 and r.scale == 2.0
    assert r.sources["vlm"].density == 0.1 and r.sources["ja"].density == 1.0
    assert r.sources["vlm"].weight == 0.0 and r.sources["ja"].weight == 1.0
    with pytest.raises(ValueError, match="8"):
        space.decode([0.0] * 7)


def test_bounds_reach_task_arithmetic():
    """The JRadiEvo genome must be able to express plain task arithmetic (DESIGN)."""
    space = make_space(NAMES, MergeConfig(sign_consensus=False))
    r = space.decode(space.encode_uniform())
    assert r.drop_rate == 0.0 and r.scale == 1.0
    assert all(s.density == 1.0 for s in r.sources.values())
    assert r == uniform_recipe(NAMES)


def test_uniform_and_single_source_recipes():
    u = uniform_recipe(NAMES)
    assert sum(s.weight for s in u.sources.values()) == pytest.approx(1.0)
    assert not u.sign_consensus and u.drop_rate == 0 and u.scale == 1
    one = single_source_recipe(NAMES, "ja")
    assert [s.weight for s in one.sources.values()] == [0.0, 1.0, 0.0]


def test_recipe_roundtrip_and_ablation():
    space = make_space(NAMES, MergeConfig())
    r = space.decode([0.1, 0.5, 0.6, 0.7, 0.1, 0.8, 0.3, 1.4])
    assert MergeRecipe.from_dict(r.to_dict()) == r
    ab = r.with_weight("ja", 0.0)
    assert ab.sources["ja"].weight == 0.0 and ab.sources["ja"].density == 0.6
    assert ab.sources["med"] == r.sources["med"] and r.sources["ja"].weight == 0.8
    with pytest.raises(KeyError):
        r.with_weight("nope", 0.0)


def test_every_space_encodes_each_source_alone():
    names = ["vlm", "ja", "med"]
    for space in ("jradievo", "layer_groups"):
        s = make_space(names, MergeConfig(space=space))
        for name in names:
            r = s.decode(s.encode_source(name))
            assert r.drop_rate == 0.0 and r.scale == 1.0
            for sources in (r.sources, *r.groups):
                assert {n: x.weight for n, x in sources.items()} == {
                    n: float(n == name) for n in names
                }
                assert all(x.density == 1.0 for x in sources.values())
    ties = make_space(names, MergeConfig(space="method", method="ties"))
    r = ties.decode(ties.encode_source("ja"))
    assert {n: p["weight"] for n, p in r.sources.items()} == {"vlm": 0.0, "ja": 1.0, "med": 0.0}
    assert all(p["density"] == 1.0 for p in r.sources.values())

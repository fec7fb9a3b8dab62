"""Layer-group and generic method spaces: layout, bounds, decode, recipes round-trip."""

from __future__ import annotations

import pytest

from jradievo_ray.config import Bounds, MergeConfig
from jradievo_ray.merge.recipe import (
    MergeRecipe,
    MethodRecipe,
    SourceRecipe,
    group_index,
    recipe_from_dict,
)
from jradievo_ray.search.space import make_space

NAMES = ["vlm", "ja"]


def test_group_index_is_contiguous_and_covers_all_layers():
    groups = [group_index(f"model.layers.{i}.mlp.up_proj.weight", 10, 3, False) for i in range(10)]
    assert groups == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert group_index("model.embed_tokens.weight", 10, 3, False) is None
    assert group_index("model.layers.9.self_attn.q_proj.weight", 10, 3, True) == 4
    assert group_index("model.layers.9.post_attention_layernorm.weight", 10, 3, True) == 5


def test_layer_group_space_layout_and_decode():
    cfg = MergeConfig(space="layer_groups", groups=2, split_attn_mlp=True, trim="global")
    space = make_space(NAMES, cfg)
    parts = ["rest", "g0.attn", "g0.mlp", "g1.attn", "g1.mlp"]
    assert space.size == 2 + 2 * 2 * len(parts) == len(space.bounds) == len(space.gene_names)
    assert space.gene_names[:5] == [
        "drop_rate",
        "density/rest/vlm",
        "density/rest/ja",
        "weight/rest/vlm",
        "weight/rest/ja",
    ]
    assert space.gene_names[-1] == "scale"
    genome = [0.1] + [v for p in range(len(parts)) for v in (0.5, 0.6, p / 10, 0.9)] + [1.5]
    genome[3] = 7.0  # out of bounds: clipped to weight.high
    r = space.decode(genome)
    assert r.drop_rate == 0.1 and r.scale == 1.5 and r.trim == "global" and r.split_attn_mlp
    assert r.sources["vlm"].weight == 1.0 and r.sources["ja"].weight == 0.9
    assert len(r.groups) == 4 and r.groups[2]["vlm"] == SourceRecipe(weight=0.3, density=0.5)
    assert r.sources_for("model.layers.7.mlp.down_proj.weight", 8) == r.groups[3]
    assert r.sources_for("model.layers.0.self_attn.q_proj.weight", 8) == r.groups[0]
    assert r.sources_for("lm_head.weight", 8) == r.sources
    assert MergeRecipe.from_dict(r.to_dict()) == r
    ablated = r.with_weight("ja", 0.0)
    assert all(g["ja"].weight == 0.0 for g in (ablated.sources, *ablated.groups))
    uniform = space.decode(space.encode_uniform())
    assert all(s.weight == 0.5 and s.density == 1.0 for g in uniform.groups for s in g.values())


def test_jradievo_recipe_dict_unchanged_by_the_new_fields():
    r = make_space(NAMES, MergeConfig()).decode([0.0, 1, 1, 0.5, 0.5, 1.0])
    assert set(r.to_dict()) == {"drop_rate", "scale", "sign_consensus", "sources"}


def test_method_space_for_della():
    cfg = MergeConfig(
        space="method", method="della", method_bounds={"lambda": Bounds(low=0.5, high=1.5)}
    )
    space = make_space(NAMES, cfg)
    assert space.gene_names == [
        "weight/vlm",
        "weight/ja",
        "density/vlm",
        "density/ja",
        "epsilon/vlm",
        "epsilon/ja",
        "lambda",
    ]
    assert space.bounds[-1] == Bounds(low=0.5, high=1.5)
    r = space.decode([0.2, 0.7, 0.5, 0.6, 0.05, 0.08, 3.0])
    assert r == MethodRecipe(
        method="della",
        sources={
            "vlm": {"weight": 0.2, "density": 0.5, "epsilon": 0.05},
            "ja": {"weight": 0.7, "density": 0.6, "epsilon": 0.08},
        },
        parameters={"lambda": 1.5},
    )
    assert recipe_from_dict(r.to_dict()) == r
    assert r.with_weight("ja", 0.0).sources["ja"]["weight"] == 0.0
    assert not r.is_deterministic
    assert space.decode(space.encode_uniform()).sources["vlm"]["weight"] == 0.5


def test_method_space_checks_source_count():
    with pytest.raises(ValueError, match="slerp cannot merge 2 sources"):
        _ = make_space(NAMES, MergeConfig(space="method", method="slerp")).size

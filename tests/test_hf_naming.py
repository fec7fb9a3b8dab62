"""Name maps: VLM language tower <-> plain Llama names, pairing and loud failures."""

from __future__ import annotations

import pytest

from jradievo_ray.errors import ModelError
from jradievo_ray.hf.naming import get_name_map, pair_tensors

LLAVA = get_name_map("llava")
LM = {
    "model.embed_tokens.weight": (10, 4),
    "model.layers.0.mlp.up_proj.weight": (8, 4),
    "model.norm.weight": (4,),
    "lm_head.weight": (10, 4),
}
VLM_NEW = {
    "model.vision_tower.embeddings.patch_embedding.weight": (4, 3, 2, 2),
    "model.multi_modal_projector.linear_1.weight": (4, 4),
    "model.language_model.embed_tokens.weight": (11, 4),
    "model.language_model.layers.0.mlp.up_proj.weight": (8, 4),
    "model.language_model.norm.weight": (4,),
    "lm_head.weight": (11, 4),
}
VLM_LEGACY = {
    "vision_tower.vision_model.embeddings.patch_embedding.weight": (4, 3, 2, 2),
    "multi_modal_projector.linear_1.weight": (4, 4),
    "language_model.model.embed_tokens.weight": (11, 4),
    "language_model.model.layers.0.mlp.up_proj.weight": (8, 4),
    "language_model.model.norm.weight": (4,),
    "language_model.lm_head.weight": (11, 4),
}


@pytest.mark.parametrize("vlm", [VLM_NEW, VLM_LEGACY])
def test_llava_pairs_both_layouts(vlm):
    pairs = pair_tensors(LLAVA, vlm, {"base": LM, "ja": LM})
    assert {p.lm_name for p in pairs} == set(LM)
    rows = {p.lm_name: p.shared_rows for p in pairs}
    assert rows == {
        "model.embed_tokens.weight": 10,
        "lm_head.weight": 10,
        "model.layers.0.mlp.up_proj.weight": None,
        "model.norm.weight": None,
    }


def test_canonical_and_legacy_forms():
    assert LLAVA.vlm_forms("model.layers.3.self_attn.q_proj.weight") == [
        "model.language_model.layers.3.self_attn.q_proj.weight",
        "language_model.model.layers.3.self_attn.q_proj.weight",
    ]
    assert LLAVA.vlm_forms("lm_head.weight") == ["lm_head.weight", "language_model.lm_head.weight"]
    assert LLAVA.to_lm("language_model.lm_head.weight") == "lm_head.weight"
    assert LLAVA.to_lm("model.vision_tower.post_layernorm.weight") is None


def test_unmapped_vlm_tensor_is_named():
    with pytest.raises(ModelError, match="'model.image_newline'"):
        pair_tensors(LLAVA, VLM_NEW | {"model.image_newline": (4,)}, {"base": LM})


def test_shape_mismatch_is_named():
    bad = LM | {"model.layers.0.mlp.up_proj.weight": (9, 4)}
    with pytest.raises(ModelError, match=r"ja: tensor 'model\.layers\.0\.mlp\.up_proj\.weight'"):
        pair_tensors(LLAVA, VLM_NEW, {"base": LM, "ja": bad})
    with pytest.raises(ModelError, match=r"VLM tensor 'model\.language_model\.layers\.0"):
        pair_tensors(LLAVA, VLM_NEW, {"base": bad})


def test_only_embeddings_may_be_extended():
    vlm = VLM_NEW | {"model.language_model.norm.weight": (5,)}
    with pytest.raises(ModelError, match="norm.weight"):
        pair_tensors(LLAVA, vlm, {"base": LM})
    smaller = VLM_NEW | {"lm_head.weight": (9, 4)}
    with pytest.raises(ModelError, match="lm_head.weight"):
        pair_tensors(LLAVA, smaller, {"base": LM})


def test_lm_tensor_missing_from_vlm_is_named():
    extra = LM | {"model.layers.1.mlp.up_proj.weight": (8, 4)}
    with pytest.raises(ModelError, match=r"med: tensor 'model\.layers\.1\.mlp\.up_proj\.weight'"):
        pair_tensors(LLAVA, VLM_NEW, {"base": LM, "med": extra})
    missing = {k: v for k, v in LM.items() if k != "model.norm.weight"}
    with pytest.raises(ModelError, match="base: has no tensor 'model.norm.weight'"):
        pair_tensors(LLAVA, VLM_NEW, {"base": missing})


def test_unknown_preset():
    with pytest.raises(ModelError, match="unknown name map 'nope'"):
        get_name_map("nope")


def test_llava_next_keeps_image_newline():
    nm = get_name_map("llava-next")
    assert nm.to_lm("model.image_newline") is None
    assert nm.to_lm("model.language_model.norm.weight") == "model.norm.weight"


def test_bunny_llama_3():
    nm = get_name_map("bunny-llama-3")
    vlm = {
        "model.vision_tower.vision_tower.vision_model.post_layernorm.weight": (4,),
        "model.mm_projector.0.weight": (4, 4),
        "model.embed_tokens.weight": (10, 4),
        "model.layers.0.mlp.up_proj.weight": (8, 4),
        "model.norm.weight": (4,),
        "lm_head.weight": (10, 4),
    }
    pairs = pair_tensors(nm, vlm, {"base": LM})
    assert {p.vlm_name: p.lm_name for p in pairs} == {n: n for n in LM}
    assert nm.vlm_forms("model.norm.weight") == ["model.norm.weight"]


def test_user_regex_map():
    nm = get_name_map(
        {
            "language": [[r"llm\.(.+)", r"model.\1"], [r"head\.weight", "lm_head.weight"]],
            "keep": [r"vit\.", r"proj\."],
        }
    )
    vlm = {
        "vit.blocks.0.weight": (4, 4),
        "proj.weight": (4, 4),
        "llm.embed_tokens.weight": (10, 4),
        "llm.layers.0.mlp.up_proj.weight": (8, 4),
        "llm.norm.weight": (4,),
        "head.weight": (10, 4),
    }
    pairs = pair_tensors(nm, vlm, {"base": LM})
    assert {p.lm_name for p in pairs} == set(LM)
    with pytest.raises(ModelError, match="'other.weight'"):
        nm.to_lm("other.weight")
    with pytest.raises(ModelError, match="name_map"):
        get_name_map({"language": [["(", "x"]]})

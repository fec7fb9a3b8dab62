import pytest
import torch
from transformers_saved import build_transformers_saved_vlm
from zoo_builders import build_random_llava

from jradievo_ray.data.manifest import load_manifest
from jradievo_ray.data.synthetic import write_split
from jradievo_ray.inference.base import GenerationRequest
from jradievo_ray.inference.transformers_backend import TransformersGenerator
from jradievo_ray.zoo.corpus import PROMPT_JA


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("backend")
    vlm = build_random_llava(root / "vlm", seed=3, layers=2)
    studies = load_manifest(write_split(root / "data", "t", 7, seed=0))
    reqs = [GenerationRequest(id=s.id, image=s.image, prompt=PROMPT_JA) for s in studies]
    return vlm, reqs


def test_batched_generation_equals_unbatched_and_is_deterministic(setup):
    vlm, reqs = setup
    batched = TransformersGenerator(vlm, max_new_tokens=10, batch_size=4)
    single = TransformersGenerator(vlm, max_new_tokens=10, batch_size=1)
    texts = batched.generate(reqs)
    assert len(texts) == len(reqs) and all(isinstance(t, str) for t in texts)
    assert texts == single.generate(reqs)
    assert texts == batched.generate(reqs)
    assert not any("<s>" in t or "</s>" in t or "<image>" in t for t in texts)


def test_weight_targets_are_the_live_language_model_under_vlm_names(setup):
    vlm, reqs = setup
    gen = TransformersGenerator(vlm, max_new_tokens=10, batch_size=8)
    targets = gen.weight_targets()
    assert "model.language_model.embed_tokens.weight" in targets
    assert "model.language_model.layers.0.self_attn.q_proj.weight" in targets
    assert "model.language_model.norm.weight" in targets
    assert "lm_head.weight" in targets
    assert not any("vision_tower" in n or "projector" in n for n in targets)
    params = dict(gen.model.named_parameters())
    assert all(t is params[n] for n, t in targets.items())

    before = gen.generate(reqs)
    saved = {n: t.detach().clone() for n, t in targets.items()}
    with torch.no_grad():
        targets["lm_head.weight"].mul_(-1.0)  # written in place, as the merge engine does
    assert gen.generate(reqs) != before
    gen.load_weights(saved.items())
    assert gen.generate(reqs) == before
    gen.load_weights(gen.weight_targets().items())  # same storage: a no-op
    assert gen.generate(reqs) == before
    with pytest.raises(KeyError):
        gen.load_weights([("model.vision_tower.embeddings.class_embedding", torch.zeros(1))])


def test_a_llava_next_folder_generates_and_exposes_its_language_model(setup, tmp_path):
    """The backend loads the class the folder's config names (LLaVA-NeXT's name map is
    supported by the merge, so generation must support it too)."""
    _, reqs = setup
    vlm = build_transformers_saved_vlm(tmp_path / "next", seed=2, kind="llava_next", layers=2)
    gen = TransformersGenerator(vlm, max_new_tokens=8, batch_size=4)
    assert type(gen.model).__name__ == "LlavaNextForConditionalGeneration"
    texts = gen.generate(reqs)
    assert texts == TransformersGenerator(vlm, max_new_tokens=8, batch_size=1).generate(reqs)
    targets = gen.weight_targets()
    assert "model.language_model.layers.1.mlp.down_proj.weight" in targets
    assert "lm_head.weight" in targets
    assert not any("vision_tower" in n or "image_newline" in n for n in targets)

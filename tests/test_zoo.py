import json

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import LlamaForCausalLM, LlavaForConditionalGeneration, LlavaProcessor
from zoo_builders import build_random_llama, build_random_llava, small_tokenizer

from jradievo_ray.progress import Progress
from jradievo_ray.zoo import build_zoo, resolve_zoo_path
from jradievo_ray.zoo.build import ZOO_THREADS, Recipe, fingerprint, identity
from jradievo_ray.zoo.corpus import PROMPT_JA, base_docs, ja_docs, med_docs, vlm_docs
from jradievo_ray.zoo.models import Shape, _vllm_names
from jradievo_ray.zoo.train import encode


@pytest.fixture(scope="module")
def tokenizer():
    return small_tokenizer()


def test_tokenizer_splits_scripts_and_knows_the_prompt(tokenizer):
    tokens = tokenizer.tokenize(PROMPT_JA)
    assert tokenizer.unk_token not in tokens
    assert len(tokens) >= 8  # not one token per sentence
    text = "右胸水を認める。気胸は認めない。 No pneumothorax."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_random_llava_saves_for_vllm_and_reloads_with_processor(tmp_path, tokenizer):
    folder = build_random_llava(tmp_path / "vlm", seed=1, tokenizer=tokenizer, layers=2)
    with safe_open(folder / "model.safetensors", "pt") as f:
        names = list(f.keys())
    vision = [n for n in names if n.startswith("vision_tower.")]
    assert vision and all(n.startswith("vision_tower.vision_model.") for n in vision)
    proc_cfg = json.loads((folder / "processor_config.json").read_text())
    assert proc_cfg["num_additional_image_tokens"] == 1
    assert proc_cfg["vision_feature_select_strategy"] == "default"
    assert proc_cfg["image_processor"]["image_processor_type"] == "CLIPImageProcessor"

    model = LlavaForConditionalGeneration.from_pretrained(folder)
    assert model.config.vision_feature_layer == -1
    assert model.config.vision_config.num_channels == 3
    with safe_open(folder / "model.safetensors", "pt") as f:  # every saved tensor loaded
        saved = {n: f.get_tensor(n) for n in names}
    loaded = _vllm_names(model.state_dict())
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[n], saved[n]) for n in saved)

    processor = LlavaProcessor.from_pretrained(folder)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt.startswith(processor.tokenizer.bos_token)
    image = Image.new("L", (64, 64), 128)
    batch = processor(images=[image], text=[prompt], return_tensors="pt")
    image_id = model.config.image_token_id
    assert (batch["input_ids"] == image_id).sum() == Shape().image_tokens
    assert batch["pixel_values"].shape == (1, 3, 64, 64)
    out = model(**batch)
    assert out.logits.shape[-1] == len(processor.tokenizer)


def test_random_llama_matches_the_vlm_language_shapes(tmp_path, tokenizer):
    lm = LlamaForCausalLM.from_pretrained(build_random_llama(tmp_path / "lm", tokenizer=tokenizer))
    vlm = LlavaForConditionalGeneration.from_pretrained(
        build_random_llava(tmp_path / "vlm", tokenizer=tokenizer)
    )
    vlm_lm = {k: v.shape for k, v in vlm.state_dict().items() if "language_model" in k}
    for name, tensor in lm.state_dict().items():
        key = "lm_head.weight" if name == "lm_head.weight" else "model.language_model." + name[6:]
        shape = vlm.state_dict()[key].shape if key == "lm_head.weight" else vlm_lm[key]
        assert shape == tensor.shape, name
    assert lm.config.head_dim == 32


def test_training_docs_respect_the_skill_split(tokenizer):
    """Text sources never see images; the ja LM's chat turns give findings as Japanese terms,
    never as codes; only the med LM maps finding codes to Japanese, and never in chat."""
    for make in (base_docs, ja_docs, med_docs):
        assert not any(d.image for d in make(200, 0))
    ja = ja_docs(200, 0)
    chat = [d for d in ja if d.user]
    assert chat and all(d.user.startswith("所見: ") and d.user.endswith(PROMPT_JA) for d in chat)
    assert not any("Tags:" in (d.user or "") + d.answer for d in ja)
    med = med_docs(200, 0)
    assert not any(d.user for d in med)
    assert any(d.answer.startswith("Tags:") and "所見: " in d.answer for d in med)
    assert not any("所見: " in d.answer for d in base_docs(500, 0))
    examples = encode(tokenizer, ja_docs(20, 0), image_tokens=16)
    for ids, labels in examples:
        assert len(ids) == len(labels) and labels[-1] == tokenizer.eos_token_id
        assert tokenizer.unk_token_id not in ids


def test_resolve_zoo_path_leaves_other_values_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("JRADIEVO_HOME", str(tmp_path))
    assert resolve_zoo_path("/models/vlm") == "/models/vlm"
    assert resolve_zoo_path("s3://bucket/zoo:x") == "s3://bucket/zoo:x"
    assert not (tmp_path / "zoo").exists()


@pytest.mark.slow
def test_build_zoo_from_scratch_then_reuse(tmp_path, monkeypatch):
    monkeypatch.setenv("JRADIEVO_HOME", str(tmp_path))
    path = resolve_zoo_path("zoo:vlm")
    zoo = build_zoo()
    assert path == str(zoo / "vlm")
    for name in ("base", "ja", "med"):
        LlamaForCausalLM.from_pretrained(zoo / name)
    LlavaForConditionalGeneration.from_pretrained(zoo / "vlm")
    LlavaProcessor.from_pretrained(zoo / "vlm")
    assert len((zoo / "data" / "heldout.jsonl").read_text().splitlines()) >= 200
    stamp = (zoo / "zoo.json").stat().st_mtime_ns
    assert build_zoo() == zoo and (zoo / "zoo.json").stat().st_mtime_ns == stamp
    assert [p.name for p in zoo.parent.iterdir()] == [zoo.name]  # no temp folder left


TINY = Recipe(
    vocab=600,
    base_docs=60,
    base_steps=3,
    ja_docs=30,
    ja_steps=2,
    med_docs=30,
    med_steps=2,
    vision_steps=2,
    align_steps=2,
    joint_steps=2,
    batch=4,
)


def test_the_same_machine_trains_the_same_zoo_and_the_fingerprint_says_so(tmp_path):
    """Fixed threads and deterministic algorithms: two builds, one fingerprint, which is a
    hash of every model's weights (one changed value changes it)."""
    first = build_zoo(tmp_path / "a", seed=3, recipe=TINY)
    second = build_zoo(tmp_path / "b", seed=3, recipe=TINY)
    recorded = json.loads((first / "zoo.json").read_text())
    assert recorded["fingerprint"] == fingerprint(first) == fingerprint(second)
    assert recorded["threads"] == ZOO_THREADS and recorded["seed"] == 3
    assert identity(first / "base") == {
        "tag": recorded["version"],
        "seed": 3,
        "fingerprint": recorded["fingerprint"],
    }
    assert identity(tmp_path) is None  # not a zoo folder

    weights = second / "med" / "model.safetensors"
    tensors = load_file(weights)
    name = sorted(tensors)[0]
    tensors[name].view(-1)[0] += 1e-3
    save_file(tensors, str(weights), {"format": "pt"})
    assert fingerprint(second) != recorded["fingerprint"]


def test_training_progress_has_an_eta_and_few_lines_off_a_terminal():
    lines: list[str] = []
    progress = Progress("base", 700, lines.append)
    for step in range(700):
        progress.update(f"loss {1 / (step + 1):.3f}")
    assert len(lines) == 4
    assert lines[-1].startswith("  base: step 700/700 loss 0.001 (")
    assert all("ETA" in line for line in lines)


def test_the_vlm_sees_its_image_where_the_base_saw_finding_codes(tokenizer):
    chat, tags = encode(tokenizer, vlm_docs(["No pneumothorax."]), image_tokens=16)
    image = tokenizer.convert_tokens_to_ids("<image>")
    for ids, labels in (chat, tags):
        assert ids.count(image) == 16
        assert labels[-1] == tokenizer.eos_token_id
        assert all(label == -100 for i, label in zip(ids, labels, strict=True) if i == image)
    text = tokenizer.decode(tags[0][1:], skip_special_tokens=False)
    assert text.startswith("Tags: <image>") and "\nReport: No pneumothorax." in text
    base_text = next(d.answer for d in base_docs(50, 0) if d.answer.startswith("Tags:"))
    assert "\nReport: " in base_text  # the base's own format, with codes where the image is

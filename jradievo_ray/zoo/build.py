"""Build (or reuse) the tiny demo zoo: base / vlm / ja / med Hugging Face folders + data/.

Built in a temporary sibling folder and renamed at the end, so a killed build never leaves
a half cache.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import LlamaForCausalLM, LlavaForConditionalGeneration, PreTrainedTokenizerFast

from jradievo_ray import paths
from jradievo_ray.config import ZOO_PREFIX
from jradievo_ray.data import synthetic
from jradievo_ray.data.manifest import load_manifest
from jradievo_ray.data.synthetic import FINDINGS, NORMAL, write_dataset
from jradievo_ray.zoo.corpus import base_docs, ja_docs, med_docs, tokenizer_texts, vlm_docs
from jradievo_ray.zoo.models import (
    Shape,
    image_processor,
    llama_config,
    llava_config,
    save_llama,
    save_llava,
    write_shape,
)
from jradievo_ray.zoo.tokenizer import train_tokenizer
from jradievo_ray.zoo.train import encode, pretrain_vision, train_lm, train_vlm

ZOO_VERSION = "v3"
# The code that decides what the zoo contains: any change to it means a new cache folder.
_ZOO_SOURCES = [*sorted(Path(__file__).parent.glob("*.py")), Path(synthetic.__file__)]


@dataclass(frozen=True)
class Recipe:
    """Corpus sizes, steps and learning rates of every zoo model (see corpus.py for what
    each source learns)."""

    vocab: int = 2000
    base_docs: int = 6000
    base_steps: int = 700
    base_lr: float = 3e-3
    ja_docs: int = 3000
    ja_steps: int = 500
    ja_lr: float = 2e-3
    med_docs: int = 3000
    med_steps: int = 250
    med_lr: float = 1e-3
    vision_steps: int = 300
    vision_lr: float = 2e-3
    align_steps: int = 350
    align_lr: float = 2e-3
    joint_steps: int = 120
    joint_lm_lr: float = 2e-4
    batch: int = 32


ZOO_THREADS = 2  # fixed, so that one machine always trains the same weights
MODELS = ("base", "vlm", "ja", "med")


def fingerprint(zoo: Path) -> str:
    """A short hash of the zoo's trained weights: equal only for bit-identical models.
    Another CPU make trains other weights (other float kernels); this tells them apart."""
    digest = hashlib.sha256()
    for name in MODELS:
        for path in sorted((Path(zoo) / name).glob("*.safetensors")):
            digest.update(f"{name}/{path.name}".encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def identity(model_path: str | Path) -> dict[str, Any] | None:
    """{"tag", "seed", "fingerprint"} of the zoo holding `model_path`, None outside a zoo."""
    zoo = Path(model_path).parent
    if not (zoo / "zoo.json").is_file():
        return None
    info = json.loads((zoo / "zoo.json").read_text())
    return {
        "tag": info.get("version"),
        "seed": info.get("seed"),
        "fingerprint": info.get("fingerprint") or fingerprint(zoo),
    }


def version_tag() -> str:
    digest = hashlib.sha256()
    for path in _ZOO_SOURCES:
        digest.update(path.name.encode() + path.read_bytes())
    return f"{ZOO_VERSION}-{digest.hexdigest()[:10]}"


def default_dir(seed: int = 0) -> Path:
    return paths.home() / "zoo" / f"{version_tag()}-seed{seed}"


def _log(msg: str) -> None:
    print(f"[zoo] {msg}", file=sys.stderr, flush=True)


def _finding_targets(findings: list[list[str]]) -> torch.Tensor:
    labels = [*FINDINGS, NORMAL]
    return torch.tensor([[float(x in f) for x in labels] for f in findings])


TEXT_SOURCES = {"ja": ja_docs, "med": med_docs}


def train_text_source(
    base: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    name: str,
    seed: int,
    shape: Shape,
    recipe: Recipe,
) -> LlamaForCausalLM:
    """Fine-tune a copy of the base on one text source's corpus."""
    model = copy.deepcopy(base)
    n_docs, steps, lr = (getattr(recipe, f"{name}_{k}") for k in ("docs", "steps", "lr"))
    docs = encode(tokenizer, TEXT_SOURCES[name](n_docs, seed), shape.image_tokens)
    train_lm(model, docs, tokenizer.pad_token_id, steps, lr, recipe.batch, seed + 1, _log, name)
    return model


def _train_all(out: Path, seed: int, shape: Shape, recipe: Recipe) -> None:
    t0 = time.perf_counter()
    _log("writing synthetic data")
    manifests = write_dataset(out / "data", seed=seed)
    tokenizer = train_tokenizer(tokenizer_texts(n=3000, seed=seed), vocab_size=recipe.vocab)
    pad = tokenizer.pad_token_id
    _log(f"tokenizer: {len(tokenizer)} tokens ({time.perf_counter() - t0:.0f}s)")

    torch.manual_seed(seed)
    base = LlamaForCausalLM(llama_config(tokenizer, shape))
    docs = encode(tokenizer, base_docs(recipe.base_docs, seed), shape.image_tokens)
    train_lm(base, docs, pad, recipe.base_steps, recipe.base_lr, recipe.batch, seed, _log, "base")
    save_llama(base, tokenizer, out / "base")

    for name in TEXT_SOURCES:
        model = train_text_source(base, tokenizer, name, seed, shape, recipe)
        save_llama(model, tokenizer, out / name)
    _log(f"text models done ({time.perf_counter() - t0:.0f}s)")

    studies = load_manifest(manifests["train"])
    proc = image_processor(shape)
    images = [Image.open(s.image) for s in studies]
    pixels = proc(images=images, return_tensors="pt")["pixel_values"]
    torch.manual_seed(seed + 2)
    vlm = LlavaForConditionalGeneration(llava_config(tokenizer, shape))
    vlm.model.language_model.load_state_dict(base.model.state_dict())
    vlm.lm_head.load_state_dict(base.lm_head.state_dict())
    targets = _finding_targets([s.findings for s in studies])
    pretrain_vision(vlm, pixels, targets, recipe.vision_steps, recipe.vision_lr, 64, seed, _log)
    # Align: both VLM tasks (chat, and the image in place of the codes), LM frozen; joint:
    # the chat alone, LM included at a low learning rate.
    both = encode(tokenizer, vlm_docs([s.report_en for s in studies]), shape.image_tokens)
    lrs = {"vision": recipe.align_lr / 4, "projector": recipe.align_lr}
    align_pixels = torch.cat([pixels, pixels])
    train_vlm(
        vlm, both, align_pixels, pad, recipe.align_steps, lrs, recipe.batch, seed, _log, "align"
    )
    chat = both[: len(studies)]
    lrs = {"vision": recipe.joint_lm_lr, "projector": recipe.joint_lm_lr, "lm": recipe.joint_lm_lr}
    train_vlm(vlm, chat, pixels, pad, recipe.joint_steps, lrs, recipe.batch, seed, _log, "joint")
    save_llava(vlm, tokenizer, shape, out / "vlm")
    seconds = time.perf_counter() - t0
    (out / "zoo.json").write_text(
        json.dumps(
            {
                "version": version_tag(),
                "seed": seed,
                "fingerprint": fingerprint(out),
                "torch": torch.__version__,
                "threads": ZOO_THREADS,
                "seconds": round(seconds, 1),
                "shape": asdict(shape),
                "recipe": asdict(recipe),
            },
            indent=2,
        )
        + "\n"
    )
    write_shape(out, shape)
    _log(f"done in {seconds:.0f}s; weights fingerprint {fingerprint(out)}")


def build_zoo(
    directory: Path | None = None,
    seed: int = 0,
    force: bool = False,
    recipe: Recipe | None = None,
    shape: Shape | None = None,
) -> Path:
    """Train the zoo into `directory` (default: the cache), or reuse a complete one."""
    target = Path(directory) if directory else default_dir(seed)
    if (target / "zoo.json").is_file() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        # As reproducible as torch allows on one machine: fixed threads, deterministic ops.
        torch.set_num_threads(ZOO_THREADS)
        torch.use_deterministic_algorithms(True)
        _log(f"building into {target} (seed {seed}, {ZOO_THREADS} torch threads)")
        _train_all(tmp, seed, shape or Shape(), recipe or Recipe())
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_zoo() -> Path:
    """The default zoo, built on first use."""
    return build_zoo()


def resolve_zoo_path(value: str) -> str:
    """`zoo:<rel>` -> a path inside the (built on demand) default zoo; others unchanged."""
    if not value.startswith(ZOO_PREFIX):
        return value
    return str(ensure_zoo() / value.removeprefix(ZOO_PREFIX))


def zoo_overrides(zoo: Path) -> list[str]:
    """`--set` overrides pointing the demo config at the zoo in `zoo` (e.g. another seed's)."""
    return [
        f"models.base.path={zoo / 'base'}",
        f"models.vlm.path={zoo / 'vlm'}",
        f"models.sources.0.path={zoo / 'ja'}",
        f"models.sources.1.path={zoo / 'med'}",
        f"data.search={zoo / 'data' / 'search.jsonl'}",
        f"data.heldout={zoo / 'data' / 'heldout.jsonl'}",
    ]

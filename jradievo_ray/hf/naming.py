"""Name maps between a VLM's language-tower tensors and plain Llama (text LM) tensors.

A map is a list of (VLM template, LM template) forms with at most one `{x}` wildcard,
plus the VLM prefixes that are never merged (vision tower, projector). The first form
that yields an LM name is that name's canonical VLM form; older checkpoint layouts are
further forms of the same map, so a folder saved as `language_model.model.*` and a
transformers 5 state dict named `model.language_model.*` both work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from jradievo_ray.errors import ModelError

# Rows that a VLM may add to these (e.g. an image token) are kept from the VLM.
EXTENDABLE = ("embed_tokens.weight", "lm_head.weight")


def _template_regex(template: str) -> re.Pattern[str]:
    head, sep, tail = template.partition("{x}")
    body = re.escape(head) + ("(?P<x>.+)" + re.escape(tail) if sep else "")
    return re.compile(body + r"\Z")


@dataclass(frozen=True)
class NameMap:
    """`forms`: (VLM template, LM template) pairs, usable both ways. `rules`: user
    (VLM regex, LM replacement) pairs, one way only. `keep`: regexes (matched at the
    start) of VLM tensors that are never merged."""

    name: str
    forms: tuple[tuple[str, str], ...] = ()
    rules: tuple[tuple[str, str], ...] = ()
    keep: tuple[str, ...] = ()

    @cached_property
    def _compiled(self) -> list[tuple[re.Pattern[str], str, re.Pattern[str], str]]:
        return [(_template_regex(v), lm, _template_regex(lm), v) for v, lm in self.forms]

    @cached_property
    def _rules(self) -> list[tuple[re.Pattern[str], str]]:
        return [(re.compile(v), lm) for v, lm in self.rules]

    @cached_property
    def _keep(self) -> re.Pattern[str] | None:
        return re.compile("|".join(f"(?:{k})" for k in self.keep)) if self.keep else None

    def is_kept(self, vlm_name: str) -> bool:
        """Vision tower / projector: always the VLM's own, never merged."""
        return self._keep is not None and self._keep.match(vlm_name) is not None

    def to_lm(self, vlm_name: str) -> str | None:
        """LM name of a VLM tensor; None for kept tensors; ModelError if unmapped."""
        if self.is_kept(vlm_name):
            return None
        for vlm_re, lm_template, _, _ in self._compiled:
            m = vlm_re.match(vlm_name)
            if m:
                return lm_template.format(**m.groupdict())
        for vlm_re, replacement in self._rules:
            if vlm_re.fullmatch(vlm_name):
                return vlm_re.sub(replacement, vlm_name, count=1)
        raise ModelError(
            f"VLM tensor {vlm_name!r} is neither language tower nor vision/projector "
            f"under name map {self.name!r}"
        )

    def vlm_forms(self, lm_name: str) -> list[str]:
        """Every VLM name of an LM tensor that the templates give, canonical first."""
        out = []
        for _, _, lm_re, vlm_template in self._compiled:
            m = lm_re.match(lm_name)
            if m:
                out.append(vlm_template.format(**m.groupdict()))
        return out


def _prefixes(*prefixes: str) -> tuple[str, ...]:
    return tuple(re.escape(p) for p in prefixes)


# LLaVA as transformers (>= 4.52) names it, in memory and on disk: `model.language_model.*`,
# `lm_head.weight`, `model.vision_tower.*`, `model.multi_modal_projector.*`. The original
# checkpoints, and vLLM 0.32's LLaVA classes, put the text LM under `language_model.`, the
# projector at the top level and a CLIP/SigLIP tower one level down.
ORIGINAL_LANGUAGE_PREFIX = {"llava": "language_model.", "llava-next": "language_model."}
ORIGINAL_TOWER = "vision_tower.vision_model."
NESTED_TOWERS = ("clip_vision_model", "siglip_vision_model")
# config.json `model_type` -> its architecture, for folders that name none
ARCHITECTURE_OF_TYPE = {
    "llava": "LlavaForConditionalGeneration",
    "llava_next": "LlavaNextForConditionalGeneration",
}

_LLAVA_FORMS = (
    ("model.language_model.{x}", "model.{x}"),
    ("lm_head.weight", "lm_head.weight"),
    ("language_model.model.{x}", "model.{x}"),
    ("language_model.lm_head.weight", "lm_head.weight"),
)
_TOWERS = ("model.vision_tower.", "vision_tower.")
_LLAVA_KEEP = (*_TOWERS, "model.multi_modal_projector.", "multi_modal_projector.")

PRESETS: dict[str, NameMap] = {
    "llava": NameMap(name="llava", forms=_LLAVA_FORMS, keep=_prefixes(*_LLAVA_KEEP)),
    "llava-next": NameMap(
        name="llava-next",
        forms=_LLAVA_FORMS,
        keep=_prefixes(*_LLAVA_KEEP, "model.image_newline", "image_newline"),
    ),
    # Bunny-Llama-3 (JRadiEvo's VLM): a Llama with the vision parts beside its layers.
    "bunny-llama-3": NameMap(
        name="bunny-llama-3",
        forms=(("model.{x}", "model.{x}"), ("lm_head.weight", "lm_head.weight")),
        keep=_prefixes("model.vision_tower.", "model.mm_projector."),
    ),
    # A plain text LM: every tensor is a language tensor under its own name.
    "identity": NameMap(name="identity", forms=(("{x}", "{x}"),)),
}

# config.json `architectures` or `model_type` -> preset, for folders that name no map.
BY_ARCHITECTURE = {
    "LlavaForConditionalGeneration": "llava",
    "LlavaNextForConditionalGeneration": "llava-next",
    "BunnyLlamaForCausalLM": "bunny-llama-3",
    "llava": "llava",
    "llava_next": "llava-next",
    "bunny-llama": "bunny-llama-3",
}


def vlm_preset(config: dict) -> str | None:
    """The name-map preset a model's config.json implies (None for unknown / text LMs)."""
    keys = [*(config.get("architectures") or []), config.get("model_type")]
    return next((BY_ARCHITECTURE[k] for k in keys if k in BY_ARCHITECTURE), None)


def get_name_map(spec: str | dict) -> NameMap:
    """A preset by name, or a user map `{language: [[vlm_regex, lm_replacement], ...],
    keep: [vlm_regex, ...]}` (regexes must match whole names / name starts)."""
    if isinstance(spec, dict):
        unknown = set(spec) - {"language", "keep"}
        if unknown or "language" not in spec:
            raise ModelError("name_map: expected {language: [[vlm_regex, lm_name]], keep: [...]}")
        try:
            rules = tuple((str(v), str(lm)) for v, lm in spec["language"])
            keep = tuple(str(k) for k in spec.get("keep") or ())
            for pattern in [v for v, _ in rules] + list(keep):
                re.compile(pattern)
        except (TypeError, ValueError, re.error) as exc:
            raise ModelError(f"name_map: {exc}") from None
        return NameMap(name="user", rules=rules, keep=keep)
    try:
        return PRESETS[spec]
    except KeyError:
        raise ModelError(
            f"unknown name map {spec!r}; presets: {', '.join(sorted(PRESETS))}"
        ) from None


def name_map_for(spec: str | dict | None, config: dict) -> NameMap:
    """`spec` as get_name_map reads it; None: the preset the folder's config.json implies."""
    return get_name_map(spec if spec is not None else vlm_preset(config) or "llava")


@dataclass(frozen=True)
class TensorPair:
    """One language tensor: its name in the VLM checkpoint and in the text LMs."""

    vlm_name: str
    lm_name: str
    shared_rows: int | None  # None: same shape; else the VLM's rows from here on are kept


Shapes = dict[str, tuple[int, ...]]


def pair_tensors(name_map: NameMap, vlm: Shapes, lms: dict[str, Shapes]) -> list[TensorPair]:
    """Pair every VLM language tensor with the same tensor of each text LM (base included).

    `lms` maps a model label to its tensor shapes. Fails loudly, naming the tensor, on an
    unmapped VLM tensor, an LM tensor the VLM lacks, or any shape mismatch; a VLM embedding
    or lm_head with extra rows shares the LMs' rows and keeps its own extra rows.
    """
    pairs: list[TensorPair] = []
    seen: dict[str, str] = {}
    for vlm_name, vlm_shape in vlm.items():
        lm_name = name_map.to_lm(vlm_name)
        if lm_name is None:
            continue
        if lm_name in seen:
            raise ModelError(
                f"VLM tensors {seen[lm_name]!r} and {vlm_name!r} both map to {lm_name!r}"
            )
        seen[lm_name] = vlm_name
        found = {}
        for label, shapes in lms.items():
            if lm_name not in shapes:
                raise ModelError(f"{label}: has no tensor {lm_name!r} (VLM tensor {vlm_name!r})")
            found[label] = shapes[lm_name]
        first_label, lm_shape = next(iter(found.items()))
        for label, shape in found.items():
            if shape != lm_shape:
                raise ModelError(
                    f"{label}: tensor {lm_name!r} has shape {list(shape)}, "
                    f"{first_label} has {list(lm_shape)}"
                )
        if lm_shape == vlm_shape:
            shared = None
        elif (
            lm_name.endswith(EXTENDABLE)
            and len(lm_shape) == len(vlm_shape) == 2
            and lm_shape[1] == vlm_shape[1]
            and lm_shape[0] < vlm_shape[0]
        ):
            shared = lm_shape[0]
        else:
            raise ModelError(
                f"{first_label}: tensor {lm_name!r} has shape {list(lm_shape)}, "
                f"VLM tensor {vlm_name!r} has {list(vlm_shape)}"
            )
        pairs.append(TensorPair(vlm_name=vlm_name, lm_name=lm_name, shared_rows=shared))
    for label, shapes in lms.items():
        missing = sorted(set(shapes) - set(seen))
        if missing:
            raise ModelError(
                f"{label}: tensor {missing[0]!r} has no counterpart in the VLM's language tower"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            )
    return pairs


def language_names(name_map: NameMap, names: list[str]) -> list[str]:
    """The language-tower tensors among a VLM's `names` (ModelError on an unmapped one)."""
    return [n for n in names if name_map.to_lm(n) is not None]


def nested_tower_name(name: str) -> str | None:
    """The original checkpoints' name of a LLaVA vision-tower tensor saved un-nested
    (`model.vision_tower.<module>` or `vision_tower.<module>`); None for any other tensor."""
    for prefix in _TOWERS:
        rest = name.removeprefix(prefix)
        if rest != name:
            return None if rest.startswith("vision_model.") else ORIGINAL_TOWER + rest
    return None


def original_llava_name(name: str) -> str:
    """transformers' name of a LLaVA tensor -> the original checkpoints' (what vLLM loads)."""
    llava = PRESETS["llava"]
    if llava.is_kept(name):
        return nested_tower_name(name) or name.removeprefix("model.")
    return ORIGINAL_LANGUAGE_PREFIX["llava"] + llava.to_lm(name)

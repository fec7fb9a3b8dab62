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

from jradievo_ray.merge.checkpoint import MergeError

# Rows that a VLM may add to these (e.g. an image token) are kept from the VLM.
EXTENDABLE = ("embed_tokens.weight", "lm_head.weight")


def _template_regex(template: str) -> re.Pattern[str]:
    head, sep, tail = template.partition("{x}")
    body = re.escape(head) + ("(?P<x>.+)" + re.escape(tail) if sep else "")
    return re.compile(body + r"\Z")


@dataclass(frozen=True)
class NameMap:
    name: str
    forms: tuple[tuple[str, str], ...]
    keep: tuple[str, ...]

    @cached_property
    def _compiled(self) -> list[tuple[re.Pattern[str], str, re.Pattern[str], str]]:
        return [(_template_regex(v), lm, _template_regex(lm), v) for v, lm in self.forms]

    def is_kept(self, vlm_name: str) -> bool:
        """Vision tower / projector: always the VLM's own, never merged."""
        return vlm_name.startswith(self.keep)

    def to_lm(self, vlm_name: str) -> str | None:
        """LM name of a VLM tensor; None for kept tensors; MergeError if unmapped."""
        if self.is_kept(vlm_name):
            return None
        for vlm_re, lm_template, _, _ in self._compiled:
            m = vlm_re.match(vlm_name)
            if m:
                return lm_template.format(**m.groupdict())
        raise MergeError(
            f"VLM tensor {vlm_name!r} is neither language tower nor vision/projector "
            f"under name map {self.name!r}"
        )

    def vlm_forms(self, lm_name: str) -> list[str]:
        """Every VLM name of an LM tensor, canonical form first."""
        out = []
        for _, _, lm_re, vlm_template in self._compiled:
            m = lm_re.match(lm_name)
            if m:
                out.append(vlm_template.format(**m.groupdict()))
        return out


PRESETS: dict[str, NameMap] = {
    "llava": NameMap(
        name="llava",
        forms=(
            ("model.language_model.{x}", "model.{x}"),
            ("lm_head.weight", "lm_head.weight"),
            ("language_model.model.{x}", "model.{x}"),
            ("language_model.lm_head.weight", "lm_head.weight"),
        ),
        keep=(
            "model.vision_tower.",
            "model.multi_modal_projector.",
            "vision_tower.",
            "multi_modal_projector.",
        ),
    ),
}


def get_name_map(name: str) -> NameMap:
    try:
        return PRESETS[name]
    except KeyError:
        raise MergeError(
            f"unknown name map {name!r}; presets: {', '.join(sorted(PRESETS))}"
        ) from None


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
            raise MergeError(
                f"VLM tensors {seen[lm_name]!r} and {vlm_name!r} both map to {lm_name!r}"
            )
        seen[lm_name] = vlm_name
        found = {}
        for label, shapes in lms.items():
            if lm_name not in shapes:
                raise MergeError(f"{label}: has no tensor {lm_name!r} (VLM tensor {vlm_name!r})")
            found[label] = shapes[lm_name]
        first_label, lm_shape = next(iter(found.items()))
        for label, shape in found.items():
            if shape != lm_shape:
                raise MergeError(
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
            raise MergeError(
                f"{first_label}: tensor {lm_name!r} has shape {list(lm_shape)}, "
                f"VLM tensor {vlm_name!r} has {list(vlm_shape)}"
            )
        pairs.append(TensorPair(vlm_name=vlm_name, lm_name=lm_name, shared_rows=shared))
    for label, shapes in lms.items():
        missing = sorted(set(shapes) - set(seen))
        if missing:
            raise MergeError(
                f"{label}: tensor {missing[0]!r} has no counterpart in the VLM's language tower"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            )
    return pairs

"""Resident merge engine: sources loaded once, each genome merged in place, tensor by tensor.

Built once per actor. Task vectors tau_i = theta_i - theta_base of every merge source
(the VLM's language tower first, then the text LMs) are computed once and kept, stacked
per tensor as [k, n], in `dtype`. Per genome (a MergeRecipe):

    merged = base + scale * combine_i(weight_i * trim(dare(tau_i, drop_rate), density_i))

combine = TIES sign election with mergekit's `ties` normalisation when
`recipe.sign_consensus`, else the plain weighted sum (mergekit's `task_arithmetic`).
trim is per tensor (the exact k-th |tau_i|, looked up in counts per magnitude bucket built
at load), or with one magnitude threshold per source over the whole model
(`recipe.trim == "global"`; magnitudes.py). After DARE with drop rate p, density d keeps
the survivors in the top d / (1 - p) of |tau_i|: in expectation d of the dropped vector,
as a threshold taken on the dropped vector itself would, without a second pass.
DARE's mask is a hash of (seed, tensor name, position), so a (recipe, seed) pair is one
model. Each tensor is merged by one fused kernel (fused.py: compiled for large tensors).
A MethodRecipe (generic space) runs any registered method on base + tau_i instead.

Residency: "device" keeps base and task vectors on `device`; "host" keeps them in
(pinned, on CUDA) host memory and streams each tensor to `device` while merging, the
copy of the next tensor overlapping the merge of this one; "auto" picks "device" when
they take at most `DEVICE_FRACTION` of the device's free memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch

from jradievo_ray.config import ModelsConfig
from jradievo_ray.errors import MergeError
from jradievo_ray.hf.folder import DTYPES, ModelFolder
from jradievo_ray.hf.naming import get_name_map, pair_tensors
from jradievo_ray.merge import fused, ops
from jradievo_ray.merge.magnitudes import MagnitudeHistogram
from jradievo_ray.merge.methods import Base, Inputs, get_method
from jradievo_ray.merge.params import layer_index
from jradievo_ray.merge.recipe import MergeRecipe, MethodRecipe, Recipe

Residency = Literal["auto", "device", "host"]
DEVICE_FRACTION = 0.8


@dataclass
class _Resident:
    lm_name: str
    stored: str  # its name in the VLM checkpoint
    vlm_forms: list[str]  # names a target dict may use for it, canonical first
    base: torch.Tensor  # flattened shared part, [n]
    deltas: torch.Tensor  # [k, n]
    shape: tuple[int, ...]  # shape of the shared part
    extra: torch.Tensor | None  # the VLM's own rows beyond the shared ones
    from_top: list[torch.Tensor]  # per source: ops.counts_from_top of its task vector


def choose_residency(needed_bytes: int, device: torch.device) -> Literal["device", "host"]:
    if device.type != "cuda":
        return "device"
    free, _ = torch.cuda.mem_get_info(device)
    return "device" if needed_bytes <= DEVICE_FRACTION * free else "host"


class ResidentMerger:
    def __init__(
        self,
        base_path: str,
        vlm_name: str,
        vlm_path: str,
        sources: dict[str, str],
        name_map: str | dict = "llava",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        residency: Residency = "auto",
        kernels: fused.KernelMode = "auto",
    ):
        """`kernels`: how the per-tensor merge runs (fused.Kernels: compiled, eager, or
        auto = compiled for large tensors)."""
        if vlm_name in sources:
            raise MergeError(f"source name {vlm_name!r} is used by the VLM and a text LM")
        self.device = torch.device(device)
        self.dtype = dtype
        self.kernels = fused.kernels(kernels)
        self.source_names = [vlm_name, *sources]
        self.name_map = get_name_map(name_map)
        base = ModelFolder(base_path)
        vlm = ModelFolder(vlm_path)
        lms = {name: ModelFolder(path) for name, path in sources.items()}
        labelled = {f"base ({base_path})": base} | {
            f"{name} ({ckpt.path})": ckpt for name, ckpt in lms.items()
        }
        pairs = pair_tensors(
            self.name_map,
            {n: vlm.shape(n) for n in vlm.names()},
            {label: ckpt.lm_shapes() for label, ckpt in labelled.items()},
        )
        for pair in pairs:
            vlm.require_float(pair.vlm_name)
        if not pairs:
            raise MergeError(f"{vlm_path}: no language-model tensors under name map {name_map!r}")
        k = len(self.source_names)
        numels = []
        for pair in pairs:
            shape = base.shape(base.stored_name(pair.lm_name))
            numels.append(torch.Size(shape).numel())
        itemsize = torch.empty((), dtype=dtype).element_size()
        self.resident_bytes = sum(numels) * (k + 1) * itemsize
        if residency == "auto":
            residency = choose_residency(self.resident_bytes, self.device)
        if residency not in ("device", "host"):
            raise MergeError(f"residency must be auto, device or host, got {residency!r}")
        self.residency = residency
        pin = residency == "host" and self.device.type == "cuda"
        store = self.device if residency == "device" else torch.device("cpu")

        self._tensors: list[_Resident] = []
        self._magnitudes = MagnitudeHistogram(k, self.device)
        for pair in pairs:
            rows = pair.shared_rows
            base_t = base.get(base.stored_name(pair.lm_name), dtype, self.device)
            vlm_t = vlm.get(pair.vlm_name, dtype, self.device)
            shared = vlm_t if rows is None else vlm_t[:rows]
            deltas = torch.empty((k, base_t.numel()), dtype=dtype, device=self.device)
            torch.sub(shared.reshape(-1), base_t.reshape(-1), out=deltas[0])
            for i, ckpt in enumerate(lms.values(), start=1):
                src = ckpt.get(ckpt.stored_name(pair.lm_name), dtype, self.device)
                torch.sub(src.reshape(-1), base_t.reshape(-1), out=deltas[i])
                del src
            self._magnitudes.add(deltas)
            from_top = [_compact(ops.counts_from_top(row)) for row in deltas]
            forms = self.name_map.vlm_forms(pair.lm_name)
            if pair.vlm_name not in forms:
                forms.append(pair.vlm_name)
            self._tensors.append(
                _Resident(
                    lm_name=pair.lm_name,
                    stored=pair.vlm_name,
                    vlm_forms=forms,
                    base=_store(base_t.reshape(-1), store, pin),
                    deltas=_store(deltas, store, pin),
                    shape=tuple(base_t.shape),
                    extra=None if rows is None else vlm_t[rows:].clone(),
                    from_top=from_top,
                )
            )
            del vlm_t, deltas, base_t
        layers = [layer_index(t.lm_name) for t in self._tensors]
        self.num_layers = max((i for i in layers if i is not None), default=-1) + 1
        biggest = max(numels)
        self._stage = (
            [torch.empty((k + 1) * biggest, dtype=dtype, device=self.device) for _ in range(2)]
            if residency == "host"
            else []
        )

    def language_names(self) -> list[str]:
        """Canonical VLM names of the merged tensors (transformers' state-dict form)."""
        return [t.vlm_forms[0] for t in self._tensors]

    def language_shapes(self) -> dict[str, tuple[int, ...]]:
        """Canonical VLM name -> full shape (extra VLM rows included) of each merged tensor."""
        return {
            t.vlm_forms[0]: (t.shape[0] + (0 if t.extra is None else len(t.extra)), *t.shape[1:])
            for t in self._tensors
        }

    def new_targets(self) -> dict[str, torch.Tensor]:
        """Empty tensors to `merge_into` (canonical names, full shapes), for a backend that
        copies weights in: allocated once, filled per genome."""
        return {
            name: torch.empty(shape, dtype=self.dtype, device=self.device)
            for name, shape in self.language_shapes().items()
        }

    def _check(self, recipe: Recipe) -> None:
        unknown = sorted(set(recipe.sources) - set(self.source_names))
        if unknown:
            raise MergeError(f"recipe names unknown sources: {', '.join(unknown)}")
        if isinstance(recipe, MergeRecipe) and not 0 <= recipe.drop_rate < 1:
            raise MergeError(f"drop_rate must lie in [0, 1), got {recipe.drop_rate}")

    def _source_params(self, recipe: MergeRecipe, lm_name: str) -> tuple[list, list]:
        src = recipe.sources_for(lm_name, self.num_layers)
        weights = [src[n].weight if n in src else 0.0 for n in self.source_names]
        densities = [src[n].density if n in src else 1.0 for n in self.source_names]
        return weights, densities

    def _staged(self) -> Iterator[tuple[_Resident, torch.Tensor, torch.Tensor]]:
        """Each tensor's (base, deltas) on the compute device. In host residency they are
        copied into two alternating staging buffers, the next while this one is merged."""
        if self.residency == "device":
            for t in self._tensors:
                yield t, t.base, t.deltas
            return
        cuda = self.device.type == "cuda"
        copier = torch.cuda.Stream(self.device) if cuda else None

        def issue(i: int):
            t = self._tensors[i]
            buf = self._stage[i % 2]
            n = t.base.numel()
            base, deltas = buf[:n], buf[n : n + t.deltas.numel()].view_as(t.deltas)
            if copier is None:
                base.copy_(t.base)
                deltas.copy_(t.deltas)
                return base, deltas, None
            copier.wait_stream(torch.cuda.current_stream(self.device))  # buffer free again
            with torch.cuda.stream(copier):
                base.copy_(t.base, non_blocking=True)
                deltas.copy_(t.deltas, non_blocking=True)
                done = torch.cuda.Event()
                done.record(copier)
            return base, deltas, done

        pending = issue(0)
        for i, t in enumerate(self._tensors):
            base, deltas, done = pending
            if i + 1 < len(self._tensors):
                pending = issue(i + 1)
            if done is not None:
                torch.cuda.current_stream(self.device).wait_event(done)
            yield t, base, deltas

    def _merge_one(
        self,
        t: _Resident,
        base: torch.Tensor,
        deltas: torch.Tensor,
        recipe: Recipe,
        seed: int,
        out: torch.Tensor,
    ) -> None:
        """Write the merged shared part of `t` into `out` (flat, resident dtype and device)."""
        if isinstance(recipe, MethodRecipe):
            out.copy_(self._merge_method(t, base, deltas, recipe, seed).reshape(-1))
            return
        weights, densities = self._source_params(recipe, t.lm_name)
        dare = recipe.drop_rate > 0
        keep_from = round(recipe.drop_rate * 65536) if dare else 0
        rescale = 65536 / (65536 - keep_from)  # 1 / (1 - p), p rounded to 16 bits
        thresholds = [0.0] * len(weights)
        trim = min(densities) < 1
        if trim:
            # TIES trims the dropped vector to density d: of the surviving entries, those in
            # the top d / (1 - p) of |tau| (the survivors are a uniform sample of tau)
            densities = [min(1.0, d * rescale) for d in densities]
            if recipe.trim == "global":
                thresholds = [self._magnitudes.threshold(i, d) for i, d in enumerate(densities)]
            else:
                thresholds = [
                    ops.trim_threshold(row, d, from_top)
                    for row, d, from_top in zip(deltas, densities, t.from_top, strict=True)
                ]
        floats, ints = fused.parameters(
            weights,
            thresholds,
            scale=recipe.scale,
            rescale=rescale,
            keep_from=keep_from,
            keys=fused.pair_seeds(seed, t.lm_name, len(weights)) if dare else None,
            dtype=self.dtype,
            device=self.device,
        )
        consensus = recipe.sign_consensus
        variant = fused.variant(
            dare=dare, trim=trim, consensus=consensus, normalize=consensus, weights=weights
        )
        self.kernels.gta(deltas, base, out, floats, ints, variant)

    def _merge_method(
        self,
        t: _Resident,
        base: torch.Tensor,
        deltas: torch.Tensor,
        recipe: MethodRecipe,
        seed: int,
    ) -> torch.Tensor:
        method = get_method(recipe.method)
        models = [(base + d).view(t.shape) for d in deltas]
        shared = {p.name: recipe.parameters.get(p.name, p.default) for p in method.params}
        per = {
            p.name: [recipe.sources.get(n, {}).get(p.name, p.default) for n in self.source_names]
            for p in method.params
            if p.per_model
        }
        missing = [p for p, values in per.items() if any(v is ... for v in values)]
        missing += [p for p, v in shared.items() if v is ... and p not in per]
        if missing:
            raise MergeError(f"recipe for {method.name} lacks parameter {missing[0]!r}")
        base_in = None if method.base == Base.IGNORED else base.view(t.shape)
        generator = ops.tensor_generator(seed, t.lm_name, self.device)
        try:
            return method.kernel(Inputs(t.lm_name, base_in, models, generator), shared, per)
        except ValueError as exc:
            raise MergeError(f"{method.name} on {t.lm_name}: {exc}") from None

    def merge_into(self, recipe: Recipe, targets: dict[str, torch.Tensor], seed: int = 0) -> None:
        """Write the merged language tensors in place into `targets` (VLM names; other
        entries such as the vision tower are left alone)."""
        self._check(recipe)
        resolved = {}
        for t in self._tensors:
            key = next((k for k in t.vlm_forms if k in targets), None)
            if key is None:
                raise MergeError(f"targets have no tensor for {t.vlm_forms[0]!r}")
            target = targets[key]
            full = (t.shape[0] + (0 if t.extra is None else t.extra.shape[0]), *t.shape[1:])
            if tuple(target.shape) != full:
                raise MergeError(
                    f"target {key!r} has shape {list(target.shape)}, expected {list(full)}"
                )
            resolved[t.lm_name] = target
        with torch.no_grad():
            for t, base, deltas in self._staged():
                target = resolved[t.lm_name]
                shared = target if t.extra is None else target[: t.shape[0]]
                direct = (
                    shared.dtype == self.dtype
                    and shared.device == self.device
                    and shared.is_contiguous()
                )
                if direct:
                    self._merge_one(t, base, deltas, recipe, seed, shared.view(-1))
                else:
                    tmp = torch.empty_like(base)
                    self._merge_one(t, base, deltas, recipe, seed, tmp)
                    shared.copy_(tmp.view(t.shape))
                if t.extra is not None:
                    target[t.shape[0] :].copy_(t.extra)

    def merged_tensors(
        self, recipe: Recipe, seed: int = 0, stored_names: bool = False
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """(VLM name, new merged tensor) pairs, for backends that copy weights. Names are
        the canonical (state-dict) ones, or as stored in the VLM's checkpoint."""
        self._check(recipe)
        with torch.no_grad():
            for t, base, deltas in self._staged():
                flat = torch.empty_like(base)
                self._merge_one(t, base, deltas, recipe, seed, flat)
                merged = flat.view(t.shape)
                if t.extra is not None:
                    merged = torch.cat([merged, t.extra])
                yield (t.stored if stored_names else t.vlm_forms[0]), merged


def merger_for(models: ModelsConfig, device: str | torch.device) -> ResidentMerger:
    """The resident merger of a search config's models (every actor's, and the export's)."""
    return ResidentMerger(
        base_path=models.base.path,
        vlm_name=models.vlm.name,
        vlm_path=models.vlm.path,
        sources={s.name: s.path for s in models.sources},
        name_map=models.name_map,
        device=device,
        dtype=DTYPES[models.dtype],
        residency=models.residency,
        kernels=models.merge_kernels,
    )


def _compact(counts: torch.Tensor) -> torch.Tensor:
    """Counts as int32 when they fit (an 8B model keeps ~300 of these per source)."""
    return counts.to(torch.int32) if int(counts[-1]) < 2**31 else counts


def _store(tensor: torch.Tensor, device: torch.device, pin: bool) -> torch.Tensor:
    tensor = tensor.to(device)
    return tensor.pin_memory() if pin else tensor

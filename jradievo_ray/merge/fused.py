"""Fused generalized task arithmetic: a tensor's whole merge in one pass over its inputs.

    out = base + scale * combine_i(w_i * trim_i(dare(tau_i)))          (tau: [k, n])

`gta` is written in pointwise torch ops only, unrolled over the k sources so that it has
no reduction. Compiled by torch.compile (inductor: C++/OpenMP on CPU, Triton on CUDA) it
becomes one kernel that reads base and each task vector once and writes `out` once, with
no temporaries; eager, it runs column chunk by column chunk so that its temporaries stay
in cache. Both run the same expressions, so they give the same merge.

combine: the weighted sum, or with `consensus` TIES sign election (mergekit's 'sum'
consensus); `normalize` divides by the summed weights (of the agreeing entries).
trim keeps entries whose magnitude |tau| reaches the source's threshold (0 keeps all).
DARE keeps an entry when a 16-bit uniform reaches `keep_from` and rescales the kept ones
by 65536 / (65536 - keep_from).

DARE's uniforms come from a counter-based hash of (tensor seed, source pair, column), not
a stateful generator: the mask is a pure function of (seed, tensor name, position), the
same eager and compiled, on CPU and CUDA, and costs no random draws. The hash is
Mueller's 0x45d9f3b mixer on uint32 values held in int32 (torch has no uint32 shifts):
products wrap modulo 2^32 as uint32 ones do, right shifts are masked to be logical.
One hash gives the uniforms of two sources. (int64 arithmetic, which could not wrap, ran
at half the speed on AVX2, which has no 64-bit multiply.)
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from typing import Literal

import torch

from jradievo_ray.errors import MergeError

KernelMode = Literal["auto", "compiled", "eager"]
# "auto" compiles tensors of at least this many columns (smaller ones cost more to
# compile than they ever take to merge).
AUTO_COMPILE_COLUMNS = 1 << 22
RECOMPILE_LIMIT = 64
TINY = 2.0**-126  # the smallest normal float32
_M32 = 0xFFFFFFFF
_MIX = 0x45D9F3B
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    """The static shape of a merge; each variant is one compiled kernel."""

    dare: bool = False
    trim: bool = False
    consensus: bool = False
    normalize: bool = False
    negative_weights: bool = False  # some weight < 0 (TIES normalisation then compares)


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """Mueller's mixer of int32 tensors read as uint32 (tests/test_merge_fused.py holds its
    plain-integer definition)."""
    x = (((x >> 16) & 0xFFFF) ^ x) * _MIX
    x = (((x >> 16) & 0xFFFF) ^ x) * _MIX
    return ((x >> 16) & 0xFFFF) ^ x


def _signed32(x: int) -> int:
    return x - (1 << 32) if x >= 1 << 31 else x


def pair_seeds(seed: int, name: str, k: int) -> list[int]:
    """One 32-bit key per pair of sources for tensor `name` (splitmix64 of seed and name)."""
    keys = []
    for pair in range((k + 1) // 2):
        z = (seed * 0x9E3779B97F4A7C15 + zlib.crc32(name.encode()) + pair * 0xBF58476D1CE4E5B9) % (
            1 << 64
        )
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 % (1 << 64)
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB % (1 << 64)
        keys.append((z ^ (z >> 31)) & _M32)
    return keys


def _keep_masks(ints: torch.Tensor, k: int, n: int, offset: int, device) -> list[torch.Tensor]:
    """DARE's keep mask of each source over columns [offset, offset + n).
    ints = [keep_from, key of pair 0, key of pair 1, ...]."""
    column = torch.arange(n, device=device, dtype=torch.int32) + offset
    masks = []
    for pair in range((k + 1) // 2):
        h = _mix32(column ^ ints[1 + pair])
        masks += [(h & 0xFFFF) >= ints[0], ((h >> 16) & 0xFFFF) >= ints[0]]
    return masks[:k]


def gta(
    deltas: torch.Tensor,
    base: torch.Tensor,
    out: torch.Tensor,
    floats: torch.Tensor,
    ints: torch.Tensor,
    offset: int,
    variant: Variant,
) -> None:
    """out = base + scale * combine(...) over columns [offset, offset + n) of a tensor.

    floats = [w_1..w_k, threshold_1..threshold_k, rescale, scale, divisor] (divisor: what
    the plain weighted sum is divided by, 1 unless normalizing); ints as `_keep_masks`."""
    k, n = deltas.shape
    ct = floats.dtype
    w, thr = floats[:k], floats[k : 2 * k]
    rescale, scale, divisor = floats[2 * k], floats[2 * k + 1], floats[2 * k + 2]
    keep = _keep_masks(ints, k, n, offset, deltas.device) if variant.dare else None
    xs = []
    for i in range(k):
        x = deltas[i].to(ct)
        if variant.trim:
            x = torch.where(x.abs() >= thr[i], x, 0.0)
        if keep is not None:
            x = torch.where(keep[i], x * rescale, 0.0)
        xs.append(x * w[i])
    if variant.consensus:
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        # majority sign m; y_i = relu(m * x_i) is |x_i| where x_i agrees with m, else 0
        # (a where, not copysign: inductor calls copysign out of line on CPU)
        m = torch.where(total >= 0, 1.0, -1.0)
        ys = [torch.clamp(x * m, min=0) for x in xs]
        mixed = ys[0]
        for y in ys[1:]:
            mixed = mixed + y
        mixed = mixed * m
        if variant.normalize:
            agreeing = torch.where(ys[0] > 0, w[0], 0.0)
            for i in range(1, k):
                agreeing = agreeing + torch.where(ys[i] > 0, w[i], 0.0)
            if variant.negative_weights:
                mixed = mixed / torch.where(agreeing == 0, 1.0, agreeing)
            else:
                # agreeing == 0 only where no entry agrees (mixed == 0): the same quotient.
                # inductor's CPU code for the compare above runs 3x slower (DARE + TIES).
                mixed = mixed / torch.clamp(agreeing, min=TINY)
    else:
        mixed = xs[0]
        for x in xs[1:]:
            mixed = mixed + x
        mixed = mixed / divisor
    out.copy_((base.to(ct) + scale * mixed).to(out.dtype))


def chunk_size(device: torch.device) -> int:
    """Eager columns per chunk: small enough on CPU for the temporaries to stay in cache,
    large on accelerators where each op costs a launch."""
    return 1 << 16 if device.type == "cpu" else 1 << 24


class Kernels:
    """Runs `gta` compiled or eager.

    mode "compiled" compiles every tensor (a failure to compile is an error); "eager"
    never compiles; "auto" compiles tensors of at least AUTO_COMPILE_COLUMNS columns and
    falls back to eager for good, with a warning, when compiling fails here (no C++
    compiler, say)."""

    def __init__(self, mode: KernelMode = "auto"):
        if mode not in ("auto", "compiled", "eager"):
            raise MergeError(f"merge kernels must be auto, compiled or eager, got {mode!r}")
        self.mode = mode
        self._compiled_gta = None  # torch.compile(gta), made on first use
        self._broken = False

    def compiles(self, columns: int) -> bool:
        """Whether a tensor of `columns` columns runs compiled."""
        if self.mode == "eager" or self._broken:
            return False
        return self.mode == "compiled" or columns >= AUTO_COMPILE_COLUMNS

    def _gta_compiled(self, *args) -> bool:
        if self._compiled_gta is None:
            import torch._dynamo

            # one compiled graph per (variant, dtypes, k): more than dynamo's default 8
            torch._dynamo.config.recompile_limit = max(
                torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT
            )
            self._compiled_gta = torch.compile(gta, dynamic=True)
        try:
            self._compiled_gta(*args)
        except Exception as exc:  # inductor raises many kinds; only "auto" may recover
            if self.mode == "compiled":
                raise MergeError(f"merge kernel did not compile: {exc}") from exc
            log.warning("merge kernels run eager: compiling failed (%s)", exc)
            self._broken = True
            return False
        return True

    def gta(
        self,
        deltas: torch.Tensor,
        base: torch.Tensor,
        out: torch.Tensor,
        floats: torch.Tensor,
        ints: torch.Tensor,
        variant: Variant,
    ) -> None:
        # detached views: a Parameter target would otherwise be a graph of its own
        deltas, base, out = deltas.detach(), base.detach(), out.detach()
        n = deltas.shape[1]
        if n >= 2**31:  # DARE's column counter is int32
            raise MergeError(f"a tensor of {n} entries per source is too large to merge")
        if self.compiles(n) and self._gta_compiled(deltas, base, out, floats, ints, 0, variant):
            return
        step = chunk_size(deltas.device)
        for s in range(0, n, step):
            e = min(n, s + step)
            gta(deltas[:, s:e], base[s:e], out[s:e], floats, ints, s, variant)


_SHARED: dict[str, Kernels] = {}


def kernels(mode: KernelMode = "auto") -> Kernels:
    """This process's Kernels for `mode` (shared, so each variant compiles once)."""
    if mode not in _SHARED:
        _SHARED[mode] = Kernels(mode)
    return _SHARED[mode]


def variant(
    *, dare: bool, trim: bool, consensus: bool, normalize: bool, weights: list[float]
) -> Variant:
    return Variant(dare, trim, consensus, normalize, negative_weights=min(weights) < 0)


def parameters(
    weights: list[float],
    thresholds: list[float],
    *,
    scale: float,
    rescale: float = 1.0,
    divisor: float = 1.0,
    keep_from: int = 0,
    keys: list[int] | None = None,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(floats, ints) argument tensors of `gta`, in the compute dtype for `dtype`."""
    ct = torch.promote_types(dtype, torch.float32)
    floats = torch.tensor([*weights, *thresholds, rescale, scale, divisor], dtype=torch.float64)
    keys = keys or [0] * ((len(weights) + 1) // 2)
    ints = torch.tensor([keep_from, *map(_signed32, keys)], dtype=torch.int32)
    return floats.to(device=device, dtype=ct), ints.to(device)

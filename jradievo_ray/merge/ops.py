"""Tensor kernels shared by the merge methods: exact magnitude thresholds in O(n) and
mergekit's sparsifiers, one tensor at a time. The semantics follow mergekit 0.1.5
(sparsify.py) so results match it; the combining step is fused.py's.
"""

from __future__ import annotations

import zlib

import torch


def tensor_generator(seed: int, name: str, device: torch.device) -> torch.Generator:
    """A generator seeded by (seed, tensor name): same mask for the same pair, on any run."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 0x9E3779B1 + zlib.crc32(name.encode())) % (2**63))
    return g


BUCKETS = 32768
# Below this many entries a k-th value search beats building the bucket counts.
DIRECT_KTH = 1 << 16


def magnitude_buckets(x: torch.Tensor) -> torch.Tensor:
    """The top 16 bits of |x| (monotonic in |x|), as int32; x may hold either sign."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.view(torch.int16).to(torch.int32) & 0x7FFF
    return (x.float().view(torch.int32) >> 16) & 0x7FFF


def counts_from_top(x: torch.Tensor) -> torch.Tensor:
    """counts[i] = how many |x| lie in the top i + 1 buckets (int64, on CPU)."""
    counts = torch.bincount(magnitude_buckets(x.reshape(-1)), minlength=BUCKETS)
    return counts.flip(0).cumsum(0).cpu()


def kth_largest_magnitude(x: torch.Tensor, k: int, from_top: torch.Tensor | None = None) -> float:
    """Exact k-th largest |x| in O(n): the bucket where the count from the top reaches k
    (`counts_from_top`, computed here unless given) is exact for 16-bit floats; for
    float32 that bucket's few entries are then searched."""
    flat = x.reshape(-1)
    direct = from_top is None and flat.numel() <= DIRECT_KTH
    if direct or x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        return float(torch.kthvalue(flat.abs(), flat.numel() - k + 1).values)
    if from_top is None:
        from_top = counts_from_top(flat)
    i = int(torch.searchsorted(from_top, torch.tensor([k], dtype=from_top.dtype)))
    level = BUCKETS - 1 - i
    if x.dtype != torch.float32:
        return float(torch.tensor([level], dtype=torch.int16).view(x.dtype)[0])
    above = int(from_top[i - 1]) if i > 0 else 0
    band = flat[magnitude_buckets(flat) == level].abs()
    return float(torch.kthvalue(band, band.numel() - (k - above) + 1).values)


def trim_threshold(x: torch.Tensor, density: float, from_top: torch.Tensor | None = None):
    """The magnitude at or above which TIES keeps `density` of x's entries (mergekit's
    `magnitude`: at least one entry; ties at the threshold are all kept): 0 keeps all,
    inf none. `from_top`: x's `counts_from_top`, if known."""
    if density >= 1 or x.numel() == 0:
        return 0.0
    if density <= 0:
        return float("inf")
    return kth_largest_magnitude(x, max(1, int(density * x.numel())), from_top)


def topk_mask(row: torch.Tensor, density: float) -> torch.Tensor | None:
    """Mask keeping the `density` fraction of largest magnitudes (see trim_threshold);
    None when everything is kept."""
    if density >= 1 or row.numel() == 0:
        return None
    return row.abs() >= trim_threshold(row, density)


# --- mergekit's sparsification methods (sparsify.py), one tensor at a time -------------


def _l1_rescaled(tensor: torch.Tensor, masked: torch.Tensor, rescale: bool) -> torch.Tensor:
    """Match the L1 norm of the unmasked tensor (mergekit's RescaleNorm.l1)."""
    if not rescale:
        return masked
    before, after = tensor.abs().sum(), masked.abs().sum()
    if before < 1e-7 or after < 1e-7:
        return masked
    return masked * (before / after)


def magnitude(tensor: torch.Tensor, density: float, rescale: bool = False) -> torch.Tensor:
    mask = topk_mask(tensor.reshape(-1), density)
    if mask is None:
        return tensor
    return _l1_rescaled(tensor, tensor * mask.reshape(tensor.shape), rescale)


def magnitude_outliers(
    tensor: torch.Tensor, density: float, gamma: float, rescale: bool = False
) -> torch.Tensor:
    """Drop the `gamma` fraction of largest magnitudes, then the smallest, keeping `density`."""
    if density >= 1:
        return tensor
    n = tensor.numel()
    target_n = int(density * n)
    n_bot = max(0, n - target_n - int(gamma * n))
    mag = tensor.abs().reshape(-1)
    if mag.device.type == "cpu":
        mag = mag.float()
    order = torch.sort(mag, descending=False).indices
    mask = torch.zeros(n, dtype=tensor.dtype, device=tensor.device)
    mask[order[n_bot : n_bot + target_n]] = 1
    return _l1_rescaled(tensor, tensor * mask.reshape(tensor.shape), rescale)


def bernoulli(
    tensor: torch.Tensor, density: float, generator: torch.Generator, rescale: bool = False
) -> torch.Tensor:
    """DARE's random drop keeping `density`; mergekit rescales by L1 norm, not 1/density."""
    if density >= 1:
        return tensor
    keep = torch.rand(tensor.shape, generator=generator, device=tensor.device) < density
    return _l1_rescaled(tensor, tensor * keep, rescale)


def della_magprune(
    tensor: torch.Tensor,
    density: float,
    epsilon: float,
    generator: torch.Generator,
    rescale: bool = False,
) -> torch.Tensor:
    """DELLA: keep probability rises linearly with magnitude rank (per row) from
    density - epsilon to density + epsilon."""
    if density >= 1:
        return tensor
    if density <= 0:
        return torch.zeros_like(tensor)
    if density + epsilon >= 1 or density - epsilon <= 0:
        raise ValueError("epsilon must be chosen such that density +/- epsilon is in (0, 1)")
    rows = tensor.unsqueeze(0) if tensor.dim() < 2 else tensor
    ranks = torch.argsort(torch.argsort(rows.abs(), dim=1), dim=1).to(rows.dtype) + 1
    lo, hi = ranks.min(dim=1, keepdim=True).values, ranks.max(dim=1, keepdim=True).values
    rank_norm = ((ranks - lo) / (hi - lo)).clamp(0, 1)
    probs = (density - epsilon) + rank_norm * 2 * epsilon
    keep = torch.rand(probs.shape, generator=generator, device=probs.device) < probs
    return _l1_rescaled(rows, rows * keep, rescale).reshape(tensor.shape)

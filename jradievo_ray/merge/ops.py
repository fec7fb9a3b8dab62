"""In-place tensor kernels shared by the merge methods.

`work` is a stack of task vectors of shape [k, n] (one row per source, flattened),
modified in place. The semantics follow mergekit 0.1.5 (sparsify.py and
generalized_task_arithmetic.py) so results match it.
"""

from __future__ import annotations

import zlib

import torch


def tensor_generator(seed: int, name: str, device: torch.device) -> torch.Generator:
    """A generator seeded by (seed, tensor name): same mask for the same pair, on any run."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 0x9E3779B1 + zlib.crc32(name.encode())) % (2**63))
    return g


def dare_(work: torch.Tensor, drop_rate: float, generator: torch.Generator) -> None:
    """Drop each entry with probability p and rescale the kept ones by 1/(1-p)."""
    if drop_rate <= 0:
        return
    keep = torch.rand(work.shape, generator=generator, device=work.device) >= drop_rate
    work.mul_(keep).mul_(1.0 / (1.0 - drop_rate))


def topk_mask(row: torch.Tensor, density: float) -> torch.Tensor | None:
    """Mask keeping the `density` fraction of largest magnitudes (mergekit's `magnitude`:
    at least one entry); None when everything is kept."""
    n = row.numel()
    if density >= 1 or n == 0:
        return None
    if density <= 0:
        return torch.zeros_like(row, dtype=torch.bool)
    k = max(1, int(density * n))
    mag = row.abs()
    if mag.device.type == "cpu" and mag.dtype != torch.float32:
        mag = mag.float()
    threshold = torch.kthvalue(mag, n - k + 1).values
    return mag >= threshold


def trim_(work: torch.Tensor, densities: list[float]) -> None:
    """TIES trim: per row, keep the top-density fraction by magnitude."""
    for row, density in zip(work, densities, strict=True):
        mask = topk_mask(row, density)
        if mask is not None:
            row.mul_(mask)


def threshold_(work: torch.Tensor, thresholds: list[float]) -> None:
    """Global trim: per row, zero the entries whose magnitude is below the row's threshold."""
    for row, thr in zip(work, thresholds, strict=True):
        if thr > 0:
            row.mul_(row.abs() >= thr)


def combine(
    work: torch.Tensor, weights: torch.Tensor, consensus: bool, normalize: bool
) -> torch.Tensor:
    """Weighted sum of the rows, optionally with TIES sign election ('sum' consensus) and
    normalisation by the summed weights of the entries that agree. Scales `work` in place."""
    w = weights.to(work.dtype).unsqueeze(-1)
    work.mul_(w)
    if consensus:
        majority_positive = work.sum(dim=0) >= 0
        agree = torch.where(majority_positive, work > 0, work < 0)
        mixed = (work * agree).sum(dim=0)
        divisor = (w * agree).sum(dim=0)
        divisor[divisor == 0] = 1
    else:
        mixed = work.sum(dim=0)
        divisor = w.sum(dim=0)
        divisor[divisor.abs() < 1e-8] = 1
    if normalize:
        mixed /= divisor
    return mixed


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

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

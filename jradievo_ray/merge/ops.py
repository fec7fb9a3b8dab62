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
    """Drop each entry with probability p and rescale the kept ones by 1/(1-p).

    p is rounded to a multiple of 2^-16: one 64-bit random draw gives four 16-bit
    uniforms, four times fewer draws than torch.rand (the cost of DARE on CPU)."""
    if drop_rate <= 0:
        return
    cut = round(drop_rate * 65536)
    n = work.numel()
    draws = torch.randint(
        -(2**63),
        2**63 - 1,
        ((n + 3) // 4,),
        dtype=torch.int64,
        generator=generator,
        device=work.device,
    )
    uniform16 = draws.view(torch.int16)[:n].view(work.shape)
    work.mul_(uniform16 >= cut - 32768).mul_(65536 / (65536 - cut))


def kth_largest(mag: torch.Tensor, k: int) -> torch.Tensor:
    """Exact k-th largest of a flat non-negative float tensor, in O(n): a histogram of the
    top 16 bits of each value (monotonic for non-negative floats) finds its bucket, which
    is exact for 16-bit floats; for float32 the bucket's few entries are then searched."""
    n = mag.numel()
    if mag.dtype in (torch.float16, torch.bfloat16):
        top = mag.view(torch.int16).to(torch.int32)
    elif mag.dtype == torch.float32:
        top = mag.view(torch.int32) >> 16
    else:
        return torch.kthvalue(mag, n - k + 1).values
    counts = torch.bincount(top, minlength=32768)
    from_top = counts.flip(0).cumsum(0)
    i = int(torch.searchsorted(from_top, torch.tensor([k], device=mag.device)))
    level = 32767 - i
    if mag.dtype != torch.float32:
        return torch.tensor([level], dtype=torch.int16, device=mag.device).view(mag.dtype)[0]
    above = int(from_top[i - 1]) if i > 0 else 0
    band = mag[top == level]
    return torch.kthvalue(band, band.numel() - (k - above) + 1).values


def topk_mask(row: torch.Tensor, density: float) -> torch.Tensor | None:
    """Mask keeping the `density` fraction of largest magnitudes (mergekit's `magnitude`:
    at least one entry; ties at the threshold are all kept); None when everything is kept."""
    n = row.numel()
    if density >= 1 or n == 0:
        return None
    if density <= 0:
        return torch.zeros_like(row, dtype=torch.bool)
    mag = row.abs()
    return mag >= kth_largest(mag, max(1, int(density * n)))


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


def chunk_size(device: torch.device) -> int:
    """Columns per chunk: small enough on CPU for the [k, chunk] temporaries to stay in
    cache, large on accelerators where each op costs a launch."""
    return 1 << 18 if device.type == "cpu" else 1 << 24


def merge_into_(
    work: torch.Tensor,
    weights: torch.Tensor,
    consensus: bool,
    normalize: bool,
    base: torch.Tensor,
    scale: float,
    out: torch.Tensor,
) -> None:
    """out = base + scale * combine_i(weights_i * work_i), chunk by chunk over columns.

    combine: the weighted sum, or with `consensus` TIES sign election (mergekit's 'sum'
    consensus); `normalize` divides by the summed weights (of the agreeing entries).
    `work` [k, n] is read only; base and out are flat [n]."""
    k, n = work.shape
    w = weights.to(device=work.device, dtype=work.dtype).view(k, 1)
    total = float(weights.sum())
    step = chunk_size(work.device)
    for s in range(0, n, step):
        e = min(n, s + step)
        x = work[:, s:e] * w
        if consensus:
            # majority sign m (+1 when the sum is >= 0; a sum of -0 has only zero terms);
            # y_i = relu(m * x_i) is |x_i| where x_i agrees with m, else 0, so the agreeing
            # sum is m * sum(y) and the agreeing weight sum is sum(w * sign(y)). Float ops
            # only: bool masks make this several times slower on CPU.
            total_x = x.sum(dim=0)
            majority = torch.copysign(torch.ones_like(total_x), total_x)
            y = (x * majority).clamp_(min=0)
            mixed = y.sum(dim=0) * majority
            if normalize:
                divisor = (torch.sign(y) * w).sum(dim=0)
                mixed /= divisor.masked_fill_(divisor == 0, 1)
        else:
            mixed = x.sum(dim=0)
            if normalize and abs(total) >= 1e-8:
                mixed /= total
        torch.add(base[s:e], mixed, alpha=scale, out=out[s:e])


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

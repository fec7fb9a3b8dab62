"""Global magnitude thresholds over a whole model without sorting it.

JRadiEvo trims each task vector with one magnitude threshold over all its tensors. For
an 8B model that is a k-th value over billions of entries; instead each source keeps a
histogram of log2|tau| (BINS bins over [2^LOW, 2^HIGH], built once when the sources are
loaded) and a density d gives the lower edge of the bin where the count from the top
reaches d * N. Error bound: the threshold is at most one bin (a factor 2^((HIGH-LOW)/BINS),
about 0.4 %) below the exact k-th magnitude, so the kept count exceeds d * N by at most
the entries of that one bin; magnitudes outside the range fall into the end bins.
"""

from __future__ import annotations

import torch

LOW, HIGH, BINS = -40.0, 10.0, 8192


class MagnitudeHistogram:
    def __init__(self, sources: int, device: torch.device):
        self.counts = torch.zeros((sources, BINS), dtype=torch.float64, device=device)
        self.total = torch.zeros(sources, dtype=torch.float64)

    def add(self, deltas: torch.Tensor) -> None:
        """Count the magnitudes of one tensor's task vectors ([sources, n])."""
        for i, row in enumerate(deltas):
            mag = row.abs()
            nonzero = mag[mag > 0].float()
            logs = nonzero.log2().clamp_(LOW, HIGH)
            self.counts[i] += torch.histc(logs, bins=BINS, min=LOW, max=HIGH).double()
            self.total[i] += row.numel()

    def threshold(self, source: int, density: float) -> float:
        """Magnitude at or above which about `density` of the source's entries lie
        (0 when everything is kept)."""
        if density >= 1:
            return 0.0
        want = density * float(self.total[source])
        from_top = self.counts[source].flip(0).cumsum(0).cpu()
        hit = int(torch.searchsorted(from_top, torch.tensor([max(want, 1.0)], dtype=torch.float64)))
        if hit >= BINS:
            return 0.0
        edge = HIGH - (hit + 1) * (HIGH - LOW) / BINS
        return 2.0**edge

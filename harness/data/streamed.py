"""A map-style torch Dataset as a split the harness trains on: read batch by batch through a DataLoader, never
loaded whole into memory. The harness's subset is a list of the Dataset's indices; standardization, when
asked, is applied to each batch on the device with statistics from one pass over the training pool."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

# Batch size of the passes that read a whole split once (labels, statistics): a read size, not a training
# batch; it bounds how much of the Dataset is in memory at once.
SCAN_BATCH = 256


@dataclass(frozen=True)
class Streamed:
    """Which items of `dataset` form the split, and how batches reach the device."""

    dataset: torch.utils.data.Dataset
    indices: np.ndarray  # the split's items, in order (a subset of range(len(dataset)))
    workers: int = 0  # DataLoader worker processes
    mean: torch.Tensor | None = None  # per-channel (dim 1) statistics to standardize x with, or None
    std: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def batches(self, index_batches: Iterable[torch.Tensor], device: torch.device) -> Iterator[tuple]:
        """(x, y) on `device` for each batch of positions (into this split) that `index_batches` yields:
        the DataLoader reads exactly those items, in that order, with its workers prefetching."""
        positions = (self.indices[batch.cpu().numpy()].tolist() for batch in index_batches)
        loader = DataLoader(
            self.dataset,
            batch_sampler=positions,  # any iterable of index lists serves
            num_workers=self.workers,
            pin_memory=device.type == "cuda",
        )
        # The statistics go to the device once, not with every batch (a blocking copy per step on a GPU).
        stats = None if self.mean is None or self.std is None else (self.mean.to(device), self.std.to(device))
        for x, y in loader:
            x = x.to(device, non_blocking=True)
            yield self._standardized(x, stats), y.to(device, non_blocking=True)

    def in_order(self, batch_size: int, device: torch.device) -> Iterator[tuple]:
        """Every item once, in order: for evaluation."""
        return self.batches(torch.arange(len(self)).split(batch_size), device)

    def head(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first n items as one batch on the CPU (for counting FLOPs on a real batch)."""
        return next(self.batches([torch.arange(min(n, len(self)))], torch.device("cpu")))

    @staticmethod
    def _standardized(x: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        if stats is None or not x.is_floating_point():
            return x
        mean, std = stats
        return (x.float() - mean) / std


def scan(
    dataset: torch.utils.data.Dataset, workers: int, statistics: bool
) -> tuple[np.ndarray, tuple[torch.Tensor, torch.Tensor] | None]:
    """One pass over `dataset` (read in batches, nothing kept but labels and sums): its integer labels and,
    if `statistics`, the per-channel (dim 1) mean and std of float inputs, as harness.data standardizes
    in-memory data. A Dataset with a `targets` attribute (torchvision's convention) is not read for labels."""
    targets = getattr(dataset, "targets", None)
    labels = None if targets is None else np.asarray(targets)
    if labels is not None and not statistics and len(labels) == len(dataset):  # type: ignore[arg-type]
        return labels, None
    read, count = [], 0
    total = total_sq = None
    for x, y in DataLoader(dataset, batch_size=SCAN_BATCH, num_workers=workers):
        read.append(np.asarray(y))
        if statistics and x.is_floating_point():
            x = x.double()
            dims = [d for d in range(x.ndim) if d != 1]
            total = x.sum(dim=dims, keepdim=True) + (0 if total is None else total)
            total_sq = x.square().sum(dim=dims, keepdim=True) + (0 if total_sq is None else total_sq)
            count += x.numel() // x.shape[1] if x.ndim > 1 else x.numel()
    found = np.concatenate(read) if read else np.zeros(0, dtype=np.int64)
    if total is None or total_sq is None or count == 0:
        return found, None
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel is centred, not divided by 0
    return found, (mean.float(), std.float())

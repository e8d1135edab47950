"""One monotonic clock for every timing, read only after the device has finished its queued work.

CUDA kernels run asynchronously: reading a clock without synchronizing measures launch time, not work.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Accumulates time in named buckets (train, eval, warmup), each segment bracketed by syncs, and this
    process's CPU time (all threads) over the same segments: time beside CPU time shows a contended run."""

    def __init__(self, device: torch.device):
        self.device = device
        self.totals: dict[str, float] = {}
        self.cpu_totals: dict[str, float] = {}

    def now(self) -> float:
        synchronize(self.device)
        return time.perf_counter()

    @contextmanager
    def segment(self, bucket: str):
        start, cpu_start = self.now(), time.process_time()
        try:
            yield
        finally:
            self.totals[bucket] = self.totals.get(bucket, 0.0) + self.now() - start
            self.cpu_totals[bucket] = self.cpu_totals.get(bucket, 0.0) + time.process_time() - cpu_start

    def total(self, bucket: str) -> float:
        return self.totals.get(bucket, 0.0)

    def cpu_total(self, bucket: str) -> float:
        return self.cpu_totals.get(bucket, 0.0)

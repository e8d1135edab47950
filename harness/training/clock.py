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
        self._open: dict[str, tuple[float, float]] = {}

    def now(self) -> float:
        synchronize(self.device)
        return time.perf_counter()

    def start(self, bucket: str) -> None:
        """Open a segment of `bucket` (a no-op while one is open): for segments that begin and end in
        different calls, such as a callback's hooks; `segment` is the block form."""
        if bucket not in self._open:
            self._open[bucket] = (self.now(), time.process_time())

    def stop(self, bucket: str) -> None:
        """Close the open segment of `bucket` and add it to the totals (a no-op when none is open)."""
        if bucket not in self._open:
            return
        start, cpu_start = self._open.pop(bucket)
        self.totals[bucket] = self.totals.get(bucket, 0.0) + self.now() - start
        self.cpu_totals[bucket] = self.cpu_totals.get(bucket, 0.0) + time.process_time() - cpu_start

    def running(self, bucket: str) -> bool:
        return bucket in self._open

    @contextmanager
    def segment(self, bucket: str):
        self.start(bucket)
        try:
            yield
        finally:
            self.stop(bucket)

    def total(self, bucket: str) -> float:
        return self.totals.get(bucket, 0.0)

    def cpu_total(self, bucket: str) -> float:
        return self.cpu_totals.get(bucket, 0.0)

"""What the benchmarks (``magnet bench generate``, ``magnet bench train``) share: the sizes of the
random models they time, device synchronisation, and peak-memory measurement.

Peak memory: CUDA: ``torch.cuda.max_memory_allocated`` over the block (reset first), i.e. tensors
only, not the caching allocator's reserve. MPS: ``torch.mps.driver_allocated_memory`` sampled. CPU:
the process's peak resident set size, sampled every 5 ms from ``/proc/self/statm`` by a background
thread; where ``/proc`` is missing (macOS), ``resource.getrusage`` ``ru_maxrss`` (the process's
lifetime peak).
"""

from __future__ import annotations

import os
import resource
import sys
import threading
from typing import Callable

import torch

RANDOM_SIZES = {  # (dim, heads, layers): audiocraft's model_scale configs
    "tiny": (64, 4, 2),
    "small": (1024, 16, 24),
    "medium": (1536, 24, 48),
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class PeakMemory:
    """Context manager measuring peak memory of the code inside it (see the module doc)."""

    def __init__(self, device: torch.device, interval: float = 0.005):
        self.device = device
        self.interval = interval
        self.peak: int | None = None
        self.kind: str | None = None
        self.baseline: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self, read: Callable[[], int | None]) -> None:
        while not self._stop.is_set():
            value = read()
            if value is not None:
                self.peak = value if self.peak is None else max(self.peak, value)
            self._stop.wait(self.interval)

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
            self.kind = "cuda_max_memory_allocated"
        elif self.device.type == "mps":
            self.kind = "mps_driver_allocated_memory"
            self._thread = threading.Thread(target=self._sample, args=(torch.mps.driver_allocated_memory,),
                                            daemon=True)
        elif _rss_bytes() is not None:
            self.kind = "cpu_peak_rss"
            self.baseline = _rss_bytes()
            self._thread = threading.Thread(target=self._sample, args=(_rss_bytes,), daemon=True)
        else:
            self.kind = "cpu_ru_maxrss_lifetime"
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        if self.device.type == "cuda":
            self.peak = int(torch.cuda.max_memory_allocated(self.device))
        elif self.kind == "cpu_ru_maxrss_lifetime":
            usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.peak = int(usage if sys.platform == "darwin" else usage * 1024)
        return False

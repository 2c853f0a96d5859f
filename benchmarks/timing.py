"""The benchmark's clock and the statistics it reports (median, percentile, a NaN-safe ratio)."""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch


class Clock:
    """Wall-clock seconds; on CUDA the device is synchronised before each reading."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def time(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        """Seconds ``fn()`` took, and what it returned."""
        t0 = self.now()
        out = fn()
        return self.now() - t0, out


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else math.nan


def percentile(xs: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs, dtype=np.float64), q)) if len(xs) else math.nan


def ratio(a: float, b: float) -> float:
    """a / b, or NaN when either is missing (NaN) or b is zero."""
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan

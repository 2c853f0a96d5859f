"""Allowances for comparing two computations of the same maps that differ only in the order
of their sums (batching, chunking, a shared pass), derived rather than tuned on one CPU.

float32 sums in another order differ by a CPU-dependent number of ulps (one SIDU test allowed
1e-6 of the maximum on one CPU and needed more on another). The comparisons therefore run in
float64, where reordered sums agree to ~1e-16 of their magnitude; the explainers' own
normalisations amplify that by far less than a million, so the float64 maps agree to 1e-10
of their largest value. Explainers return float32 maps, and rounding two values that close
to float32 puts them at most one float32 ulp of the largest value apart.
"""

from __future__ import annotations

import copy

import torch

EPS32 = torch.finfo(torch.float32).eps
FLOAT64_AGREEMENT = 1e-10  # of the largest value, after the methods' amplification (see above)


def in_float64(net: torch.nn.Module, x: torch.Tensor) -> tuple[torch.nn.Module, torch.Tensor]:
    """A float64 copy of ``net`` and ``x`` (the original stays float32)."""
    return copy.deepcopy(net).double(), x.double()


def reordering_allowance(maps: torch.Tensor) -> float:
    """The largest difference between float32 maps computed in float64 in two orders."""
    top = float(maps.abs().max())
    return (EPS32 + FLOAT64_AGREEMENT) * top


def assert_same_but_for_order(got: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(got, expected, rtol=0, atol=reordering_allowance(expected))

"""How tied values are decided: by sharing, never by pixel order.

Upsampled Grad-CAM and ReLU zeros give many pixels the same value, so "the K highest
pixels" and "the rank of a pixel" are not fixed by the values alone. Two rules settle
them, for every metric and for the top-K picture:

- top-K selection (:func:`top_selection`): entries above the K-th value are selected;
  the entries tied at that value share the slots left, each holding an equal fraction
  of a slot. This is the expected selection under a uniformly random tie-break, so the
  result cannot depend on the order of the pixels.
- ranks (:func:`average_ranks`): tied values share the centre of their block of ranks.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class TopSelection:
    """The ``k`` highest entries of an array, entries tied at the cut-off sharing the free slots.

    Attributes
    ----------
    k : int
        Number of slots, ``1 <= k <= N``.
    above : ndarray of bool, same shape as the values
        Entries selected outright: above the cut-off value, or at it when every entry at
        it fits in the slots (then there is no real tie).
    tied : ndarray of bool, same shape as the values
        Entries at the cut-off value that outnumber the ``k - n_above`` free slots; each
        holds :attr:`tie_share` of a slot. All False when there is no real tie.
    """

    k: int
    above: np.ndarray
    tied: np.ndarray

    @property
    def n_above(self) -> int:
        return int(np.count_nonzero(self.above))

    @property
    def n_tied(self) -> int:
        return int(np.count_nonzero(self.tied))

    @property
    def tie_share(self) -> Fraction:
        """Share of a slot each tied entry holds, ``(k - n_above) / n_tied``; 1 without a real tie."""
        n_tied = self.n_tied
        return Fraction(self.k - self.n_above, n_tied) if n_tied else Fraction(1)

    def weights(self) -> np.ndarray:
        """Float64 weight of every entry (same shape as the values): 1 selected outright,
        :attr:`tie_share` tied, 0 otherwise. The weights sum to ``k``."""
        w = self.above.astype(np.float64)
        w[self.tied] = float(self.tie_share)
        return w

    def overlap(self, region: np.ndarray) -> Fraction:
        """Expected number of selected entries inside ``region`` (bool, same shape), exactly.

        Entries above the cut-off count 1, tied entries :attr:`tie_share`; an exact
        rational, so equal overlaps round to bit-identical floats.
        """
        hits_above = int(np.count_nonzero(self.above & region))
        hits_tied = int(np.count_nonzero(self.tied & region))
        return hits_above + self.tie_share * hits_tied


def top_selection(values: np.ndarray, k: int) -> TopSelection:
    """Select the ``k`` highest of ``values`` under the shared-slot tie rule.

    Parameters
    ----------
    values : ndarray, any shape (N entries)
        Finite numbers, e.g. an attribution map (H, W).
    k : int
        How many entries to select, ``1 <= k <= N``.

    Returns
    -------
    TopSelection
        ``above`` and ``tied`` have the shape of ``values``. Runs in O(N):
        ``np.partition`` finds the cut-off value without sorting.

    Raises
    ------
    ValueError
        If ``k`` is outside ``[1, N]``.
    """
    n = values.size
    if not 1 <= k <= n:
        raise ValueError(f"k must lie in [1, {n}], got {k}")
    cutoff = np.partition(values.ravel(), n - k)[n - k]
    above = values > cutoff
    tied = values == cutoff
    if np.count_nonzero(above) + np.count_nonzero(tied) == k:  # every entry at the cut-off fits
        above, tied = above | tied, np.zeros_like(tied)
    return TopSelection(k, above, tied)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks (float64, shape (N,)) of a flat array, ascending; tied values share the
    centre of their block of ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]

"""The top-K picture: every pixel of one map sorted into hit, miss, false alarm or tied.

It draws the selection :func:`.localisation.top_k_overlap` scores (the same
:func:`.ties.top_selection`), so the picture and the printed TKO always agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pixel_evidence.metrics.inputs import map_and_region
from pixel_evidence.metrics.ties import top_selection

# Codes of the top-K picture.
PIXEL_OTHER, PIXEL_HIT, PIXEL_MISS, PIXEL_FALSE_ALARM, PIXEL_TIED_IN, PIXEL_TIED_OUT = range(6)


@dataclass(frozen=True)
class TopKPixels:
    """Classification of every pixel of one map against the defect mask.

    ``codes`` (H, W) uint8 holds PIXEL_* codes. Pixels above the cut-off value are in the
    top K outright; the ``n_tied`` pixels exactly at the cut-off share the remaining
    ``k - n_above`` slots, each counting ``tie_share`` (pixel order never decides).
    """

    codes: np.ndarray
    k: int
    n: int
    n_above: int
    n_tied: int
    tie_share: float
    hits: int          # above the cut-off and in the mask
    misses: int        # in the mask and below the cut-off
    false_alarms: int  # above the cut-off, outside the mask
    tied_in: int       # at the cut-off, in the mask
    tied_out: int      # at the cut-off, outside the mask

    @property
    def expected_hits(self) -> float:
        """Hits with fractional credit for ties: equals TKO x K."""
        return self.hits + self.tie_share * self.tied_in

    @property
    def tko(self) -> float:
        return self.expected_hits / self.k if self.k else math.nan


def topk_pixels(attribution: np.ndarray, mask: np.ndarray) -> TopKPixels:
    """Hit / miss / false-alarm / tied picture of ``attribution``'s top K (K = mask size).

    ``attribution`` and ``mask`` have one shape (H, W); the mask is boolean or coverage in
    [0, 1] (see :func:`.inputs.defect_region`). With
    K = 0 every pixel is ``PIXEL_OTHER``: there is no top K to draw. Raises ``ValueError``
    if the shapes differ or an input holds NaN or inf.
    """
    a, s = map_and_region(attribution, mask)
    n = a.size
    k = int(np.count_nonzero(s))
    codes = np.full(a.shape, PIXEL_OTHER, dtype=np.uint8)
    if k == 0:
        return TopKPixels(codes, 0, n, 0, 0, math.nan, 0, 0, 0, 0, 0)
    top = top_selection(a, k)
    above, tied = top.above, top.tied
    codes[s & ~above & ~tied] = PIXEL_MISS
    codes[s & above] = PIXEL_HIT
    codes[~s & above] = PIXEL_FALSE_ALARM
    codes[s & tied] = PIXEL_TIED_IN
    codes[~s & tied] = PIXEL_TIED_OUT

    def count(code: int) -> int:
        return int(np.count_nonzero(codes == code))

    return TopKPixels(codes, k, n, top.n_above, top.n_tied, float(top.tie_share), count(PIXEL_HIT),
                      count(PIXEL_MISS), count(PIXEL_FALSE_ALARM), count(PIXEL_TIED_IN), count(PIXEL_TIED_OUT))

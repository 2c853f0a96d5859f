"""Checks every metric applies to its inputs: matching shapes, finite values, and one
reading of the defect mask as a boolean region."""

from __future__ import annotations

import numpy as np


def finite_array(values, name: str = "attribution") -> np.ndarray:
    """``values`` as float64 of its own shape; ``ValueError`` naming ``name`` if it holds NaN or inf."""
    x = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return x


# A numeric mask holds each pixel's defect coverage; a pixel is defect when more than half
# of it is, the data loader's rule for 8-bit masks (> 127 of 255). Counting every value
# above 0 instead would let a soft (resized, anti-aliased) mask's fringe inflate K.
COVERAGE_THRESHOLD = 0.5


def defect_region(mask) -> np.ndarray:
    """The defect region S of ``mask`` as a boolean array of the mask's shape.

    A boolean mask is S as it is (nothing to decide). A numeric mask is read as coverage
    in [0, 1], binary (0/1) or soft, and S = ``mask > 0.5``. Raises ``ValueError`` if it
    holds NaN, inf or values outside [0, 1] (for an 8-bit mask pass ``mask > 127``).
    """
    m = np.asarray(mask)
    if m.dtype == bool:
        return m
    m = finite_array(m, "mask")
    if m.size and (m.min() < 0 or m.max() > 1):
        raise ValueError(f"a mask is boolean or holds coverage in [0, 1], got values in [{m.min():g}, {m.max():g}]")
    return m > COVERAGE_THRESHOLD


def map_and_region(attribution, mask) -> tuple[np.ndarray, np.ndarray]:
    """Validate a map/mask pair of one shape (normally (H, W)) and keep its shape.

    Returns ``(a, s)``: ``a`` the float64 attribution values, ``s`` the boolean defect
    region (:func:`defect_region`). Raises ``ValueError`` if the shapes differ, either
    array holds NaN or inf, or the mask is not boolean or in [0, 1].
    """
    a = np.asarray(attribution, dtype=np.float64)
    if a.shape != np.shape(mask):
        raise ValueError(f"attribution shape {a.shape} does not match mask shape {np.shape(mask)}")
    return finite_array(a), defect_region(mask)


def flat_map_and_region(attribution, mask) -> tuple[np.ndarray, np.ndarray]:
    """:func:`map_and_region` flattened: two vectors of length ``N``."""
    a, s = map_and_region(attribution, mask)
    return a.ravel(), s.ravel()

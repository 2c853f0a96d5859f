"""Checks every metric applies to its inputs: matching shapes and finite values."""

from __future__ import annotations

import numpy as np


def finite_array(values, name: str = "attribution") -> np.ndarray:
    """``values`` as float64 of its own shape; ``ValueError`` naming ``name`` if it holds NaN or inf."""
    x = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return x


def map_and_region(attribution, mask) -> tuple[np.ndarray, np.ndarray]:
    """Validate a map/mask pair of one shape (normally (H, W)) and keep its shape.

    Returns ``(a, s)``: ``a`` the float64 attribution values, ``s`` the boolean defect
    region ``mask > 0``. Raises ``ValueError`` if the shapes differ or either array holds
    NaN or inf.
    """
    a = np.asarray(attribution, dtype=np.float64)
    m = np.asarray(mask, dtype=np.float64)
    if a.shape != m.shape:
        raise ValueError(f"attribution shape {a.shape} does not match mask shape {m.shape}")
    return finite_array(a), finite_array(m, "mask") > 0


def flat_map_and_region(attribution, mask) -> tuple[np.ndarray, np.ndarray]:
    """:func:`map_and_region` flattened: two vectors of length ``N``."""
    a, s = map_and_region(attribution, mask)
    return a.ravel(), s.ravel()

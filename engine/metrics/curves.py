"""Areas under deletion and insertion curves.

Torch-free, so result readers can use it; the curves themselves are made by
:mod:`.faithfulness`, which needs the model.
"""

from __future__ import annotations

import numpy as np


def curve_auc(fractions, values) -> float:
    """Trapezoid area under a deletion / insertion curve.

    Parameters
    ----------
    fractions : array-like, shape (steps + 1,)
        Share of pixels removed or added at each step, in [0, 1].
    values : array-like, shape (steps + 1,)
        The target probability at each step.

    Raises
    ------
    ValueError
        Unless both are 1-D of the same length, at least 2.
    """
    x, y = np.asarray(fractions, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"need two 1-D arrays of equal length >= 2, got {x.shape} and {y.shape}")
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))

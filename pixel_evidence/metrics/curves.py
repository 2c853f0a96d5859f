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
        Unless both are 1-D of the same length, at least 2, and ``fractions`` never
        decreases (equal neighbours are allowed: more steps than pixels repeat a count).
        Unsorted points are refused rather than sorted: a curve's points come in step
        order, so a fraction out of order means values paired with the wrong steps, and
        sorting could not say in which order points sharing a fraction were reached.
    """
    x, y = np.asarray(fractions, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"need two 1-D arrays of equal length >= 2, got {x.shape} and {y.shape}")
    falls = np.flatnonzero(np.diff(x) < 0)
    if falls.size:
        i = int(falls[0]) + 1
        raise ValueError(f"fractions must not decrease: fractions[{i}] = {x[i]:g} follows {x[i - 1]:g}")
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))

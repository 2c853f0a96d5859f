"""How well the classifier names the class: the score training and evaluation both report."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def balanced_accuracy(true_labels, predicted_labels, classes: int | Sequence | None = None) -> float:
    """Mean per-class recall, so a rare defect class weighs as much as the many good images.

    Parameters
    ----------
    true_labels : array-like, shape (n,)
        True class of each image: class indices or class names.
    predicted_labels : array-like, shape (n,)
        Predicted class of each image, labelled the same way.
    classes : int or sequence, optional
        The classes to average over: their labels, or their number ``C`` for the indices
        ``0 .. C-1``. Default: every class among ``true_labels``. A class that never
        occurs in ``true_labels`` is skipped, since its recall is undefined.

    Returns
    -------
    float
        In [0, 1]; ``nan`` when none of the classes occurs (e.g. no images).

    Raises
    ------
    ValueError
        If the two label arrays differ in shape.
    """
    y, p = np.asarray(true_labels), np.asarray(predicted_labels)
    if y.shape != p.shape:
        raise ValueError(f"true labels {y.shape} and predicted labels {p.shape} differ in shape")
    if classes is None:
        classes = np.unique(y)
    elif isinstance(classes, int):
        classes = range(classes)
    recalls = [np.mean(p[y == c] == c) for c in classes if np.any(y == c)]
    return float(np.mean(recalls)) if recalls else math.nan

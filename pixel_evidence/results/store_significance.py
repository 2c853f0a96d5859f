"""Significance of the method differences in a sweep store (:mod:`pixel_evidence.metrics.significance`)."""

from __future__ import annotations

from pathlib import Path

from pixel_evidence.metrics.significance import SeedComparison, compare_over_seeds
from pixel_evidence.results.sweep_store import read_store


def store_significance(store: Path | str, *, category: str | None = None, methods: list[str] | None = None,
                       score: str = "tko", split: str = "test", alpha: float = 0.05) -> SeedComparison:
    """Friedman, Nemenyi and Wilcoxon-Holm per seed and pooled over one category of a sweep store.

    Parameters
    ----------
    store : path
        A ``pixel-evidence sweep`` store, e.g. ``pretrained_models/results/sweep``.
    category : str, optional
        The category to compare on; needed only when the store holds more than one.
    methods : list of str, optional
        The methods to compare; default every method in the store;
        ``list(pixel_evidence.methods.DEFAULT_METHODS)`` gives the three study methods.
    score, split, alpha
        As :func:`compare_over_seeds`; only correctly classified images with a finite score count.
    """
    tables = read_store(store)
    categories = tables.categories
    if category is None:
        if len(categories) != 1:
            raise ValueError(f"name one category of {categories}")
        category = categories[0]
    rows = tables.category(category)
    return compare_over_seeds(rows[rows["split"] == split], score=score, methods=methods, alpha=alpha)


"""The registry of localisation scores: each one's name, labels, meaning, function and direction.

Evaluation computes these columns, the results reader checks them, and the dashboard names
them and lets a person choose which one decides the winner, all from this one table.
Adding a score is adding its function and one entry here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np

from pixel_evidence.metrics.localisation import auroc, pointing_game, relevance_mass, top_k_overlap


@dataclass(frozen=True)
class Score:
    """One way to grade a map ``a`` against a defect mask ``S`` (both (H, W))."""

    key: str                 # column name in the result tables and the URL value
    label: str               # full name, for selectors and headings
    short: str               # name that fits a plot title
    note: str                # one sentence: what the number means
    function: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool = True

    def __call__(self, attribution: np.ndarray, mask: np.ndarray) -> float:
        return self.function(attribution, mask)


def by_key(*scores: Score) -> dict[str, Score]:
    """``{score.key: score}`` in the given order; ``ValueError`` if a key repeats (a dict would
    keep only the last one silently)."""
    repeated = [key for key, n in Counter(s.key for s in scores).items() if n > 1]
    if repeated:
        raise ValueError(f"score keys registered more than once: {', '.join(repeated)}")
    return {s.key: s for s in scores}


LOCALISATION_SCORES: dict[str, Score] = by_key(
    Score("tko", "Top-K overlap (TKO)", "TKO",
          "share of the defect's K pixels among the map's K highest pixels.", top_k_overlap),
    Score("pointing", "pointing game", "pointing game",
          "1 when the map's maximum lies on the defect, else 0; many images end in ties, which split the win.",
          pointing_game),
    Score("relevance_mass", "relevance mass", "relevance mass",
          "share of the map's total value that lies inside the defect.", relevance_mass),
    Score("auroc", "AUROC of the map against the mask", "AUROC",
          "how well the map's values separate defect pixels from background pixels (0.5 = chance, 1 = perfect).",
          auroc),
)
# Scores evaluation adds as columns beside TKO, which every explanation carries already.
EXTRA_SCORES = tuple(k for k in LOCALISATION_SCORES if k != "tko")


def score(key: str) -> Score:
    """The registered score ``key``; a one-line error lists the valid keys."""
    try:
        return LOCALISATION_SCORES[key]
    except KeyError:
        raise ValueError(f"unknown score {key!r}; choose from {', '.join(LOCALISATION_SCORES)}") from None

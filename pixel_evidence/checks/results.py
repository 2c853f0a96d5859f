"""What the checks return, as plain numpy data: no torch, so the dashboard can hold and draw it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pixel_evidence.metrics.agreement import SANITY_PASS_THRESHOLD


@dataclass(frozen=True)
class Curve:
    """``fractions`` (steps + 1,) of pixels removed/added; ``probabilities`` of the target."""

    mode: str
    start: str
    fractions: np.ndarray
    probabilities: np.ndarray
    auc: float


@dataclass(frozen=True)
class SanityStep:
    """Similarity of the map after randomizing everything from the top down to ``layer``."""

    layer: str
    spearman: float
    top_iou: float


@dataclass(frozen=True)
class SanityResult:
    method: str
    steps: list[SanityStep]

    @property
    def final_spearman(self) -> float:
        return self.steps[-1].spearman if self.steps else float("nan")

    @property
    def passed(self) -> bool:
        """True when the fully randomized map no longer resembles the original."""
        return bool(abs(self.final_spearman) < SANITY_PASS_THRESHOLD)

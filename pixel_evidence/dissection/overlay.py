"""Where one unit fires on one image, as plain numpy data: no torch, so the dashboard can draw it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UnitOverlay:
    """Where one unit fires on one image: ``active`` (H, W) beside the image and its mask."""

    image_id: str
    image: np.ndarray   # (H, W, 3) uint8
    mask: np.ndarray    # (H, W) bool, the ground truth
    active: np.ndarray  # (H, W) float in [0, 1]: 1 above the threshold, the tie share where tied

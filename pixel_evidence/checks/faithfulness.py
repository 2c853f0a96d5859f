"""Deletion and insertion curves: is a map faithful to the model, not just to the mask?

Deletion removes the most salient pixels first (replacing them with a black or blurred
copy) and watches the target probability fall; a faithful map makes it fall fast (low
AUC). Insertion starts from the black or blurred image and adds the most salient pixels
back; a faithful map makes the probability rise fast (high AUC). All steps of a curve
go through the model in one batched forward under ``torch.inference_mode``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from pixel_evidence.checks.results import Curve
from pixel_evidence.choices import FAITHFULNESS_STARTS
from pixel_evidence.explainers.base import black_image
from pixel_evidence.metrics.curves import curve_auc

MODES = ("deletion", "insertion")
STARTS = FAITHFULNESS_STARTS


def reference_image(x: torch.Tensor, start: str, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """The "nothing" image for (1, 3, H, W) normalized ``x``: black in pixel space, or a strong blur."""
    if start == "black":
        return black_image(x, mean, std)
    if start == "blur":
        size = max(3, (min(x.shape[-2:]) // 8) | 1)  # odd kernel about 1/8 of the image
        return gaussian_blur(x, [size, size], [size / 3.0, size / 3.0])
    raise ValueError(f"start must be one of {STARTS}, got {start!r}")


def pixel_order(attribution: np.ndarray, seed: int = 0) -> np.ndarray:
    """Flat pixel indices, most salient first; ties broken by a seeded shuffle, not pixel order."""
    a = np.asarray(attribution, dtype=np.float64).ravel()
    shuffle = np.random.default_rng(seed).permutation(a.size)
    return shuffle[np.argsort(-a[shuffle], kind="stable")]


def perturbation_curve(classify: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                       attribution: np.ndarray, target: int, *, mode: str = "deletion", start: str = "black",
                       steps: int = 20, mean: Sequence[float] = (0.0, 0.0, 0.0),
                       std: Sequence[float] = (1.0, 1.0, 1.0), seed: int = 0) -> Curve:
    """One deletion or insertion curve for a single image.

    ``x`` (1, 3, H, W) normalized; ``attribution`` (H, W); ``classify`` returns logits (B, C).
    Step ``i`` of ``steps`` changes the top ``round(i / steps * N)`` pixels.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    h, w = x.shape[-2:]
    if np.shape(attribution) != (h, w):
        raise ValueError(f"attribution shape {np.shape(attribution)} does not match the image {(h, w)}")
    n = h * w
    order = torch.from_numpy(pixel_order(attribution, seed)).to(x.device)
    counts = [round(i / steps * n) for i in range(steps + 1)]
    # rank[p] = position of pixel p in the order; pixel p is changed at step i iff rank < counts[i]
    rank = torch.empty(n, dtype=torch.long, device=x.device)
    rank[order] = torch.arange(n, device=x.device)
    changed = (rank[None, :] < torch.tensor(counts, device=x.device)[:, None]).view(-1, 1, h, w)
    ref = reference_image(x, start, mean, std)
    src, dst = (x, ref) if mode == "deletion" else (ref, x)
    with torch.inference_mode():
        batch = torch.where(changed, dst, src)
        probs = torch.softmax(classify(batch), dim=1)[:, target].float().cpu().numpy()
    fractions = np.array(counts, dtype=np.float64) / n
    return Curve(mode, start, fractions, probs, curve_auc(fractions, probs))

"""RISE (Petsiuk et al., 2018): saliency as the expected class probability under random masks.

N masks are made from random binary s x s grids (each cell kept with probability p),
bilinearly upsampled to (s + 1) cells of ceil(H / s) x ceil(W / s) pixels and cropped to
H x W at a random offset inside one cell, so the soft edges fall anywhere. Each image is
scored through every mask, masked toward a black image in pixel space
(x_i = black + M_i * (x - black)), and

    saliency = sum_i P(target | x_i) * M_i / (N * p)                       -> (B, H, W)

The masks depend only on (N, s, p, seed, H, W); they are made once and shared across
images and explainers through a small LRU cache, read-only (N * H * W float32: 200 MB for
1000 masks at 224 x 224, so at most two sets are kept).

Params: ``n_masks`` N (1000), ``grid`` s (7), ``keep_prob`` p (0.5), ``seed`` (0),
``batch_size`` (32, masked images per forward). Each chunk of masked images is reported to
a watcher, if any (:mod:`pixel_evidence.progress`), which may also stop the work between chunks.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch.nn import functional as F

from pixel_evidence import progress
from pixel_evidence.explainers.base import Attribution, Explainer


@lru_cache(maxsize=2)
def rise_masks(n_masks: int, grid: int, keep_prob: float, seed: int, height: int, width: int) -> torch.Tensor:
    """``n_masks`` soft masks (N, 1, H, W) float32 in [0, 1] on the CPU; shared, do not modify."""
    generator = torch.Generator().manual_seed(seed)
    cells = (torch.rand(n_masks, 1, grid, grid, generator=generator) < keep_prob).float()
    cell_h, cell_w = math.ceil(height / grid), math.ceil(width / grid)
    upsampled = F.interpolate(cells, size=((grid + 1) * cell_h, (grid + 1) * cell_w), mode="bilinear",
                              align_corners=False)
    dy = torch.randint(0, cell_h, (n_masks,), generator=generator).tolist()
    dx = torch.randint(0, cell_w, (n_masks,), generator=generator).tolist()
    return torch.stack([m[:, y:y + height, x:x + width] for m, y, x in zip(upsampled, dy, dx)])


class RISE(Explainer):
    key = "rise"
    defaults = {"n_masks": 1000, "grid": 7, "keep_prob": 0.5, "seed": 0, "batch_size": 32}

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> Attribution:
        n_masks, keep_prob = int(self.params["n_masks"]), float(self.params["keep_prob"])
        if not 0 < keep_prob <= 1:
            raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob}")
        masks = rise_masks(n_masks, int(self.params["grid"]), keep_prob, int(self.params["seed"]),
                           *inputs.shape[-2:])
        black = self.black_baseline(inputs[:1])
        maps = torch.zeros(inputs.shape[0], *inputs.shape[-2:], dtype=inputs.dtype, device=inputs.device)
        progress.expect(n_masks * inputs.shape[0])  # masked images, one forward each
        with torch.no_grad():
            for chunk in masks.split(int(self.params["batch_size"])):
                chunk = chunk.to(inputs.device, inputs.dtype)
                for b, (image, label) in enumerate(zip(inputs, target)):
                    probs = self.classifier(black + chunk * (image - black)).softmax(1)[:, label]
                    maps[b] += torch.einsum("n,nhw->hw", probs, chunk[:, 0])
                    progress.advance(len(chunk))
        return Attribution(maps / (n_masks * keep_prob))

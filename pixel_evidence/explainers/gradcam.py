"""Grad-CAM: channel weights = spatially averaged gradients of the class score at the
last conv block, ReLU of the weighted sum, bilinearly upsampled to the input size.

Needs one forward and one backward from the score to that block only; it can share that
pass with Saliency and the rest of the CAM family (see ``pixel_evidence.engine.pass_runner.PassRunner``).
"""

from __future__ import annotations

import torch

from pixel_evidence.explainers.base import GradientPass
from pixel_evidence.explainers.cam import CAM


class GradCAM(CAM):
    key = "gradcam"

    def _channel_weights(self, p: GradientPass) -> torch.Tensor:
        return p.activation_grad.mean(dim=(2, 3))

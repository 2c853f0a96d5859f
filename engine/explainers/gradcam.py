"""Grad-CAM: channel weights = spatially averaged gradients of the class score at the
last conv block, ReLU of the weighted sum, bilinearly upsampled to the input size.

Needs one forward and one backward from the score to that block only; it can share that
pass with Saliency (see ``base.attribute_together``).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .base import LAYER_GRAD, Attribution, Explainer, GradientPass


class GradCAM(Explainer):
    key = "gradcam"
    label = "Grad-CAM"
    cost_note = "1 forward + 1 backward to the last conv block"
    pass_needs = frozenset({LAYER_GRAD})

    def from_pass(self, p: GradientPass) -> Attribution:
        weights = p.activation_grad.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * p.activation).sum(dim=1, keepdim=True))
        cam = F.interpolate(cam, size=tuple(p.inputs.shape[-2:]), mode="bilinear", align_corners=False)
        return Attribution(cam[:, 0])

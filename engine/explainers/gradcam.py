"""Grad-CAM: channel weights = spatially averaged gradients of the class score at the
last conv block, ReLU of the weighted sum, bilinearly upsampled to the input size."""

from __future__ import annotations

import torch
from captum.attr import LayerAttribution, LayerGradCam

from .base import Attribution, Explainer


class GradCAM(Explainer):
    key = "gradcam"
    label = "Grad-CAM"
    cost_note = "1 forward + 1 backward to the last conv block"

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> Attribution:
        if self.layer is None:
            raise ValueError("Grad-CAM needs the model's last conv block as its layer")
        cam = LayerGradCam(self.classifier, self.layer).attribute(inputs, target=target, relu_attributions=True)
        cam = LayerAttribution.interpolate(cam, tuple(inputs.shape[-2:]), interpolate_mode="bilinear")
        return Attribution(cam[:, 0])

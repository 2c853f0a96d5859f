"""Saliency: |d y_c / d x|, reduced over the RGB channels by max."""

from __future__ import annotations

import torch
from captum.attr import Saliency as CaptumSaliency

from .base import Attribution, Explainer


class Saliency(Explainer):
    key = "saliency"
    label = "Saliency"
    cost_note = "1 forward + 1 backward to the input"

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> Attribution:
        grads = CaptumSaliency(self.classifier).attribute(inputs, target=target, abs=True)
        return Attribution(grads.amax(dim=1))

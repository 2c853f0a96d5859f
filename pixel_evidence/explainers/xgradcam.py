"""XGrad-CAM (Fu et al., 2020): gradients averaged with the activations as spatial weights.

Channel weight w_k = sum_ij (A_kij / sum_ab A_kab) * d y_c / d A_kij, chosen by the paper to
satisfy its sensitivity and conservation axioms. A channel with sum_ab A_kab = 0 gets weight 0.

When the layer feeds global average pooling and a linear head (our classifier), the gradient
is constant over each channel and the weight reduces to Grad-CAM's mean gradient, so the two
maps coincide there; they differ for heads that look at positions.
"""

from __future__ import annotations

import torch

from pixel_evidence.explainers.base import GradientPass
from pixel_evidence.explainers.cam import CAM


class XGradCAM(CAM):
    key = "xgradcam"

    def _channel_weights(self, p: GradientPass) -> torch.Tensor:
        acts = p.activation
        totals = acts.sum((2, 3), keepdim=True)
        return (p.activation_grad * acts / torch.where(totals != 0, totals, 1.0)).sum((2, 3))

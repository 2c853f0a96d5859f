"""Grad-CAM++ (Chattopadhay et al., 2018): Grad-CAM with pixel-wise weighted gradients.

Channel weight w_k = sum_ij alpha_kij * ReLU(g_kij), g = d y_c / d A at the layer, with

    alpha_kij = g_kij^2 / (2 g_kij^2 + sum_ab A_kab * g_kij^3)      (eq. 19 of the paper)

The paper derives this closed form for an exponential score exp(y_c), whose higher
derivatives are powers of the first; its exp(y_c) factor scales every weight of an image alike
and is dropped. Where g > 0 the g^2 cancels, alpha = 1 / (2 + g * sum_ab A_kab), which is
what we compute: it stays exact for the small gradients of a 7x7 layer feeding average
pooling (~3e-4 on our models). The grad-cam package instead adds 1e-6 to the denominator,
larger than g^2 (~1e-7) there, so its Grad-CAM++ maps differ from these on our models; with
the epsilon removed, or on O(1) gradients, the two agree.
"""

from __future__ import annotations

import torch

from pixel_evidence.explainers.base import GradientPass
from pixel_evidence.explainers.cam import CAM


class GradCAMPlusPlus(CAM):
    key = "gradcam_pp"

    def _channel_weights(self, p: GradientPass) -> torch.Tensor:
        grads = p.activation_grad
        denominator = 2 + p.activation.sum((2, 3), keepdim=True) * grads
        # only positive gradients count; a zero denominator needs negative activations
        counted = (grads > 0) & (denominator != 0)
        return torch.where(counted, grads / torch.where(counted, denominator, 1.0), 0.0).sum((2, 3))

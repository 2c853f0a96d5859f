"""Shared machinery of the class-activation-map family.

A CAM weighs the K channels of a layer's output ``A`` (B, K, h, w) and keeps the positive
part of the weighted sum, bilinearly upsampled (``align_corners=False``) to the input size:

    map = upsample(ReLU(sum_k w_k A_k))            -> (B, H, W)

Methods differ only in the weights ``w`` (B, K), so a subclass implements
``_channel_weights`` and says in ``pass_needs`` what it reads from the shared pass
(``base.gradient_pass``): the layer's gradient (Grad-CAM, Grad-CAM++, XGrad-CAM) or only its
output (Score-CAM, Ablation-CAM). Methods asked for together on one image then share that
one forward/backward, with Saliency too.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from pixel_evidence.explainers.base import LAYER_GRAD, Attribution, Explainer, GradientPass


class CAM(Explainer):
    """Base class: ``_channel_weights`` maps a ``GradientPass`` to weights (B, K)."""

    pass_needs = frozenset({LAYER_GRAD})

    def from_pass(self, p: GradientPass) -> Attribution:
        with torch.no_grad():
            weights = self._channel_weights(p)
            cam = torch.einsum("bk,bkhw->bhw", weights, p.activation).relu()
            cam = F.interpolate(cam[:, None], size=tuple(p.inputs.shape[-2:]), mode="bilinear",
                                align_corners=False)
        return Attribution(cam[:, 0])

    def _channel_weights(self, p: GradientPass) -> torch.Tensor:
        """Channel weights (B, K) from the pass over the images ``p.inputs`` (B, 3, H, W)."""
        raise NotImplementedError

"""CAM (Zhou et al., 2016): for a network whose logits are a linear layer over the global
average of the CAM layer's channels, y_c = sum_k w_ck mean(A_k) + b_c, the map of class c is

    CAM_c = upsample(ReLU(sum_k w_ck A_k))

with the linear layer's own weights. No gradient is needed. On such a head Grad-CAM's weights
are the same w_ck divided by h * w (the gradient of a mean), so the two maps agree up to that
positive factor; on any other head plain CAM is undefined.

The head is checked, not assumed: the linear layer is the network's one ``nn.Linear`` from
K channels to C classes, and the pass's logits must equal that layer applied to the channel
means. Otherwise (a ``--cam-layer`` inside the encoder, a head with more layers) the method
refuses in one line rather than drawing a map that is not CAM.
"""

from __future__ import annotations

import torch
from torch import nn

from pixel_evidence.explainers.base import ACTIVATION, GradientPass
from pixel_evidence.explainers.cam import CAM

# Logits recomputed from the channel means differ from the network's own by float32 rounding
# of a K-term sum (K <= 2048 here): a few 1e-6 relative. 1e-3 of the logits' scale stays far
# above that and far below what any extra layer in the head changes.
HEAD_TOLERANCE = 1e-3


class PlainCAM(CAM):
    key = "cam"
    pass_needs = frozenset({ACTIVATION})

    def _linear_head(self, channels: int, classes: int) -> nn.Linear:
        linears = [m for m in self.classifier.modules()
                   if isinstance(m, nn.Linear) and (m.in_features, m.out_features) == (channels, classes)]
        if len(linears) != 1:
            raise ValueError(f"CAM needs one linear layer from the CAM layer's {channels} channels to the "
                             f"{classes} classes, found {len(linears)}; use Grad-CAM on this network")
        return linears[0]

    def _channel_weights(self, p: GradientPass) -> torch.Tensor:
        """The head's weights of each image's target class (B, K), once the head is confirmed
        to be global average pooling + that linear layer on this very pass."""
        head = self._linear_head(p.activation.shape[1], p.scores.shape[1])
        weight = head.weight.to(p.activation.dtype)
        recomputed = p.activation.mean((2, 3)) @ weight.T
        if head.bias is not None:
            recomputed = recomputed + head.bias.to(p.activation.dtype)
        scale = p.scores.detach().abs().max().clamp_min(1.0)
        if not torch.allclose(recomputed, p.scores.detach(), rtol=0.0, atol=HEAD_TOLERANCE * float(scale)):
            raise ValueError("CAM needs the logits to be a linear layer over the global average of the CAM "
                             "layer's channels, and this network's are not (its CAM layer is not the last "
                             "before the pooling, or its head has more layers); use Grad-CAM")
        return weight[p.target]

"""Score-CAM (Wang et al., 2020): each channel weighted by how well it alone shows the class.

Channel k's activation, bilinearly upsampled to the input and min-max normalised to [0, 1],
becomes a soft mask M_k; the weight w_k is the softmax probability of the target class on
the input seen only through that mask. Masking blends toward a black image in pixel space,
x_k = black + M_k * (x - black), so a masked-out pixel is black rather than the "zero" of
normalized space (which is the dataset's mean colour, not an absence of evidence). A channel
that is constant over the image gives an all-black input; one that is all zero is skipped
since it adds nothing to the map whatever its weight.

Param ``batch_size`` (default 32): masked images per forward.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from pixel_evidence import progress
from pixel_evidence.explainers.base import ACTIVATION, GradientPass
from pixel_evidence.explainers.cam import CAM


class ScoreCAM(CAM):
    key = "scorecam"
    defaults = {"batch_size": 32}
    pass_needs = frozenset({ACTIVATION})

    def _channel_weights(self, p: GradientPass) -> torch.Tensor:
        acts = p.activation
        weights = torch.zeros(acts.shape[:2], dtype=acts.dtype, device=acts.device)
        inputs = p.inputs
        black = self.black_baseline(inputs[:1])
        active_of = [acts[b].flatten(1).ne(0).any(1).nonzero()[:, 0] for b in range(len(inputs))]
        progress.expect(sum(len(a) for a in active_of))  # masked images, one forward each
        for b, (image, label) in enumerate(zip(inputs, p.target)):
            active = active_of[b]
            for channels in active.split(int(self.params["batch_size"])):
                masks = F.interpolate(acts[b, channels][:, None], size=tuple(inputs.shape[-2:]),
                                      mode="bilinear", align_corners=False)
                low = masks.amin((2, 3), keepdim=True)
                span = masks.amax((2, 3), keepdim=True) - low
                masks = (masks - low) / torch.where(span > 0, span, 1.0)
                logits = self.classifier(black + masks * (image - black))
                weights[b, channels] = logits.softmax(1)[:, label]
                progress.advance(len(channels))
        return weights

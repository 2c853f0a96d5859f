"""Occlusion (Zeiler & Fergus, 2014) through captum's ``Occlusion``.

A ``window`` x ``window`` black square (black in pixel space, spanning all three colour
channels) slides over the image with step ``stride``; each pixel gets the mean drop of the
target logit over the windows that cover it (windows at the far edge are cut off by the
border, so every pixel is covered). The map keeps the positive part: a window whose removal
*raises* the score hid evidence against the class, not for it.

Params: ``window`` (32), ``stride`` (16), ``batch_size`` (32, occluded images per forward).
At 224 x 224 the defaults make 13 x 13 = 169 windows.
"""

from __future__ import annotations

import torch

from pixel_evidence.explainers.base import Attribution, Explainer


class Occlusion(Explainer):
    key = "occlusion"
    defaults = {"window": 32, "stride": 16, "batch_size": 32}

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> Attribution:
        window, stride = int(self.params["window"]), int(self.params["stride"])
        if not 0 < stride <= window <= min(inputs.shape[-2:]):
            raise ValueError(f"need 0 < stride <= window <= image side, got stride {stride}, window {window}")
        from captum.attr import Occlusion as CaptumOcclusion  # lazy: see ``Explainer``

        drops = CaptumOcclusion(self.classifier).attribute(
            inputs.detach(), sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
            baselines=self.black_baseline(inputs), target=target,
            perturbations_per_eval=int(self.params["batch_size"]))
        # the window spans RGB, so the three channels hold the same value
        return Attribution(drops[:, 0].clamp_min(0))

"""Ablation-CAM (Desai & Ramaswamy, 2020): a channel's weight is the score lost without it.

w_k = (y - y_k) / y, with y the target logit and y_k the same logit when channel k of the
layer is set to zero. The sign of y enters: for a negative target logit every weight flips,
as in the paper's formula.

Cheap by construction: for each chunk of ``batch_size`` channels the image runs through the
network once, and a forward hook on the layer replaces its output (1, K, h, w) by a batch of
copies, each with one channel zeroed, so only the part after the layer runs per channel (on
EfficientNet, pooling and a linear head). This assumes the layer's output is the only path
to the logits, as in a sequential CNN like ours; a model with skip connections around the
layer would see a batch-size mismatch or give wrong scores.

Param ``batch_size`` (default 256): ablated copies per forward.
"""

from __future__ import annotations

import torch

from pixel_evidence.explainers.base import ACTIVATION, GradientPass, network_lock
from pixel_evidence.explainers.cam import CAM


class AblationCAM(CAM):
    key = "ablationcam"
    defaults = {"batch_size": 256}
    pass_needs = frozenset({ACTIVATION})

    def _channel_weights(self, p: GradientPass) -> torch.Tensor:
        n_channels = p.activation.shape[1]
        channels = torch.arange(n_channels, device=p.inputs.device)
        ablated = torch.stack([
            torch.cat([self._scores_without(image[None], label, chunk)
                       for chunk in channels.split(int(self.params["batch_size"]))])
            for image, label in zip(p.inputs, p.target)])
        y = p.scores.gather(1, p.target[:, None])
        return (y - ablated) / y

    def _scores_without(self, image: torch.Tensor, label: torch.Tensor,
                        channels: torch.Tensor) -> torch.Tensor:
        """Target logits (n,) of ``image`` (1, 3, H, W), zeroing each of ``channels`` (n,) in turn."""

        def ablate(module, args, output):
            copies = output.repeat(len(channels), 1, 1, 1)
            copies[torch.arange(len(channels), device=channels.device), channels] = 0
            return copies

        with network_lock(self.classifier):  # no other thread's forward may meet the ablation hook
            handle = self.layer.register_forward_hook(ablate)
            try:
                return self.classifier(image)[:, label]
            finally:
                handle.remove()

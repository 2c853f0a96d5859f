"""Shared machinery of the class-activation-map family.

A CAM weighs the K channels of a layer's output ``A`` (B, K, h, w) and keeps the positive
part of the weighted sum, bilinearly upsampled (``align_corners=False``) to the input size:

    map = upsample(ReLU(sum_k w_k A_k))            -> (B, H, W)

Methods differ only in the weights ``w`` (B, K), so a subclass implements
``_channel_weights`` and nothing else. ``CAM`` runs the classifier once with a forward hook
on ``layer`` and, when the subclass sets ``uses_gradients``, differentiates the target scores
with respect to ``A`` in the same pass.

Hooks write to local variables and are removed in ``finally``: an instance holds no
per-call state. The hooks do live on the shared ``layer`` though, so (as with captum) calls
on one model must not overlap in time. The layer's output must not be modified in place by
whatever runs after it, or the recorded activations would change under us.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch.nn import functional as F

from .base import Attribution, Explainer


class LayerCapture(NamedTuple):
    """What one pass through the classifier records at the layer, all detached."""

    activations: torch.Tensor  # (B, K, h, w), the layer's output
    gradients: torch.Tensor | None  # (B, K, h, w), d score / d activations; None if unused
    scores: torch.Tensor  # (B,), the target logits


class CAM(Explainer):
    """Base class: ``_channel_weights`` maps a ``LayerCapture`` to weights (B, K)."""

    uses_gradients: ClassVar[bool] = True

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> Attribution:
        if self.layer is None:
            raise ValueError(f"{self.label} needs the model's last conv block as its layer")
        capture = self._capture(inputs, target)
        with torch.no_grad():
            weights = self._channel_weights(inputs, target, capture)
            cam = torch.einsum("bk,bkhw->bhw", weights, capture.activations).relu()
            cam = F.interpolate(cam[:, None], size=tuple(inputs.shape[-2:]), mode="bilinear",
                                align_corners=False)
        return Attribution(cam[:, 0])

    def _capture(self, inputs: torch.Tensor, target: torch.Tensor) -> LayerCapture:
        outputs: list[torch.Tensor] = []
        handle = self.layer.register_forward_hook(lambda module, args, output: outputs.append(output))
        try:
            with torch.set_grad_enabled(self.uses_gradients):
                scores = self.classifier(inputs).gather(1, target[:, None])[:, 0]
        finally:
            handle.remove()
        if len(outputs) != 1:
            raise RuntimeError(f"{self.label} expects its layer to run once per forward, it ran {len(outputs)} times")
        activations = outputs[0]
        # Images in a batch do not interact in eval mode, so the gradient of the summed
        # scores holds each image's own gradient.
        gradients = torch.autograd.grad(scores.sum(), activations)[0] if self.uses_gradients else None
        return LayerCapture(activations.detach(), gradients, scores.detach())

    def _channel_weights(self, inputs: torch.Tensor, target: torch.Tensor,
                         capture: LayerCapture) -> torch.Tensor:
        """Channel weights (B, K) for the images ``inputs`` (B, 3, H, W) and ``target`` (B,)."""
        raise NotImplementedError

"""Reference (a): the original study's way of computing Grad-CAM, Saliency and Integrated
Gradients, re-implemented so that the benchmark can time it beside the engine."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from .config import ALL

ORIGINAL_IG_STEPS = 25


class OriginalStudy:
    """The original study's way to compute the three maps, re-implemented for timing.

    The network is the same checkpoint, loaded as a plain training-time model (default
    layout, parameters requiring gradients); every method runs the full multitask forward
    (decoder included) and nothing is shared between methods:

    - Grad-CAM: hooks on the whole encoder's output, ``backward()``, per-channel weights
      from the mean gradient, a Python loop over the channels accumulating weight x
      activation, ReLU, bilinear upsampling, min-max scaling;
    - Saliency: its own forward and ``backward()``, |grad| max over RGB;
    - Integrated Gradients: captum, zero baseline, 25 steps, ``internal_batch_size=1``,
      forward function = class logits of the full multitask forward, convergence delta
      computed, |attr| summed over RGB.

    Each method starts from the prediction forward that picks its target class.
    """

    def __init__(self, net: torch.nn.Module, n_steps: int = ORIGINAL_IG_STEPS):
        self.net = net
        self.n_steps = n_steps

    def predict(self, x: torch.Tensor) -> int:
        with torch.no_grad():
            logits, _ = self.net(x)
        return int(logits.argmax(1)[0])

    def gradcam(self, x: torch.Tensor, target: int) -> np.ndarray:
        store: dict[str, torch.Tensor] = {}

        def keep(module, args, output):
            store["act"] = output
            output.register_hook(lambda g: store.__setitem__("grad", g))

        handle = self.net.encoder.register_forward_hook(keep)
        try:
            logits, _ = self.net(x)
        finally:
            handle.remove()
        self.net.zero_grad()
        logits[0, target].backward()
        act = store["act"][0].detach()
        weights = store["grad"][0].mean(dim=(1, 2))
        cam = torch.zeros(act.shape[1:], dtype=act.dtype)
        for c in range(act.shape[0]):
            cam += weights[c] * act[c]
        cam = F.relu(cam)
        cam = F.interpolate(cam[None, None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[0, 0]
        cam = (cam - cam.min()) / (cam.max() - cam.min() + 1e-8)
        return cam.numpy()

    def saliency(self, x: torch.Tensor, target: int) -> np.ndarray:
        x = x.clone().requires_grad_(True)
        logits, _ = self.net(x)
        self.net.zero_grad()
        logits[0, target].backward()
        return x.grad.abs().max(dim=1)[0][0].numpy()

    def ig(self, x: torch.Tensor, target: int) -> np.ndarray:
        from captum.attr import IntegratedGradients

        ig = IntegratedGradients(lambda inp: self.net(inp)[0])
        attr, _delta = ig.attribute(x, target=target, n_steps=self.n_steps, internal_batch_size=1,
                                    return_convergence_delta=True)
        return attr.detach().abs().sum(dim=1)[0].numpy()

    def run(self, method: str, x: torch.Tensor) -> None:
        target = self.predict(x)
        for m in (ALL if method == "all" else (method,)):
            getattr(self, m)(x, target)

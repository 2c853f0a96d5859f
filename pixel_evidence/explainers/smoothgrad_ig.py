"""SmoothGrad over Integrated Gradients: IG averaged over noisy copies of the input.

Same noise and seeding as ``SmoothGrad``; each noisy copy gets IG from the black image (in
pixel space) with ``n_steps`` Gauss-Legendre steps, kept small because the cost multiplies.
Map: the signed attributions averaged over the copies, then |.| summed over RGB, like ``ig``.

Params: ``nt_samples`` (8), ``noise`` (0.15), ``n_steps`` (8), ``seed`` (0), ``batch_size``
(2 noisy copies, i.e. 2 * n_steps images, per forward/backward).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from pixel_evidence.explainers.smoothgrad import SmoothGrad

if TYPE_CHECKING:
    from captum.attr import Attribution as CaptumAttribution


class SmoothGradIG(SmoothGrad):
    key = "smoothgrad_ig"
    defaults = {"nt_samples": 8, "noise": 0.15, "n_steps": 8, "seed": 0, "batch_size": 2}

    def _method(self) -> CaptumAttribution:
        from captum.attr import IntegratedGradients as CaptumIG  # lazy: see ``Explainer``

        return CaptumIG(self.classifier)

    def _method_kwargs(self, image: torch.Tensor) -> dict[str, Any]:
        n_steps = int(self.params["n_steps"])
        if n_steps < 1:
            raise ValueError(f"n_steps must be at least 1, got {n_steps}")
        return {"baselines": self.black_baseline(image), "n_steps": n_steps, "method": "gausslegendre"}

    def _reduce(self, attr: torch.Tensor) -> torch.Tensor:
        return attr.abs().sum(1)

"""Integrated Gradients from a black image (in pixel space), |attr| summed over RGB.

Extras per image: ``delta`` (captum's convergence delta, sum(attr) - (F(x) - F(b))) and
``relative_delta`` = |delta| / |F(x) - F(b)|, the share of the score change the
attributions fail to account for.
"""

from __future__ import annotations

import torch
from captum.attr import IntegratedGradients as CaptumIG

from .base import Attribution, Explainer


class IntegratedGradients(Explainer):
    key = "ig"
    label = "Integrated Gradients"
    cost_note = "n_steps forwards + backwards to the input, batched"
    # internal_batch_size None = one pass per image, all its steps at once.
    defaults = {"n_steps": 25, "method": "gausslegendre", "internal_batch_size": None}

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> Attribution:
        n_steps = int(self.params["n_steps"])
        if n_steps < 1:
            raise ValueError(f"n_steps must be at least 1, got {n_steps}")
        baseline = self.black_baseline(inputs)
        batch = self.params["internal_batch_size"] or n_steps
        attr, delta = CaptumIG(self.classifier).attribute(
            inputs, baselines=baseline, target=target, n_steps=n_steps, method=self.params["method"],
            internal_batch_size=batch, return_convergence_delta=True)
        with torch.no_grad():
            scores = self.classifier(torch.cat([inputs, baseline])).gather(1, target.repeat(2)[:, None])[:, 0]
        gap = scores[: len(inputs)] - scores[len(inputs):]
        return Attribution(attr.abs().sum(dim=1),
                           {"delta": delta.detach(), "relative_delta": (delta.abs() / gap.abs()).detach()})

"""Saliency: |d y_c / d x|, reduced over the RGB channels by max.

Needs one forward and one backward to the input; it can share that pass with Grad-CAM
(see ``pixel_evidence.engine.pass_runner.PassRunner``).
"""

from __future__ import annotations

from pixel_evidence.explainers.base import INPUT_GRAD, Attribution, Explainer, GradientPass


class Saliency(Explainer):
    key = "saliency"
    pass_needs = frozenset({INPUT_GRAD})

    def from_pass(self, p: GradientPass) -> Attribution:
        return Attribution(p.input_grad.abs().amax(dim=1))

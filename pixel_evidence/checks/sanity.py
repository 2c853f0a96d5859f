"""Model-parameter randomization check (cascading, from the top layer down).

A map that explains the *model* must change when the model's learned weights are
replaced by random ones. We re-initialise the classifier head, then each encoder stage
from the last to the first (``ExplainableNet.randomization_order``), recompute the map after every step, and compare it with the
original map. A method whose maps stay similar after the whole network is random fails:
its picture comes from the input (edges, colours), not from what the model learned.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from pixel_evidence import progress
from pixel_evidence.checks.results import SanityResult, SanityStep
from pixel_evidence.explainers import get_explainer
from pixel_evidence.metrics.agreement import spearman, top_fraction_iou
from pixel_evidence.models import ClassifierView, ExplainableNet


def cascade_stages(net: ExplainableNet) -> list[tuple[str, nn.Module]]:
    """(name, module) from the top of the classification path down to the stem."""
    return net.randomization_order()


def _reinitialise(module: nn.Module, gen_seed: int) -> None:
    torch.manual_seed(gen_seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_parameters()  # weights 1, bias 0, running statistics reset
        elif hasattr(m, "reset_parameters"):
            m.reset_parameters()


def cascading_randomization(net: ExplainableNet, method: str, x: torch.Tensor, target: int, *,
                            params: dict[str, Any] | None = None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                            seed: int = 0, fraction: float = 0.2,
                            original: np.ndarray | None = None) -> SanityResult:
    """Run the cascade for one image ``x`` (1, 3, H, W) and one ``method``.

    The network is deep-copied, so ``net`` is untouched; randomization is seeded
    (``seed`` + stage index) under ``torch.random.fork_rng`` so global RNG state is kept.
    ``original`` may pass the already computed map of the trained model. Each map computed is
    reported to a watcher, if any (:mod:`pixel_evidence.progress`), which may stop the cascade.
    """
    cls = get_explainer(method)

    def explain(model: ExplainableNet) -> np.ndarray:
        explainer = cls(ClassifierView(model), model.gradcam_layer, input_mean=mean, input_std=std, **(params or {}))
        return explainer.attribute(x, torch.tensor([target], device=x.device)).maps[0].cpu().numpy()

    stages = cascade_stages(net)
    watcher = progress.current()
    # a watcher counts maps here; a method's own reports (forwards) inside a map would mix units
    inner = watcher.quiet() if watcher is not None else None
    progress.expect(len(stages) + (original is None))
    with progress.reporting(inner):
        base = original if original is not None else explain(net)
    if original is None:
        progress.advance()
    work = copy.deepcopy(net).eval()
    steps = []
    with torch.random.fork_rng(devices=[]):
        for i, (name, _) in enumerate(stages):
            _reinitialise(dict(cascade_stages(work))[name], seed + i)
            work.eval()
            with progress.reporting(inner):
                randomized = explain(work)
            progress.advance()
            steps.append(SanityStep(name, _safe(spearman, base, randomized),
                                    _safe(top_fraction_iou, base, randomized, fraction)))
    return SanityResult(method, steps)


def _safe(fn: Callable[..., float], *args) -> float:
    """Similarity of maps; a constant randomized map (e.g. a dead Grad-CAM) counts as 0."""
    value = fn(*args)
    return 0.0 if np.isnan(value) else value

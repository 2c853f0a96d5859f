"""The registry of attribution methods: each one's key, label, cost and where its class lives.

Everything that names, lists or describes the methods reads this table: the command line's
choices, a sweep's defaults and ``all``, the dashboard's lists, evaluation and the benchmark.
It imports nothing heavy, so the command line and the dashboard can read it without torch;
:meth:`Method.explainer` imports a method's class (and torch) only when it is asked for.
The order here is the order every list and table shows. Adding a method is adding its
module under :mod:`pixel_evidence.explainers` and one entry here.
"""

from __future__ import annotations

import importlib
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """One attribution method; its class is ``module.class_name`` under :mod:`pixel_evidence.explainers`."""

    key: str                    # the name in commands, URLs and result tables
    label: str                  # the name people read
    module: str                 # its module under pixel_evidence.explainers
    class_name: str             # its class in that module
    cost_note: str              # what one map costs, in forwards and backwards
    slow: bool = False          # many forwards per map: the dashboard warns, and its forwards yield to others
    default: bool = False       # computed when no methods are named
    # Seconds per 224-px image on the 2-core benchmark CPU, for planning a sweep when the
    # benchmark has not measured the method (None: priced like the costliest one).
    planning_seconds: float | None = None
    # The parameter counting the random draws its map averages (masks, samples, noise copies);
    # the map then also depends on its ``seed`` parameter. None: the method is deterministic.
    random_samples: str | None = None

    @property
    def stochastic(self) -> bool:
        return self.random_samples is not None

    def explainer(self) -> type:
        """The method's class (an ``Explainer``), imported now: this imports torch. Not
        annotated as ``type[Explainer]``, which would make this module import the explainers'."""
        return getattr(importlib.import_module(f"pixel_evidence.explainers.{self.module}"), self.class_name)


def by_key(*methods: Method) -> dict[str, Method]:
    """``{method.key: method}`` in the given order; ``ValueError`` if a key repeats."""
    repeated = [key for key, n in Counter(m.key for m in methods).items() if n > 1]
    if repeated:
        raise ValueError(f"method keys registered more than once: {', '.join(repeated)}")
    return {m.key: m for m in methods}


CAM_BLOCK = "1 forward + 1 backward to the last conv block"
SLOW_ON_CPU = "batch_size at a time; no backward. Slow on a CPU"

METHODS: dict[str, Method] = by_key(
    Method("gradcam", "Grad-CAM", "gradcam", "GradCAM", CAM_BLOCK, default=True, planning_seconds=0.025),
    Method("saliency", "Saliency", "saliency", "Saliency", "1 forward + 1 backward to the input", default=True,
           planning_seconds=0.042),
    Method("ig", "Integrated Gradients", "integrated_gradients", "IntegratedGradients",
           "n_steps forwards + backwards to the input, batched; with a tolerance, as many as it takes "
           "(up to max_steps)", default=True, planning_seconds=0.55),
    Method("gradcam_pp", "Grad-CAM++", "gradcam_pp", "GradCAMPlusPlus", CAM_BLOCK, planning_seconds=0.030),
    Method("xgradcam", "XGrad-CAM", "xgradcam", "XGradCAM", CAM_BLOCK, planning_seconds=0.028),
    Method("scorecam", "Score-CAM", "scorecam", "ScoreCAM",
           "1 forward per non-zero channel of the last conv block (up to 1280 on EfficientNet), " + SLOW_ON_CPU,
           slow=True, planning_seconds=5.5),
    Method("ablationcam", "Ablation-CAM", "ablationcam", "AblationCAM",
           "1 forward + ceil(channels / batch_size) forwards up to the last conv block "
           "(6 on EfficientNet: 1280 channels, batch_size 256), the head once per channel; no backward",
           planning_seconds=0.15),
    Method("lime", "LIME", "lime", "Lime",
           "n_samples forwards (200), batch_size at a time, + SLIC and a small ridge fit; no backward",
           slow=True, planning_seconds=2.0, random_samples="n_samples"),
    Method("rise", "RISE", "rise", "RISE", "n_masks forwards (1000), " + SLOW_ON_CPU, slow=True,
           planning_seconds=7.9, random_samples="n_masks"),
    Method("occlusion", "Occlusion", "occlusion", "Occlusion",
           "1 forward per window position, (ceil((H - window) / stride) + 1)^2: 169 at 224 px "
           "with the defaults, " + SLOW_ON_CPU, slow=True, planning_seconds=1.5),
    Method("smoothgrad", "SmoothGrad", "smoothgrad", "SmoothGrad",
           "nt_samples forwards + backwards to the input (16), batch_size at a time", planning_seconds=0.39,
           random_samples="nt_samples"),
    Method("smoothgrad_ig", "SmoothGrad-IG", "smoothgrad_ig", "SmoothGradIG",
           "nt_samples x n_steps forwards + backwards to the input (8 x 8 = 64), batched", planning_seconds=1.35,
           random_samples="nt_samples"),
    Method("sidu", "SIDU", "sidu", "SIDU",
           "1 forward per distinct binarised channel of the last conv block (up to 1280 on EfficientNet), "
           + SLOW_ON_CPU, slow=True),
    # CAM: one forward and no backward, so at most Grad-CAM's cost
    Method("cam", "CAM", "class_activation_map", "PlainCAM",
           "1 forward to the last conv block; the classifier's weights, no backward (GAP + linear heads only)",
           planning_seconds=0.025),
)
DEFAULT_METHODS = tuple(key for key, m in METHODS.items() if m.default)
STOCHASTIC_METHODS = tuple(key for key, m in METHODS.items() if m.stochastic)


def method(key: str) -> Method:
    """The registered method ``key``; a one-line error lists the valid keys."""
    try:
        return METHODS[key]
    except KeyError:
        raise ValueError(f"unknown method {key!r}; choose from {', '.join(METHODS)}") from None


def method_labels() -> dict[str, str]:
    """``{key: label}`` in registry order."""
    return {key: m.label for key, m in METHODS.items()}

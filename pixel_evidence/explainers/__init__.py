"""Attribution methods, one per module. Adding one = adding a module and a registry line."""

from __future__ import annotations

from pixel_evidence.explainers.ablationcam import AblationCAM
from pixel_evidence.explainers.base import Attribution, Explainer
from pixel_evidence.explainers.class_activation_map import PlainCAM
from pixel_evidence.explainers.gradcam import GradCAM
from pixel_evidence.explainers.gradcam_pp import GradCAMPlusPlus
from pixel_evidence.explainers.integrated_gradients import IntegratedGradients
from pixel_evidence.explainers.lime import Lime
from pixel_evidence.explainers.occlusion import Occlusion
from pixel_evidence.explainers.rise import RISE
from pixel_evidence.explainers.saliency import Saliency
from pixel_evidence.explainers.scorecam import ScoreCAM
from pixel_evidence.explainers.sidu import SIDU
from pixel_evidence.explainers.smoothgrad import SmoothGrad
from pixel_evidence.explainers.smoothgrad_ig import SmoothGradIG
from pixel_evidence.explainers.xgradcam import XGradCAM

REGISTRY: dict[str, type[Explainer]] = {cls.key: cls for cls in (
    GradCAM, Saliency, IntegratedGradients,
    GradCAMPlusPlus, XGradCAM, ScoreCAM, AblationCAM, Lime, RISE, Occlusion, SmoothGrad, SmoothGradIG,
    SIDU, PlainCAM)}
DEFAULT_METHODS = ("gradcam", "saliency", "ig")


def get_explainer(key: str) -> type[Explainer]:
    try:
        return REGISTRY[key]
    except KeyError:
        raise ValueError(f"unknown method {key!r}; choose from {', '.join(REGISTRY)}") from None


def method_labels() -> dict[str, str]:
    return {k: cls.label for k, cls in REGISTRY.items()}


__all__ = ["Attribution", "Explainer", "REGISTRY", "DEFAULT_METHODS", "get_explainer", "method_labels"]

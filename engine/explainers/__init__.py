"""Attribution methods, one per module. Adding one = adding a module and a registry line."""

from __future__ import annotations

from .ablationcam import AblationCAM
from .base import Attribution, Explainer
from .class_activation_map import PlainCAM
from .gradcam import GradCAM
from .gradcam_pp import GradCAMPlusPlus
from .integrated_gradients import IntegratedGradients
from .lime import Lime
from .occlusion import Occlusion
from .rise import RISE
from .saliency import Saliency
from .scorecam import ScoreCAM
from .sidu import SIDU
from .smoothgrad import SmoothGrad
from .smoothgrad_ig import SmoothGradIG
from .xgradcam import XGradCAM

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

"""Attribution methods, one per module. Adding one = adding a module and a registry line."""

from __future__ import annotations

from .base import Attribution, Explainer
from .gradcam import GradCAM
from .integrated_gradients import IntegratedGradients
from .saliency import Saliency

REGISTRY: dict[str, type[Explainer]] = {cls.key: cls for cls in (GradCAM, Saliency, IntegratedGradients)}
DEFAULT_METHODS = ("gradcam", "saliency", "ig")


def get_explainer(key: str) -> type[Explainer]:
    try:
        return REGISTRY[key]
    except KeyError:
        raise ValueError(f"unknown method {key!r}; choose from {', '.join(REGISTRY)}") from None


def method_labels() -> dict[str, str]:
    return {k: cls.label for k, cls in REGISTRY.items()}


__all__ = ["Attribution", "Explainer", "REGISTRY", "DEFAULT_METHODS", "get_explainer", "method_labels"]

"""Attribution methods, one per module; :mod:`pixel_evidence.methods` registers them.

Importing this package imports every method's class (and torch); code that only needs the
methods' names, labels or costs reads :mod:`pixel_evidence.methods` instead.
"""

from __future__ import annotations

from pixel_evidence.explainers.base import Attribution, Explainer
from pixel_evidence.methods import METHODS

# key -> class, in registry order
REGISTRY: dict[str, type[Explainer]] = {key: m.explainer() for key, m in METHODS.items()}


def get_explainer(key: str) -> type[Explainer]:
    """The class of method ``key``; a one-line error lists the valid keys."""
    try:
        return REGISTRY[key]
    except KeyError:
        raise ValueError(f"unknown method {key!r}; choose from {', '.join(REGISTRY)}") from None


__all__ = ["Attribution", "Explainer", "REGISTRY", "get_explainer"]

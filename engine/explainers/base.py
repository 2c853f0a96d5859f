"""The one interface every attribution method implements.

An explainer wraps a classifier ``f: (B, 3, H, W) -> (B, C)`` (normalized inputs, class
logits) and, for a target class per image, returns non-negative importance maps of shape
``(B, H, W)``, float32, at input resolution. Methods that need a layer (the CAM family)
take it from ``layer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class Attribution:
    """Maps ``(B, H, W)`` float32 >= 0 and optional per-image extras, each of shape ``(B,)``."""

    maps: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


class Explainer:
    """Base class: subclasses set ``key``/``label`` and implement ``_attribute``.

    ``params`` holds the method's settings; they are part of every cache key, so two
    explainers with equal ``params`` must produce equal maps.
    """

    key: ClassVar[str]
    label: ClassVar[str]
    cost_note: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, classifier: nn.Module, layer: nn.Module | None = None, *,
                 input_mean=(0.0, 0.0, 0.0), input_std=(1.0, 1.0, 1.0), **params: Any):
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ValueError(f"{self.label} has no parameter(s) {sorted(unknown)}; "
                             f"known: {sorted(self.defaults) or 'none'}")
        self.classifier = classifier
        self.layer = layer
        self.input_mean = tuple(float(v) for v in input_mean)
        self.input_std = tuple(float(v) for v in input_std)
        self.params = {**self.defaults, **params}

    def black_baseline(self, like: torch.Tensor) -> torch.Tensor:
        """A black image in pixel space, normalized like the inputs: (0 - mean) / std."""
        mean = torch.tensor(self.input_mean, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
        std = torch.tensor(self.input_std, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
        return ((0 - mean) / std).expand_as(like).contiguous()

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> Attribution:
        """``inputs`` (B, 3, H, W) normalized, ``target`` (B,) class indices."""
        if inputs.ndim != 4 or inputs.shape[1] != 3:
            raise ValueError(f"inputs must be (B, 3, H, W), got {tuple(inputs.shape)}")
        target = torch.as_tensor(target, device=inputs.device).long().view(-1)
        if target.numel() != inputs.shape[0]:
            raise ValueError(f"{target.numel()} targets for a batch of {inputs.shape[0]}")
        # captum differentiates with respect to the inputs; say so up front rather than let it warn
        out = self._attribute(inputs.detach().requires_grad_(True), target)
        out.maps = out.maps.detach().float().clamp_min_(0)
        return out

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> Attribution:
        raise NotImplementedError

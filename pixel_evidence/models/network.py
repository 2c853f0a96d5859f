"""What the engine needs of a network, whatever its architecture.

``ExplainableNet`` is the contract: ``classify(x)`` (B, 3, H, W) normalized -> (B, C)
logits, which every explainer differentiates; ``forward(x)`` -> ``(logits, mask_logits)``
with mask logits (B, 1, H, W), or None for a network without a mask decoder; the Grad-CAM
layer, named by a module path; the input normalization (``normalization``); the encoder stages that the training modes freeze and the
randomization check re-initialises.
"""

from __future__ import annotations

import torch
from torch import nn


class ModelDefinitionError(ValueError):
    """A network cannot be built as asked: an unknown layer, a wrong output shape, ..."""


def find_layer(root: nn.Module, path: str, *, owner: str = "the network") -> nn.Module:
    """The submodule of ``root`` at ``path`` (e.g. "encoder.layer4"); a path that does not
    exist is a one-line ``ModelDefinitionError`` listing some that do."""
    try:
        return root.get_submodule(path)
    except AttributeError:
        raise ModelDefinitionError(f"Grad-CAM layer {path!r} is not a module of {owner}; candidates: "
                                   f"{', '.join(layer_candidates(root))} (pass one with --cam-layer)") from None


def layer_candidates(root: nn.Module, limit: int = 6) -> list[str]:
    """The last ``limit`` module paths of ``root``, at most two levels deep, holding a
    convolution: where a class activation map can be read."""
    paths = [name for name, module in root.named_modules()
             if name and name.count(".") <= 1 and any(isinstance(m, nn.Conv2d) for m in module.modules())]
    return paths[-limit:]


class ExplainableNet(nn.Module):
    """Base of every network the engine runs.

    Subclasses implement ``classify``, ``encoder_stages`` and ``head``; one with a mask
    decoder overrides ``forward`` and ``mask_logits``. ``cam_layer`` is a module path inside
    ``cam_root()``. Subclasses set ``normalization``, the ``Normalization`` their inputs take.
    """

    def __init__(self, cam_layer: str):
        super().__init__()
        self.cam_layer = cam_layer
        self.frozen_stages = 0

    def cam_root(self) -> nn.Module:
        """The module ``cam_layer`` is a path in."""
        return self

    @property
    def gradcam_layer(self) -> nn.Module:
        # looked up by path on every use: folding BatchNorm replaces modules in place
        return find_layer(self.cam_root(), self.cam_layer)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalized -> (B, C) class logits."""
        raise NotImplementedError

    def encoder_stages(self) -> list[tuple[str, nn.Module]]:
        """(path, module) of the feature stages, input first; the rest of the network is the head."""
        raise NotImplementedError

    def head(self) -> list[tuple[str, nn.Module]]:
        """(path, module) of the parts after the stages, classification path first."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.classify(x), None

    def mask_logits(self, x: torch.Tensor, cam_activation: torch.Tensor | None = None) -> torch.Tensor | None:
        """(B, 1, H, W) mask logits of ``x``, or None for a network without a mask decoder.
        ``cam_activation`` is the Grad-CAM layer's output on ``x`` when the caller has it."""
        return None

    def freeze_stages(self, n: int) -> None:
        """Freeze the first ``n`` encoder stages: no gradients, BatchNorm statistics kept."""
        stages = self.encoder_stages()
        if not 0 <= n <= len(stages):
            raise ModelDefinitionError(f"cannot freeze {n} stages: the encoder has {len(stages)} "
                                       f"({', '.join(name for name, _ in stages)}); pass --freeze-blocks 0-{len(stages)}")
        self.frozen_stages = n
        for i, (_, stage) in enumerate(stages):
            stage.requires_grad_(i >= n)
        self.train(self.training)

    def train(self, mode: bool = True) -> "ExplainableNet":
        super().train(mode)
        for _, stage in self.encoder_stages()[: self.frozen_stages]:
            stage.eval()
        return self

    def randomization_order(self) -> list[tuple[str, nn.Module]]:
        """(path, module) from the top of the classification path down to the input, for the
        cascading randomization check; the decoder is not on that path."""
        return [*self.head(), *reversed(self.encoder_stages())]


class ClassifierView(nn.Module):
    """Exposes ``ExplainableNet.classify`` as a module's forward, for captum."""

    def __init__(self, net: ExplainableNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.classify(x)

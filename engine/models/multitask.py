"""The multitask network: encoder, mask decoder, classifier head.

Inputs are normalized batches ``(B, 3, H, W)`` with H and W multiples of 32; the encoder
downsamples by 32 and the decoder upsamples back to ``(B, 1, H, W)`` logits.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .backbones import build_encoder

ENCODER_CHANNELS = 1280


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

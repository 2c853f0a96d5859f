"""The multitask network: encoder, mask decoder, classifier head.

Inputs are normalized batches ``(B, 3, H, W)`` with H and W multiples of 32; every
backbone's encoder downsamples by 32 and the decoder upsamples back to ``(B, 1, H, W)``
logits. The decoder reads only the encoder's output (no skip connections), so it fits
every backbone once its first projection takes that backbone's channel count.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pixel_evidence.models.encoder_net import EncoderNet


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


def build_decoder(in_channels: int, channels: tuple[int, ...] = (128, 64, 32, 16, 16, 8),
                  mask_prior: float = 0.01) -> nn.Sequential:
    """(B, in_channels, h, w) -> (B, 1, 32h, 32w) mask logits.

    A 1x1 projection first keeps the decoder small (~0.3 M parameters), so ten shipped
    models fit the size budget; five up-blocks then restore the input resolution.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, channels[0], kernel_size=1, bias=False),
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


class MultitaskNet(EncoderNet):
    """Encoder + decoder + classifier (dropout 0.2 before the linear layer).

    ``forward(x)`` returns ``(class_logits (B, C), mask_logits (B, 1, H, W))``.
    ``classify(x)`` runs the encoder and classifier only, which is what the explainers
    differentiate; the decoder is never part of an attribution.
    """

    def __init__(self, num_classes: int, backbone: str = "efficientnet_lite0", *, pretrained: bool = True,
                 dropout: float = 0.2, cam_layer: str | None = None):
        super().__init__(num_classes, backbone, pretrained=pretrained, dropout=dropout, cam_layer=cam_layer)

    def _make_decoder(self, in_channels: int) -> nn.Module:
        return build_decoder(in_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder(x)
        return self.classifier(features), self.decoder(features)

    def mask_logits(self, x: torch.Tensor, cam_activation: torch.Tensor | None = None) -> torch.Tensor:
        # the decoder reads the encoder's output: the Grad-CAM layer's by default
        reuse = cam_activation is not None and self.gradcam_layer is self.encoder[-1]
        return self.decoder(cam_activation if reuse else self.encoder(x))

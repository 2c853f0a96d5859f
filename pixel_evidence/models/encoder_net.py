"""Networks on a backbone's encoder: the plain classifier (encoder + global average pool +
linear, as in the CIFAR-10, CAM and saliency-benchmark studies) and the base the multitask
network adds its mask decoder to."""

from __future__ import annotations

import torch
from torch import nn

from pixel_evidence.models.backbones import build_encoder, get_backbone
from pixel_evidence.models.network import ExplainableNet, find_layer


class EncoderNet(ExplainableNet):
    """``encoder`` (the backbone's stages) + ``classifier`` (average pool, dropout, linear).

    ``cam_layer`` defaults to the backbone's last conv block ("encoder.<stage>").
    """

    def __init__(self, num_classes: int, backbone: str = "efficientnet_lite0", *, pretrained: bool = True,
                 dropout: float = 0.0, cam_layer: str | None = None):
        spec = get_backbone(backbone)
        super().__init__(cam_layer or f"encoder.{spec.cam_stage}")
        self.backbone = backbone
        self.normalization = spec.normalization
        self.encoder = build_encoder(backbone, pretrained=pretrained)
        # built between encoder and classifier, the order of the random init since the first
        # shipped models, so that a seed still trains to the same weights
        self.decoder = self._make_decoder(spec.channels)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                        nn.Linear(spec.channels, num_classes))
        find_layer(self, self.cam_layer, owner=f"the {backbone} network")  # a bad --cam-layer fails before training

    def _make_decoder(self, in_channels: int) -> nn.Module | None:
        """The mask decoder reading the encoder's (B, in_channels, h, w) output; None: none."""
        return None

    def encoder_stages(self) -> list[tuple[str, nn.Module]]:
        return [(f"encoder.{name}", stage) for name, stage in self.encoder.named_children()]

    def head(self) -> list[tuple[str, nn.Module]]:
        return [("classifier", self.classifier)]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(x))


class ClassifierNet(EncoderNet):
    """Encoder + global average pool + linear; ``forward(x)`` -> ``(logits (B, C), None)``."""

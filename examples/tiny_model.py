"""A small classifier of your own, for `pixel-evidence train --model-module examples/tiny_model.py:build`.

`build(num_classes)` returns an `pixel_evidence.models.UserModel`: the network ((B, 3, H, W)
normalized images -> (B, num_classes) logits), the module path of the layer Grad-CAM reads
(a conv block whose output is a (B, K, h, w) feature map) and the input normalization.
The training modes treat the network's top-level children as stages: all but the last
are the encoder (`--mode feature-extraction` freezes them), the last is the head.
"""

from torch import nn

from pixel_evidence.models import Normalization, UserModel


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Conv3x3 + BN + ReLU, then halve the resolution."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2))


def build(num_classes: int) -> UserModel:
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(_block(3, 16), _block(16, 32), _block(32, 64)))
    model.add_module("head", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)))
    # inputs scaled to [-1, 1]
    return UserModel(model, cam_layer="features.2", normalization=Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))

"""Tiny networks and helpers the explainer tests share (fixtures are in conftest.py)."""

from __future__ import annotations

import torch
from torch import nn

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)

# Small settings that keep every method fast on 16 px inputs.
FAST = {"scorecam": {"batch_size": 5}, "ablationcam": {"batch_size": 3},
        "lime": {"n_samples": 40, "n_segments": 8}, "rise": {"n_masks": 40, "grid": 4},
        "occlusion": {"window": 4, "stride": 2}, "smoothgrad": {"nt_samples": 3},
        "smoothgrad_ig": {"nt_samples": 2, "n_steps": 4}}


class TinyNet(nn.Module):
    def __init__(self, act=nn.ReLU):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), act(), nn.Conv2d(4, 6, 3, stride=2, padding=1))
        self.act = act()
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(self.act(self.body(x)).mean((2, 3)))


class ConvNet(nn.Module):
    """Two convs (the second, with its ReLU, is the CAM layer), then a linear head on the
    flattened 8x8 map, so gradients vary over space; the head is scaled up so they are O(1)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(8 * 8 * 8, 3)
        with torch.no_grad():
            self.head.weight.mul_(10)

    def forward(self, x):
        return self.head(self.block(self.stem(x)).flatten(1))


class GapNet(nn.Module):
    """ConvNet's convs, then global average pooling and a linear head: what CAM needs."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.block(self.stem(x)).mean((2, 3)))


def make(cls, net, **params):
    return cls(net, net.block, input_mean=MEAN, input_std=STD, **{**FAST.get(cls.key, {}), **params})


def layer_output(net, x):
    store = []
    handle = net.block.register_forward_hook(lambda m, i, o: store.append(o))
    try:
        scores = net(x)
    finally:
        handle.remove()
    return store[0], scores

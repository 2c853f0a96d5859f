"""Fixtures of the explainer tests: ConvNet (a CAM layer, spatially varying gradients), GapNet
(global average pooling, what CAM needs) and a 16 px batch."""

from __future__ import annotations

import pytest
import torch

from tests.explainers.nets import ConvNet, GapNet


@pytest.fixture
def net():
    return ConvNet().eval()


@pytest.fixture
def gap_net():
    return GapNet().eval()


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(3)
    return torch.randn(2, 3, 16, 16, generator=generator), torch.tensor([0, 2])

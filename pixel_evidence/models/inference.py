"""Making a trained network fast for attribution: BatchNorm folding and channels-last layout."""

from __future__ import annotations

import torch
from torch import nn


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d into the convolution right before it, in place.

    Each (Conv2d or ConvTranspose2d, BatchNorm2d) pair of consecutive children of an
    ``nn.Sequential`` becomes one convolution with adjusted weights and bias followed by an
    ``nn.Identity``, with one pass over each activation less, forward and backward. Each
    folded layer's output differs from the original's by float rounding, and scores stay
    that close, but gradients need not: a pre-activation within rounding of a ReLU6 kink (0
    or 6) can land on the other side, switching that unit's gradient on or off, so
    gradient maps change locally (Saliency by up to 4.8% of its maximum on six test images
    of the shipped seed 42). Only for inference: the folded network has no batch
    statistics left to train.
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

    Scores equal those of the unprepared network up to float rounding; gradient maps can
    differ locally where folding flips a ReLU6 gate (see ``fold_batchnorm``). The result is
    for inference only (no batch statistics to train).
    """
    device = torch.device(device)
    net.eval()
    fold_batchnorm(net)
    fmt = torch.channels_last if device.type in ("cpu", "cuda") else torch.contiguous_format
    net.to(memory_format=fmt)
    net.input_memory_format = fmt
    return net

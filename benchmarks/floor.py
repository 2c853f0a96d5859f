"""Reference (b): the raw-compute floor, the bare forward/backward passes the three methods
need, with plain autograd."""

from __future__ import annotations

import torch


class Floor:
    """The bare passes the three methods need, with plain autograd, on the engine's network
    (same layout), classifier path only:

    - Grad-CAM: forward, backward from the score to the last conv block;
    - Saliency: forward, backward to the input;
    - Integrated Gradients: ``n_steps`` interpolated images, forward and backward to the
      input as one batch (``ig_batched``) or in the engine's chunks (``ig_chunked``).
    """

    def __init__(self, net: torch.nn.Module, n_steps: int, chunk: int):
        self.net = net
        self.n_steps = n_steps
        self.chunk = max(1, chunk)

    def gradcam(self, x: torch.Tensor, target: int) -> None:
        with torch.no_grad():
            feats = self.net.encoder(x)
        feats.requires_grad_(True)
        torch.autograd.grad(self.net.classifier(feats)[0, target], feats)

    def saliency(self, x: torch.Tensor, target: int) -> None:
        x = x.detach().requires_grad_(True)
        torch.autograd.grad(self.net.classify(x)[0, target], x)

    def _ig(self, x: torch.Tensor, target: int, chunk: int) -> None:
        alphas = torch.linspace(0, 1, self.n_steps, device=x.device).view(-1, 1, 1, 1)
        for i in range(0, self.n_steps, chunk):
            a = alphas[i:i + chunk]
            xs = (a * x).contiguous(memory_format=_layout(x)).requires_grad_(True)
            torch.autograd.grad(self.net.classify(xs)[:, target].sum(), xs)

    def ig_batched(self, x: torch.Tensor, target: int) -> None:
        self._ig(x, target, self.n_steps)

    def ig_chunked(self, x: torch.Tensor, target: int) -> None:
        self._ig(x, target, self.chunk)


def _layout(x: torch.Tensor) -> torch.memory_format:
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format

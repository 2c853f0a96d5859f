"""SmoothGrad (Smilkov et al., 2017): Saliency averaged over noisy copies of the input.

captum's ``NoiseTunnel`` adds Gaussian noise to ``nt_samples`` copies of each image and
averages the attributions of the copies. The noise is given relative to the input:
stdev = ``noise`` * (max - min) of the image in normalized space (the paper's 10-20 %
suggestion). Each image draws its noise after ``torch.manual_seed(seed)`` inside
``torch.random.fork_rng``, so the global RNG is untouched and an image's map does not depend on
the batch it came in. With ``noise`` = 0 the result is the base method's.

Map: mean |d y_c / d x| over the copies, then max over RGB, like ``Saliency``.

Params: ``nt_samples`` (16), ``noise`` (0.15), ``seed`` (0), ``batch_size`` (8, noisy copies
per forward/backward).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from pixel_evidence.explainers.base import Attribution, Explainer

if TYPE_CHECKING:
    from captum.attr import Attribution as CaptumAttribution


class SmoothGrad(Explainer):
    key = "smoothgrad"
    defaults = {"nt_samples": 16, "noise": 0.15, "seed": 0, "batch_size": 8}

    def _method(self) -> CaptumAttribution:
        from captum.attr import Saliency as CaptumSaliency  # lazy: see ``Explainer``

        return CaptumSaliency(self.classifier)

    def _method_kwargs(self, image: torch.Tensor) -> dict[str, Any]:
        """Extra arguments of the wrapped method's ``attribute`` for one image (1, 3, H, W)."""
        return {"abs": True}

    def _reduce(self, attr: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) averaged attributions -> (B, H, W) map."""
        return attr.amax(1)

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> Attribution:
        noise = float(self.params["noise"])
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        from captum.attr import NoiseTunnel

        tunnel = NoiseTunnel(self._method())
        maps = []
        with torch.random.fork_rng(devices=[inputs.device] if inputs.device.type == "cuda" else []):
            for image, label in zip(inputs.detach(), target):
                image = image[None]
                torch.manual_seed(int(self.params["seed"]))
                attr = tunnel.attribute(
                    image, nt_type="smoothgrad", nt_samples=int(self.params["nt_samples"]),
                    nt_samples_batch_size=int(self.params["batch_size"]),
                    stdevs=noise * float(image.max() - image.min()), target=label.view(1),
                    **self._method_kwargs(image))
                maps.append(self._reduce(attr)[0])
        return Attribution(torch.stack(maps))

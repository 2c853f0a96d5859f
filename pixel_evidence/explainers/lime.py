"""LIME (Ribeiro et al., 2016) over SLIC superpixels, through captum's ``Lime``.

Each image is cut into about ``n_segments`` superpixels (scikit-image ``slic`` on the image
in pixel space). LIME draws ``n_samples`` random on/off patterns over them, blacks out the
"off" superpixels (black in pixel space, like every baseline here), scores each variant with
the target logit, and fits a linear surrogate: a weighted ridge regression (alpha 1, free
intercept) with the reference lime package's kernel, exp(-d^2 / (2 * 0.25^2)), d the cosine
distance between the pattern and the all-on pattern. The map gives each pixel its
superpixel's weight, positive part only: a negative weight means the region argues *against*
the class, which is not evidence for it, and the maps of every method here are read as
"where the evidence for the class is".

Params: ``n_samples`` (200), ``n_segments`` (50), ``seed`` (0; each image draws its patterns
from a local generator seeded with it, so the global RNG is untouched and an image's map does
not depend on its batch), ``batch_size`` (32, variants per forward).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pixel_evidence.explainers.base import Attribution, Explainer

KERNEL_WIDTH = 0.25
RIDGE_ALPHA = 1.0


class Lime(Explainer):
    key = "lime"
    defaults = {"n_samples": 200, "n_segments": 50, "seed": 0, "batch_size": 32}

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> Attribution:
        inputs = inputs.detach()
        black = self.black_baseline(inputs[:1])
        return Attribution(torch.stack([self._explain(image, label, black) for image, label in zip(inputs, target)]))

    def _explain(self, image: torch.Tensor, label: torch.Tensor, black: torch.Tensor) -> torch.Tensor:
        """Map (H, W) of one image (3, H, W) for its target ``label`` (0-d)."""
        segments = self.superpixels(image)
        generator = torch.Generator().manual_seed(int(self.params["seed"]))

        def draw_pattern(original, num_interp_features, **kwargs):
            coin = torch.full((1, num_interp_features), 0.5)
            return torch.bernoulli(coin, generator=generator).to(image.device).long()

        from captum.attr import Lime as CaptumLime  # lazy: see ``Explainer``

        lime = CaptumLime(self.classifier, interpretable_model=_WeightedRidge(RIDGE_ALPHA),
                          similarity_func=_lime_kernel, perturb_func=draw_pattern)
        weights = lime.attribute(image[None], baselines=black, target=label.view(1),
                                 feature_mask=segments[None, None], n_samples=int(self.params["n_samples"]),
                                 perturbations_per_eval=int(self.params["batch_size"]), return_input_shape=False)
        return weights[0].to(image.device)[segments].clamp_min(0)

    def superpixels(self, image: torch.Tensor) -> torch.Tensor:
        """SLIC labels (H, W) long, numbered 0..S-1, of one normalized image (3, H, W)."""
        # scikit-image pulls in scipy (~0.4 s): import it only when LIME runs
        from skimage.segmentation import slic

        mean = torch.tensor(self.input_mean, device=image.device).view(3, 1, 1)
        std = torch.tensor(self.input_std, device=image.device).view(3, 1, 1)
        pixels = (image * std + mean).clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        labels = slic(pixels, n_segments=int(self.params["n_segments"]), start_label=0, channel_axis=-1)
        # captum counts features as max label + 1, so close any gaps in the numbering
        _, dense = np.unique(labels, return_inverse=True)
        return torch.from_numpy(dense.reshape(labels.shape)).to(image.device)


def _lime_kernel(original, perturbed, pattern, **kwargs) -> float:
    """Sample weight of one on/off pattern (1, S): near 1 when most superpixels are kept."""
    distance = 1 - math.sqrt(pattern.float().mean().item())
    return math.exp(-distance**2 / (2 * KERNEL_WIDTH**2))


class _WeightedRidge:
    """Closed-form weighted ridge regression in captum's interpretable-model protocol.

    ``fit`` gets the samples (patterns (N, S), outputs (N,), sample weights (N,)) and solves
    min sum_i s_i (y_i - b - z_i . w)^2 + alpha |w|^2; ``representation`` returns w as (1, S).
    Centering on the weighted means removes the (unpenalised) intercept b.
    """

    def __init__(self, alpha: float):
        self.alpha = alpha
        self.coef: torch.Tensor | None = None

    def fit(self, train_data) -> None:
        # captum passes a DataLoader over one TensorDataset; read the tensors directly, since
        # iterating a DataLoader draws a seed from the global RNG
        patterns, outputs, weights = (t.double() for t in train_data.dataset.tensors)
        outputs, weights = outputs.view(-1), weights.view(-1)
        share = weights / weights.sum()
        z = patterns - share @ patterns
        y = outputs - share @ outputs
        gram = z.T @ (weights[:, None] * z) + self.alpha * torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
        self.coef = torch.linalg.solve(gram, z.T @ (weights * y))

    def representation(self) -> torch.Tensor:
        return self.coef.float()[None]

"""SIDU (Muddamsetty et al., Pattern Recognition 2022): Similarity Difference and Uniqueness.

Each channel i of the last conv block's output (the Grad-CAM layer), binarised at
``threshold`` and bilinearly upsampled to the input (``align_corners=False``), is a mask
M_i (H, W); the image is seen through each mask, x_i = x ⊙ M_i, and with p = softmax(f(.))

    SD_i = sqrt(exp(-(p_0[t] - p_i[t])^2 / sigma^2))     similarity difference, p_0 = p(x)
    U_i  = minmax_i(sum_j ||p_i - p_j||_2)                uniqueness, over all N channels
    S    = sum_i SD_i * U_i * M_i / N                     -> (B, H, W)

for the explained class t. This follows the authors' code, ``SIDU_XAI.py`` of
satyamahesh84/SIDU_XAI_CODE as of commit dca19f3 (2022-02-27, the last to change it), not the
paper's vector notation nor the pytorch-sidu port:

- channels are binarised at ``> 0.1`` (that commit's value; 0.5 before it);
- masks are upsampled as ``skimage.transform.resize(order=1, mode='reflect',
  anti_aliasing=False)`` does: bilinear at half-pixel centres, and beyond the outermost
  centres (the outer half cell of the map, 16 px of each border of a 224 px image from a 7 x 7
  map, 27% of its pixels) mirrored about the edge cell, not clamped to it as torch's
  ``interpolate`` would (that changes every mask, so every weight and the whole map);
- the class enters through SD alone: ``sim_differences`` takes ``abs(pred_org - preds)``
  per class, a (N, C) array of weights, and the explanation of class t is row t of the
  saliency (``sal[class_idx]``); uniqueness compares whole probability vectors (``cdist``);
- masking multiplies the model's input as it is (``inp * masks`` on the preprocessed,
  mean-subtracted image), so a masked-out pixel is zero in normalized space, the
  normalization's mean colour, not black as in RISE and Score-CAM here;
- every channel counts in N and in the uniqueness sums, including those whose mask is
  empty (they add nothing to S but are part of the comparison set);
- the code's extra division by ``p1 = 0.5`` (carried over from RISE, where it is the keep
  probability) is left out: a constant factor of 2 that changes no ranking; so is the 1e-13
  its min-max adds to the denominator (U is all zeros here when every channel scores alike).

Two exact shortcuts keep the cost down. Channels with the same binary pattern give the same
masked image, so each distinct pattern is scored once and counted as often as it occurs.
And since the upsampling is linear, S is summed at the layer's resolution and upsampled once.

Deterministic (no sampling); runs on the inputs' device.
"""

from __future__ import annotations

import torch

from pixel_evidence.explainers.base import ACTIVATION, Attribution, Explainer, GradientPass


def mirrored_bilinear_weights(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) float64: row i holds the weights of ``n_in`` samples that give output
    sample i of a linear resize to ``n_out`` as skimage's ``resize(order=1, mode='reflect')``
    does: position (i + 0.5) n_in / n_out - 0.5, interpolated between the two nearest samples,
    indices outside [0, n_in) mirrored about the edge sample (ndimage's ``mirror``)."""
    weights = torch.zeros(n_out, n_in, dtype=torch.float64)
    if n_in == 1:
        return weights.add_(1.0)

    def mirror(j: int) -> int:
        period = 2 * (n_in - 1)
        j = abs(j) % period
        return period - j if j >= n_in else j

    for i in range(n_out):
        x = (i + 0.5) * n_in / n_out - 0.5
        low = int(torch.floor(torch.tensor(x)))
        frac = x - low
        weights[i, mirror(low)] += 1 - frac
        weights[i, mirror(low + 1)] += frac
    return weights


def upsample_mirrored(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(..., h, w) -> (..., H, W): ``mirrored_bilinear_weights`` along both axes."""
    rows = mirrored_bilinear_weights(maps.shape[-2], size[0]).to(maps.device, maps.dtype)
    cols = mirrored_bilinear_weights(maps.shape[-1], size[1]).to(maps.device, maps.dtype)
    return rows @ maps @ cols.T


def similarity_difference(p0: torch.Tensor, probs: torch.Tensor, target: int, sigma: float) -> torch.Tensor:
    """SD (D,) of masked-image probabilities ``probs`` (D, C) against the image's ``p0`` (C,), class ``target``."""
    return torch.exp(-(p0[target] - probs[:, target]) ** 2 / sigma ** 2).sqrt()


def uniqueness(probs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """U (D,): each distinct row of ``probs`` (D, C), occurring ``counts`` (D,) times among
    the channels, by its summed Euclidean distance to every channel's row, min-max
    normalised; all zeros when every channel scores alike."""
    # the direct formula, not the matrix-product shortcut: distances between close
    # probability vectors would lose their digits to cancellation
    totals = torch.cdist(probs[None], probs[None], compute_mode="donot_use_mm_for_euclid_dist")[0] @ counts
    low, span = totals.min(), totals.max() - totals.min()
    return (totals - low) / span if span > 0 else torch.zeros_like(totals)


class SIDU(Explainer):
    key = "sidu"
    defaults = {"threshold": 0.1, "sigma": 0.25, "batch_size": 32}
    pass_needs = frozenset({ACTIVATION})

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor,
                  scores: torch.Tensor | None = None) -> Attribution:
        """SIDU maps of ``inputs`` for ``target``.

        Args:
            inputs: (B, 3, H, W) float, normalized as the classifier expects.
            target: (B,) int64 class indices, one per image.
            scores: (B, C) logits of ``inputs``; not used (the layer's forward gives them).

        Params (constructor keywords): ``threshold`` (0.1) binarises the layer's
        activations; ``sigma`` (0.25) is the similarity kernel's width, in probability
        units; ``batch_size`` (32) masked images per forward.

        Returns:
            ``Attribution`` with ``maps`` (B, H, W) float32 >= 0 and no extras.
        """
        return super().attribute(inputs, target, scores)

    def from_pass(self, p: GradientPass) -> Attribution:
        sigma, batch_size = float(self.params["sigma"]), int(self.params["batch_size"])
        if sigma <= 0 or batch_size < 1:
            raise ValueError(f"need sigma > 0 and batch_size >= 1, got sigma {sigma}, batch_size {batch_size}")
        size = tuple(p.inputs.shape[-2:])
        n_channels, h, w = p.activation.shape[1:]
        p0 = p.scores.softmax(1)
        maps = []
        with torch.no_grad():
            for image, acts, label, image_p0 in zip(p.inputs, p.activation, p.target, p0):
                patterns, counts = torch.unique((acts > float(self.params["threshold"])).flatten(1), dim=0,
                                                return_counts=True)
                grids = patterns.to(image.dtype).view(-1, 1, h, w)
                probs = torch.cat([self.classifier(image * upsample_mirrored(chunk, size)).softmax(1)
                                   for chunk in grids.split(batch_size)])
                counts = counts.to(probs.dtype)
                weights = counts * similarity_difference(image_p0, probs, int(label), sigma) * uniqueness(probs, counts)
                maps.append(torch.einsum("d,dhw->hw", weights, grids[:, 0]) / n_channels)
            return Attribution(upsample_mirrored(torch.stack(maps), size))

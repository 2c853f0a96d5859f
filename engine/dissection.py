"""Network Dissection against the defect masks: which units of a stage fire on which defect.

NetDissect (Bau et al., CVPR 2017) with the defect classes as the concepts and the
ground-truth masks as their segmentations. For a stage (a named block of the encoder) and
every unit (channel) k of it:

1. T_k is the 99.5th percentile of the unit's activations over the whole split: every image
   and every position of the stage's own map, before any upsampling. It is exact, with
   numpy's default ("linear") interpolation between the two order statistics around the
   quantile's position: all activations of the split are held in memory (float32, on the
   CPU), and a split whose activations would pass ``memory_limit`` bytes is refused with a
   line saying how big it is, never approximated silently.
2. Each activation map is upsampled bilinearly (``align_corners=False``) to mask size and
   A_k = {pixels where it is > T_k}.
3. IoU_k,c = Σ|A_k ∩ S_c| / Σ|A_k ∪ S_c|, summed over the split's images before dividing
   (not averaged per image). As in NetDissect, the concept mask S_c is empty on every image
   that does not show concept c: images of other classes (defect-free ones too) add no
   intersection, and every pixel where the unit fires on them counts in the union. A unit
   that fires on defects in general therefore scores lower against each single class than
   one that fires on one class only.
4. Unit k is a detector of c when IoU_k,c >= 0.04 (NetDissect's cut-off).

Counts are integers, so the result does not depend on batch size or summation order.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .dissection_table import DETECTOR_IOU, QUANTILE

MEMORY_LIMIT = 2 * 1024 ** 3  # bytes of stage activations held for the exact thresholds
UPSAMPLED_ELEMENTS = 1 << 24  # activations upsampled at once (64 MB of float32): bounds memory per step


def stage_names(net: nn.Module) -> list[str]:
    """The stages a network offers for dissection: its encoder stages' module paths."""
    return [name for name, _ in net.encoder_stages()]


def stage_module(net: nn.Module, stage: str) -> nn.Module:
    """The module of ``stage``; a name that is not one of the network's stages is a one-line
    ``ValueError`` listing those that are."""
    names = stage_names(net)
    if stage not in names:
        raise ValueError(f"stage {stage!r} is not a stage of this network; choose one of {', '.join(names)}")
    return net.get_submodule(stage)


def stage_activations(net: nn.Module, stage: str, x: torch.Tensor) -> torch.Tensor:
    """The output (B, K, h, w) of ``stage`` on the normalized batch ``x``, float32, contiguous."""
    module = stage_module(net, stage)
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        with torch.inference_mode():
            net.classify(x)
    finally:
        handle.remove()
    return captured[0].float().contiguous()


def unit_thresholds(activations: torch.Tensor, quantile: float = QUANTILE) -> torch.Tensor:
    """Per unit, the ``quantile`` of its values over all images and positions: (N, K, h, w)
    -> (K,) float64, exactly ``np.percentile(values, 100 * quantile)`` (linear interpolation).

    The two order statistics around the quantile's position are found with ``kthvalue``,
    a few units at a time so the per-unit copy stays small.
    """
    n_units = activations.shape[1]
    per_unit = activations[:, 0].numel()
    position = quantile * (per_unit - 1)
    lo, frac = int(np.floor(position)), position - np.floor(position)
    hi = min(lo + 1, per_unit - 1)
    chunk = max(1, UPSAMPLED_ELEMENTS // max(per_unit, 1))
    out = torch.empty(n_units, dtype=torch.float64)
    for start in range(0, n_units, chunk):
        values = activations[:, start:start + chunk].transpose(0, 1).reshape(-1, per_unit)
        low = values.kthvalue(lo + 1, dim=1).values.double()
        high = values.kthvalue(hi + 1, dim=1).values.double()
        out[start:start + chunk] = (low + frac * (high - low)).cpu()
    return out


def active_pixels(activations: torch.Tensor, thresholds: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, K, h, w) activations -> (B, K, H, W) bool: upsampled bilinearly to ``size``, > the
    thresholds, (K,) one per unit or (B, K) one per map. Compared in the activations' dtype."""
    up = F.interpolate(activations, size=size, mode="bilinear", align_corners=False)
    return up > thresholds.to(up.device, up.dtype)[..., None, None]


@dataclass
class IoUCounts:
    """Pixel counts summed over a split, from which IoU_k,c follows.

    ``intersection`` (K, C): Σ|A_k ∩ S_c| over images of class c; ``fired`` (K,): Σ|A_k| over
    all images; ``mask`` (C,): Σ|S_c| over images of class c.
    """

    intersection: np.ndarray
    fired: np.ndarray
    mask: np.ndarray

    @classmethod
    def empty(cls, n_units: int, n_concepts: int) -> "IoUCounts":
        return cls(np.zeros((n_units, n_concepts), np.int64), np.zeros(n_units, np.int64),
                   np.zeros(n_concepts, np.int64))

    def add_masks(self, masks: torch.Tensor, concepts: torch.Tensor) -> None:
        """Count a batch's concept pixels: ``masks`` (B, H, W) bool, ``concepts`` (B,) the
        concept index of each image, -1 for an image of no concept (its mask is ignored: every
        concept mask is empty on it)."""
        for c in range(self.mask.shape[0]):
            self.mask[c] += int(masks[concepts == c].sum())

    def add_maps(self, active: torch.Tensor, units: torch.Tensor, masks: torch.Tensor,
                 concepts: torch.Tensor) -> None:
        """Count unit maps: ``active`` (P, H, W) bool, where unit ``units[p]`` fires on an image
        whose mask is ``masks[p]`` (H, W) and concept ``concepts[p]`` (-1: none)."""
        # bincount's weights are float64 but hold pixel counts: sums are exact in any order
        n_units = self.fired.shape[0]
        fired = active.sum(dim=(1, 2))
        self.fired += torch.bincount(units, weights=fired.double(), minlength=n_units).long().cpu().numpy()
        hits = (active & masks).sum(dim=(1, 2)).double()
        for c in range(self.mask.shape[0]):
            of_c = concepts == c
            self.intersection[:, c] += torch.bincount(units[of_c], weights=hits[of_c],
                                                      minlength=n_units).long().cpu().numpy()

    def iou(self) -> np.ndarray:
        """(K, C) Σ|A∩S| / Σ|A∪S|; 0 where the union is empty (a unit that never fires, a
        concept without mask pixels)."""
        union = self.fired[:, None] + self.mask[None, :] - self.intersection
        return np.divide(self.intersection, union, out=np.zeros(union.shape), where=union > 0)


@dataclass(frozen=True)
class Dissection:
    """A stage dissected over a split: per unit its threshold, per unit and concept its IoU."""

    stage: str
    concepts: tuple[str, ...]
    thresholds: np.ndarray  # (K,)
    iou: np.ndarray         # (K, C)

    @property
    def detectors(self) -> np.ndarray:
        """(K, C) bool: IoU >= ``DETECTOR_IOU``."""
        return self.iou >= DETECTOR_IOU


def dissect(net: nn.Module, stage: str, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
            concepts: tuple[str, ...], *, memory_limit: int = MEMORY_LIMIT,
            guard: Callable[[], AbstractContextManager] = nullcontext) -> Dissection:
    """Dissect ``stage`` of ``net`` over the split that ``batches`` yields.

    ``batches``: (x (B, 3, H, W) normalized on the network's device, masks (B, H, W) bool,
    concept index (B,) with -1 for images of no concept). Two passes: the first runs the
    network and keeps the stage's activations (on the CPU) for the exact thresholds, the
    second thresholds and counts them on the network's device; the network runs once per
    image, each forward inside ``guard()`` (the engine's model lock: hooks are not thread-safe).
    """
    stage_module(net, stage)  # a bad name fails before any forward
    kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    held = 0
    device = torch.device("cpu")
    for x, masks, concept in batches:
        with guard():
            acts = stage_activations(net, stage, x).cpu()
        device = x.device
        held += acts.numel() * acts.element_size()
        if held > memory_limit:
            raise ValueError(f"stage {stage!r}: its activations over the split pass {memory_limit / 2 ** 30:.1f} GB "
                             "(the exact thresholds hold them all); dissect a later, smaller stage")
        kept.append((acts, masks.cpu(), concept.cpu()))
    if not kept:
        raise ValueError("dissection needs at least one image")
    thresholds = unit_thresholds(torch.cat([a for a, _, _ in kept]))
    n_units = len(thresholds)
    counts = IoUCounts.empty(n_units, len(concepts))
    for acts, masks, concept in kept:
        counts.add_masks(masks, concept)
        # Bilinear upsampling takes convex combinations of neighbours, so a map whose maximum is
        # <= T_k fires nowhere: only the (image, unit) pairs above it are upsampled (a few % of them).
        image, unit = torch.nonzero(acts.amax(dim=(2, 3)) > thresholds.float()[None, :], as_tuple=True)
        step = max(1, UPSAMPLED_ELEMENTS // masks[0].numel())
        for p in range(0, len(unit), step):
            i, u = image[p:p + step], unit[p:p + step]
            maps = acts[i, u][:, None].to(device)
            active = active_pixels(maps, thresholds[u][:, None], tuple(masks.shape[-2:]))[:, 0]
            counts.add_maps(active, u.to(device), masks[i].to(device), concept[i].to(device))
    return Dissection(stage, tuple(concepts), thresholds.numpy(), counts.iou())

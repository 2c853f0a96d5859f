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
2. Each activation map is upsampled bilinearly (``align_corners=False``) to mask size. The
   unit fires fully where it is > T_k, and on a share ``tie_share`` of the pixels where it
   equals T_k (below).
3. IoU_k,c = Σ|A_k ∩ S_c| / Σ|A_k ∪ S_c|, summed over the split's images before dividing
   (not averaged per image). By default (``union="all"``), as in NetDissect, the concept mask
   S_c is empty on every image that does not show concept c: images of other classes
   (defect-free ones too) add no intersection, and every pixel where the unit fires on them
   counts in the union. ``union="defect"`` leaves the defect-free images out of the sums,
   ``union="concept"`` every image not of class c (the sums run over the images labelled
   with the concept only).
4. Unit k is a detector of c when IoU_k,c >= 0.04 (NetDissect's cut-off).

Ties at the threshold. The paper writes A_k = {S_k >= T_k}, NetDissect-Lite's code uses
``>``; both assume that the quantile falls between distinct values. A bounded activation
breaks that: EfficientNet-lite's last block ends in ReLU6, and most of its units sit at 6.0
on more than 0.5% of positions, so T_k = 6.0 exactly. Under ``>`` such a unit never fires
(bilinear interpolation of values <= 6 never exceeds 6); under ``>=`` it fires on the whole
saturated block, 0.5-9% of positions instead of 0.5%. Here, as TKO shares its cut-off among
tied pixels, the tied positions share what is left of the firing budget: with n_above
positions of the split above T_k, n_tied at it, and (1 - q) N the budget,
tie_share = ((1 - q) N - n_above) / n_tied, clipped to [0, 1], and each tied pixel counts
that much in the intersection and the union. So every unit fires on 0.5% of its positions,
in expectation over the tie, which is the quantile's meaning. A tie at the unit's floor (a
ReLU unit that is 0 on more than 99.5% of positions) is the exception: there the unit is
off, so it fires where it is above the floor only, on less than the budget, as under ``>``. A pixel of the upsampled map
is tied when it is within a few float32 ulps of T_k (bilinear weights that do not sum to 1
exactly can move a value of a flat tied patch by that much).

Counts are integers (above and tied pixels kept apart until the shares weigh them), so the
result does not depend on batch size or summation order.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from pixel_evidence.dissection.table import COLUMNS, DETECTOR_IOU, QUANTILE, UNION_RULES

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
    -> (K,) float64, exactly ``np.percentile(values, 100 * quantile)`` (linear interpolation)."""
    return threshold_units(activations, quantile).values


TIE_ULPS = 4  # a pixel within this many float32 ulps of T_k (relative) is tied with it


@dataclass(frozen=True)
class UnitThresholds:
    """Per unit (K,): ``values`` T_k (float64); ``tie_share`` the share of the positions at
    T_k that fire; ``at_max`` whether T_k is the unit's largest activation (a bounded unit,
    such as ReLU6 at its ceiling, whose top positions are all tied)."""

    values: torch.Tensor
    tie_share: torch.Tensor
    at_max: torch.Tensor


def tie_band(thresholds: torch.Tensor) -> torch.Tensor:
    """Half-width of the band around each threshold within which a pixel counts as tied."""
    return TIE_ULPS * torch.finfo(torch.float32).eps * thresholds.abs()


def threshold_units(activations: torch.Tensor, quantile: float = QUANTILE) -> UnitThresholds:
    """T_k, its tie share and whether it is the unit's maximum, from the split's activations
    (N, K, h, w) at the stage's own resolution, in one pass over the units.

    T_k is interpolated between the two order statistics around the quantile's position,
    found with ``kthvalue``, a few units at a time so the per-unit copy stays small.
    """
    n_units = activations.shape[1]
    per_unit = activations[:, 0].numel()
    position = quantile * (per_unit - 1)
    lo, frac = int(np.floor(position)), position - np.floor(position)
    hi = min(lo + 1, per_unit - 1)
    budget = (1 - quantile) * per_unit
    values = torch.empty(n_units, dtype=torch.float64)
    shares, at_max = torch.zeros(n_units, dtype=torch.float64), torch.zeros(n_units, dtype=torch.bool)
    chunk = max(1, UPSAMPLED_ELEMENTS // max(per_unit, 1))
    for start in range(0, n_units, chunk):
        rows = activations[:, start:start + chunk].transpose(0, 1).reshape(-1, per_unit)
        low = rows.kthvalue(lo + 1, dim=1).values.double()
        high = rows.kthvalue(hi + 1, dim=1).values.double()
        t = (low + frac * (high - low)).cpu()
        values[start:start + chunk] = t
        rows, t = rows.double().cpu(), t[:, None]
        band = tie_band(t)
        above = (rows > t + band).sum(1).double()
        tied = ((rows - t).abs() <= band).sum(1).double()
        # a tie at the unit's floor (ReLU's 0) is where it is off: it fires on less than the
        # budget, above the floor only
        at_floor = rows.amin(1) >= t[:, 0] - band[:, 0]
        share = torch.where((tied > 0) & ~at_floor, (budget - above) / tied.clamp_min(1), torch.zeros_like(tied))
        shares[start:start + chunk] = share.clamp(0, 1)
        at_max[start:start + chunk] = rows.amax(1) <= t[:, 0] + band[:, 0]
    return UnitThresholds(values, shares, at_max)


def firing_pixels(activations: torch.Tensor, thresholds: torch.Tensor,
                  size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, K, h, w) activations -> ``(above, tied)``, each (B, K, H, W) bool: upsampled
    bilinearly to ``size``, above the thresholds, or tied with them (within ``tie_band``);
    thresholds (K,) one per unit or (B, K) one per map. Compared in the activations' dtype."""
    up = F.interpolate(activations, size=size, mode="bilinear", align_corners=False)
    t = thresholds.to(up.device, torch.float64)[..., None, None]
    band = tie_band(t).to(up.dtype)
    t = t.to(up.dtype)
    return up > t + band, (up - t).abs() <= band


@dataclass
class IoUCounts:
    """Pixel counts summed over a split, from which IoU_k,c follows. Pixels above the
    threshold and pixels tied with it are counted apart; the tie shares weigh them at the end.

    ``intersection`` and ``tied_intersection`` (K, C): Σ|A_k ∩ S_c| over images of class c;
    ``fired`` and ``tied_fired`` (K, C + 1): Σ|A_k| over the images of each class, the last
    column for the images of no concept; ``mask`` (C,): Σ|S_c| over images of class c.
    """

    intersection: np.ndarray
    tied_intersection: np.ndarray
    fired: np.ndarray
    tied_fired: np.ndarray
    mask: np.ndarray

    @classmethod
    def empty(cls, n_units: int, n_concepts: int) -> "IoUCounts":
        def zeros(*shape):
            return np.zeros(shape, np.int64)
        return cls(zeros(n_units, n_concepts), zeros(n_units, n_concepts), zeros(n_units, n_concepts + 1),
                   zeros(n_units, n_concepts + 1), zeros(n_concepts))

    def add_masks(self, masks: torch.Tensor, concepts: torch.Tensor) -> None:
        """Count a batch's concept pixels: ``masks`` (B, H, W) bool, ``concepts`` (B,) the
        concept index of each image, -1 for an image of no concept (its mask is ignored: every
        concept mask is empty on it)."""
        for c in range(self.mask.shape[0]):
            self.mask[c] += int(masks[concepts == c].sum())

    def add_maps(self, above: torch.Tensor, tied: torch.Tensor, units: torch.Tensor, masks: torch.Tensor,
                 concepts: torch.Tensor) -> None:
        """Count unit maps: ``above`` and ``tied`` (P, H, W) bool, where unit ``units[p]`` fires
        on an image whose mask is ``masks[p]`` (H, W) and concept ``concepts[p]`` (-1: none)."""
        n_units, n_concepts = self.fired.shape[0], self.mask.shape[0]

        def per_unit(weights: torch.Tensor, rows: torch.Tensor) -> np.ndarray:
            # bincount's weights are float64 but hold pixel counts: sums are exact in any order
            return torch.bincount(units[rows], weights=weights[rows].double(), minlength=n_units).long().cpu().numpy()

        for pixels, fired, intersection in ((above, self.fired, self.intersection),
                                            (tied, self.tied_fired, self.tied_intersection)):
            count, hits = pixels.sum(dim=(1, 2)), (pixels & masks).sum(dim=(1, 2))
            for c in range(n_concepts + 1):
                of_c = concepts == (c if c < n_concepts else -1)
                fired[:, c] += per_unit(count, of_c)
                if c < n_concepts:
                    intersection[:, c] += per_unit(hits, of_c)

    def iou(self, tie_share: np.ndarray, union: str = "all") -> np.ndarray:
        """(K, C) Σ|A∩S| / Σ|A∪S| with tied pixels weighted by ``tie_share`` (K,), over the
        images that ``union`` names; 0 where the union is empty (a unit that never fires, a
        concept without mask pixels)."""
        if union not in UNION_RULES:
            raise ValueError(f"unknown union rule {union!r}; choose one of {', '.join(UNION_RULES)}")
        share = tie_share[:, None]
        inter = self.intersection + share * self.tied_intersection
        fired = self.fired + share * self.tied_fired  # (K, C + 1)
        if union == "concept":
            fired_in_union = fired[:, :-1]
        else:
            fired_in_union = fired[:, :-1].sum(1, keepdims=True) + (fired[:, -1:] if union == "all" else 0)
        total = fired_in_union + self.mask[None, :] - inter
        return np.divide(inter, total, out=np.zeros(total.shape), where=total > 0)


@dataclass(frozen=True)
class Dissection:
    """A stage dissected over a split: per unit its threshold (with its tie share and
    whether it is the unit's maximum), per unit and concept its IoU under ``union``."""

    stage: str
    concepts: tuple[str, ...]
    thresholds: np.ndarray  # (K,)
    tie_share: np.ndarray   # (K,)
    at_max: np.ndarray      # (K,) bool
    iou: np.ndarray         # (K, C)
    union: str = "all"

    @property
    def detectors(self) -> np.ndarray:
        """(K, C) bool: IoU >= ``DETECTOR_IOU``."""
        return self.iou >= DETECTOR_IOU

    def frame(self, seed: int, split: str) -> pd.DataFrame:
        """The table rows of this dissected stage (``table.COLUMNS``), unit-major, concepts in order."""
        rows = [(seed, split, self.stage, unit, concept, float(self.iou[unit, c]), float(self.thresholds[unit]),
                 float(self.tie_share[unit]), bool(self.at_max[unit]), bool(self.detectors[unit, c]))
                for unit in range(len(self.thresholds)) for c, concept in enumerate(self.concepts)]
        return pd.DataFrame(rows, columns=list(COLUMNS))


def dissect(net: nn.Module, stage: str, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
            concepts: tuple[str, ...], *, union: str = "all", memory_limit: int = MEMORY_LIMIT,
            guard: Callable[[], AbstractContextManager] = nullcontext) -> Dissection:
    """Dissect ``stage`` of ``net`` over the split that ``batches`` yields.

    ``batches``: (x (B, 3, H, W) normalized on the network's device, masks (B, H, W) bool,
    concept index (B,) with -1 for images of no concept). Two passes: the first runs the
    network and keeps the stage's activations (on the CPU) for the exact thresholds, the
    second thresholds and counts them on the network's device; the network runs once per
    image, each forward inside ``guard()`` (the engine's model lock: hooks are not thread-safe).
    """
    stage_module(net, stage)  # a bad name fails before any forward
    if union not in UNION_RULES:
        raise ValueError(f"unknown union rule {union!r}; choose one of {', '.join(UNION_RULES)}")
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
    units_t = threshold_units(torch.cat([a for a, _, _ in kept]))
    thresholds = units_t.values
    lowest_tied = (thresholds - tie_band(thresholds)).float()
    counts = IoUCounts.empty(len(thresholds), len(concepts))
    for acts, masks, concept in kept:
        counts.add_masks(masks, concept)
        # Bilinear upsampling takes convex combinations of neighbours, so a map whose maximum is
        # below T_k's tie band fires nowhere: only the other (image, unit) pairs are upsampled.
        image, unit = torch.nonzero(acts.amax(dim=(2, 3)) >= lowest_tied[None, :], as_tuple=True)
        step = max(1, UPSAMPLED_ELEMENTS // masks[0].numel())
        for p in range(0, len(unit), step):
            i, u = image[p:p + step], unit[p:p + step]
            maps = acts[i, u][:, None].to(device)
            above, tied = firing_pixels(maps, thresholds[u][:, None], tuple(masks.shape[-2:]))
            counts.add_maps(above[:, 0], tied[:, 0], u.to(device), masks[i].to(device), concept[i].to(device))
    shares = units_t.tie_share.numpy()
    return Dissection(stage, tuple(concepts), thresholds.numpy(), shares, units_t.at_max.numpy(),
                      counts.iou(shares, union), union)

"""What the engine returns, as plain numpy data: no torch, so the dashboard can import it.

``Prediction`` is the model's view of one image; ``MethodResult`` one method's map with its
scores; ``Explanation`` everything shown for one (seed, image).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from pixel_evidence import metrics
from pixel_evidence.choices import TARGETS
from pixel_evidence.data import Sample
from pixel_evidence.metrics.scores import score

# An extra map (H, W) a method had one refinement before its final map (Integrated Gradients
# to a tolerance): scored against the mask, it becomes the extra ``tko_change``.
PREVIOUS_MAP = "previous_map"


@dataclass(frozen=True)
class Prediction:
    """One image as the model saw it and what the model made of it, at model resolution."""

    image: np.ndarray            # (H, W, 3) uint8
    mask: np.ndarray             # (H, W) bool, ground-truth defect pixels
    logits: np.ndarray           # (C,) float32
    probabilities: np.ndarray    # (C,) float32, softmax of the logits
    reconstruction: np.ndarray | None  # (H, W) float32, sigmoid of the decoder's mask logits; None: no decoder

    @property
    def predicted_index(self) -> int:
        return int(np.argmax(self.logits))

    def target_index(self, target: str, true_index: int) -> int:
        """The class the maps explain: the predicted one for ``target`` "predicted", else
        the image's true class ``true_index``."""
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        return self.predicted_index if target == "predicted" else true_index


@dataclass(frozen=True)
class MethodResult:
    """One method's map on one image and its scores. ``map`` is (H, W) float32 >= 0.

    ``scores`` is keyed by the score registry (:data:`~pixel_evidence.metrics.scores.LOCALISATION_SCORES`):
    "tko" always, the other registered scores when the request named them. ``chance``, ``lift``
    and ``iou`` come with TKO from the same top-K selection; ``rank`` and ``win_share`` place
    the TKO among the image's other methods.
    """

    key: str
    label: str
    map: np.ndarray
    scores: Mapping[str, float]
    chance: float
    lift: float
    iou: float
    rank: float
    win_share: float
    extras: dict[str, float] = field(default_factory=dict)

    @property
    def tko(self) -> float:
        """Top-K overlap, the score the methods are ranked by."""
        return self.scores["tko"]


@dataclass(frozen=True)
class Explanation:
    """Everything shown for one (seed, image): arrays at model resolution (H, W)."""

    seed: int
    split: str
    image_id: str
    true_class: str
    image: np.ndarray            # (H, W, 3) uint8, as the model saw it
    mask: np.ndarray             # (H, W) bool, ground-truth defect pixels
    reconstruction: np.ndarray | None  # (H, W) float32, sigmoid of the decoder's mask logits; None: no decoder
    classes: tuple[str, ...]
    probabilities: np.ndarray    # (C,) float32
    target_mode: str
    target_class: str
    methods: dict[str, MethodResult]
    k: int
    n: int
    # the line naming the mask of a defect image found with no defect pixels (K = 0): bad data,
    # not a defect-free image ('' otherwise)
    empty_mask: str = ""

    @property
    def predicted_class(self) -> str:
        return self.classes[int(np.argmax(self.probabilities))]

    @property
    def correct(self) -> bool:
        return self.predicted_class == self.true_class

    @property
    def rankable(self) -> bool:
        """False when the mask is empty (K = 0): no defect pixels, so no winner."""
        return self.k > 0

    @property
    def ranking(self) -> list[tuple[str, float]]:
        """(method, rank) sorted best first; tied methods share the averaged rank."""
        items = [(k, r.rank) for k, r in self.methods.items() if not np.isnan(r.rank)]
        return sorted(items, key=lambda kr: (kr[1], kr[0]))

    @property
    def winners(self) -> list[str]:
        return [k for k, r in self.methods.items() if r.win_share > 0]

    def agreement(self, fraction: float = 0.2) -> list[dict[str, float | str]]:
        """Pearson, Spearman and top-``fraction`` IoU of every pair of this image's maps
        (rows ``a, b, pearson, spearman, top_iou``; see :func:`metrics.agreement`)."""
        return metrics.agreement({k: r.map for k, r in self.methods.items()}, fraction)


def assemble(seed: int, sample: Sample, prediction: Prediction, maps: Mapping[str, Mapping[str, np.ndarray]],
             *, classes: Sequence[str], labels: Mapping[str, str], target: str, target_index: int,
             scores: Iterable[str] = ()) -> Explanation:
    """One image's explanation from its prediction and every method's map: each map is
    scored against the mask, and the methods are ranked by TKO.

    ``maps``: ``{method: {"map": (H, W) float32, extra: ()}}``, e.g. IG's convergence gap;
    a ``PREVIOUS_MAP`` extra becomes ``tko_change``, the final map's TKO minus its TKO.
    ``scores``: registered scores computed besides TKO (keys of ``LOCALISATION_SCORES``).
    """
    others = [score(k) for k in dict.fromkeys(scores) if k != "tko"]  # unknown keys fail before any work
    mask = metrics.defect_region(prediction.mask)  # once, so K, the scores and the pictures read one region
    topk = {m: metrics.localisation_scores(v["map"], mask) for m, v in maps.items()}
    tkos = {m: s["tko"] for m, s in topk.items()}
    ranks = metrics.rank_methods(tkos)
    shares = metrics.win_shares(tkos)
    results = {
        m: MethodResult(key=m, label=labels[m], map=v["map"],
                        scores={"tko": tkos[m], **{s.key: s(v["map"], mask) for s in others}},
                        chance=topk[m]["chance"], lift=topk[m]["lift"], iou=topk[m]["iou"], rank=ranks[m],
                        win_share=shares[m], extras=_scalar_extras(v, tkos[m], mask))
        for m, v in maps.items()}
    return Explanation(seed=seed, split=sample.split, image_id=sample.id, true_class=sample.cls,
                       image=prediction.image, mask=mask, reconstruction=prediction.reconstruction,
                       classes=tuple(classes), probabilities=prediction.probabilities, target_mode=target,
                       target_class=classes[target_index], methods=results, k=int(mask.sum()), n=int(mask.size))


def _scalar_extras(value: Mapping[str, np.ndarray], tko: float, mask: np.ndarray) -> dict[str, float]:
    extras = {k: float(x) for k, x in value.items() if k not in ("map", PREVIOUS_MAP)}
    if PREVIOUS_MAP in value:
        extras["tko_change"] = tko - metrics.top_k_overlap(value[PREVIOUS_MAP], mask)
    return extras

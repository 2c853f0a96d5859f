"""Network Dissection on the engine's models and images: a stage of one seed over a split,
and the thresholded activation of one unit on a few images, for the dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from .catalogue import ImageCatalogue
from .dissection import Dissection, dissect, firing_pixels, stage_activations, stage_names
from .map_store import MapStore
from .model_pool import ModelPool


@dataclass(frozen=True)
class UnitOverlay:
    """Where one unit fires on one image: ``active`` (H, W) beside the image and its mask."""

    image_id: str
    image: np.ndarray   # (H, W, 3) uint8
    mask: np.ndarray    # (H, W) bool, the ground truth
    active: np.ndarray  # (H, W) float in [0, 1]: 1 above the threshold, the tie share where tied


class Dissector:
    """Dissects the pool's networks over the catalogue's splits; the concepts are the defect
    classes (those with masks), every other image counts with empty concept masks."""

    def __init__(self, pool: ModelPool, catalogue: ImageCatalogue, store: MapStore):
        self.pool, self.catalogue, self.store = pool, catalogue, store

    def stages(self, seed: int) -> list[str]:
        """The stage names ``seed``'s network offers, input first."""
        net, _ = self.pool.network(seed)
        return stage_names(net)

    def concepts(self, split: str) -> tuple[str, ...]:
        """The defect classes of ``split``: the classes whose images there have masks."""
        ids = set(self.catalogue.image_ids(split))
        return tuple(c for c in self.catalogue.classes
                     if any(s.has_mask and s.cls == c and s.id in ids for s in self.catalogue.samples))

    def run(self, seed: int, stage: str, split: str, *, batch_size: int = 16, union: str = "all") -> Dissection:
        """``stage`` of ``seed``'s network dissected over ``split`` (every image of it), the
        union of each concept taken over the images ``union`` names (``dissection.UNION_RULES``)."""
        net, _ = self.pool.network(seed)
        concepts = self.concepts(split)
        return dissect(net, stage, self._batches(seed, self.catalogue.image_ids(split), concepts, batch_size),
                       concepts, union=union, guard=self.pool.running)

    def _batches(self, seed: int, ids: Sequence[str], concepts: tuple[str, ...],
                 batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for start in range(0, len(ids), batch_size):
            chunk = [self.catalogue.sample(i) for i in ids[start:start + batch_size]]
            images, masks = self.catalogue.load(chunk, self.pool.image_size(seed))
            concept = torch.tensor([concepts.index(s.cls) if s.cls in concepts else -1 for s in chunk])
            yield self.pool.input_batch(seed, images), torch.from_numpy(masks), concept

    def overlays(self, seed: int, stage: str, units: Sequence[int], thresholds: Sequence[float],
                 tie_shares: Sequence[float], image_ids: Sequence[str]) -> list[list[UnitOverlay]]:
        """Where each of ``units`` of ``stage`` fires on each of ``image_ids`` (above its
        threshold, the T_k of the table, and by its tie share where tied with it): one list per
        unit, in ``image_ids`` order. One batched forward, cached like maps."""
        def compute() -> list[list[UnitOverlay]]:
            samples = [self.catalogue.sample(i) for i in image_ids]
            images, masks = self.catalogue.load(samples, self.pool.image_size(seed))
            net, _ = self.pool.network(seed)
            x = self.pool.input_batch(seed, images)
            with self.pool.running(len(samples)):
                acts = stage_activations(net, stage, x)
            bad = [u for u in units if not 0 <= u < acts.shape[1]]
            if bad:
                raise ValueError(f"stage {stage!r} has units 0-{acts.shape[1] - 1}, not {bad}")
            above, tied = firing_pixels(acts[:, list(units)], torch.tensor(list(thresholds), dtype=torch.float64),
                                        tuple(masks.shape[-2:]))
            shares = torch.tensor(list(tie_shares), dtype=torch.float32, device=above.device)[None, :, None, None]
            active = (above.float() + tied.float() * shares).cpu().numpy()
            return [[UnitOverlay(s.id, images[i], masks[i], active[i, j]) for i, s in enumerate(samples)]
                    for j in range(len(units))]

        key = ("unit-overlays", seed, self.pool.maps_key(seed), stage, tuple(units),
               tuple(float(t) for t in thresholds), tuple(float(s) for s in tie_shares), tuple(image_ids))
        return self.store.memo(key, compute)

"""Network Dissection on the engine's models and images: a stage of one seed over a split,
and the thresholded activation of one unit on a few images, for the dashboard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pandas as pd
import torch

from pixel_evidence.dissection.overlay import UnitOverlay
from pixel_evidence.dissection.table import (DETECTOR_IOU, FIRING_RULE, QUANTILE, TABLE, recorded_provenance, table_csv,
                                             unit_path)
from pixel_evidence.dissection.units import Dissection, dissect, firing_pixels, stage_activations, stage_names
from pixel_evidence.engine.catalogue import ImageCatalogue
from pixel_evidence.engine.map_store import MapStore
from pixel_evidence.engine.model_pool import ModelPool
from pixel_evidence.files import atomic_write_text, remove_stale_temp_files


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


def dissect_seeds(dissector: Dissector, out: Path, *, seeds: Sequence[int], stages: Sequence[str], split: str,
                  force: bool = False, batch_size: int = 16, union: str = "all",
                  report: Callable[[str], None] = lambda _m: None) -> pd.DataFrame:
    """Dissect ``stages`` of each seed over ``split`` into ``out``; returns the whole table.

    Stage names are checked against every seed's network before anything runs. A (seed,
    stage) already in ``out`` for the seed's current weights, the same firing rule and the
    same ``union`` is kept unless ``force``. Units whose threshold is their own maximum (all
    their top positions tied, as at ReLU6's ceiling) are reported per stage.
    """
    out = Path(out)
    remove_stale_temp_files(out, out / "per_seed")  # what killed runs left
    for seed in seeds:
        offered = dissector.stages(seed)
        for stage in stages:
            if stage not in offered:
                raise ValueError(f"--stage {stage!r} is not a stage of seed {seed}'s network; "
                                 f"choose one of {', '.join(offered)}")
    for seed in seeds:
        weights = dissector.pool.metadata(seed)["weights_sha256"]
        for stage in stages:
            path = unit_path(out, seed, split, stage)
            sidecar = path.with_suffix(".json")
            provenance = {"seed": seed, "split": split, "stage": stage, "weights_sha256": weights,
                          "quantile": QUANTILE, "detector_iou": DETECTOR_IOU, "firing": FIRING_RULE, "union": union}
            if not force and path.is_file() and recorded_provenance(sidecar) == provenance:
                report(f"seed {seed} {stage}: kept ({path})")
                continue
            result = dissector.run(seed, stage, split, batch_size=batch_size, union=union)
            atomic_write_text(path, table_csv(result.frame(seed, split)))
            atomic_write_text(sidecar, json.dumps(provenance, indent=1))
            n = int(result.detectors.any(axis=1).sum())
            report(f"seed {seed} {stage}: {len(result.thresholds)} units, {n} detect a defect class")
            saturated = int(result.at_max.sum())
            if saturated:
                report(f"warning: seed {seed} {stage}: {saturated} of {len(result.thresholds)} units have their "
                       f"threshold at their largest activation (tied on more than {1 - QUANTILE:.1%} of positions, "
                       "as at a clamp's ceiling); they fire on a share of the tied pixels")
    table = pd.concat([pd.read_csv(p) for p in sorted((out / "per_seed").glob("seed_*.csv"))], ignore_index=True)
    table = table.sort_values(["split", "stage", "seed", "unit", "class"], kind="stable").reset_index(drop=True)
    atomic_write_text(out / TABLE, table_csv(table))
    return table

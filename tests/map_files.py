"""Maps written as files, as another tool would: what the imported-maps tests (engine and
browser) read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def evaluate_order(engine, split="test"):
    """The split's ids in the batches ``evaluate`` explains them: defect images first, then the
    good ones (their maps only exported, not scored). Same batches, same floating-point sums,
    so the exported maps are bit for bit the ones evaluate scores."""
    ids = engine.catalogue.image_ids(split)
    masked = {i for i in ids if engine.catalogue.sample(i).has_mask}
    return [i for i in ids if i in masked] + [i for i in ids if i not in masked]


def export_maps(engine, folder: Path, method: str, *, seeds=None, per_seed=True, source="gradcam"):
    """Write ``source``'s maps of every test image as ``folder/method[/seed_<n>]/<id>.npy``."""
    for seed in seeds or engine.pool.seeds:
        ids = evaluate_order(engine)
        defects = sum(engine.catalogue.sample(i).has_mask for i in ids)
        for group in (ids[:defects], ids[defects:]):
            for ex in engine.explain_many(seed, group, [source]):
                out = folder / method / (f"seed_{seed}" if per_seed else "") / f"{ex.image_id}.npy"
                out.parent.mkdir(parents=True, exist_ok=True)
                np.save(out, ex.methods[source].map)
    return folder

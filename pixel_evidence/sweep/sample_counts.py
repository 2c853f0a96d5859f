"""When does a stochastic method's map stop moving? Its convergence curve over sample counts.

A stochastic method averages ``random_samples`` random draws (RISE's masks, LIME's samples,
SmoothGrad's noise copies; see :mod:`pixel_evidence.methods`). For each count, every image
is explained twice, with the method's ``seed`` 0 and 1; the two maps differ only by the
method's own dice. Their Pearson correlation and the |difference| of their TKO measure
that noise at that count. :func:`.draw_noise.count_curve` turns the rows into the
curve and says from which count the map is stable.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from pixel_evidence.engine.explain import ExplanationEngine
from pixel_evidence.methods import method
from pixel_evidence.metrics.draw_noise import map_pearson

COUNT_COLUMNS = ["method", "count", "image_id", "pearson", "tko_0", "tko_1", "tko_change", "seconds_per_map"]


def count_rows(data: Path, models: Path, seed: int, image_ids: Sequence[str], method_key: str,
               counts: Sequence[int], *, manifest: Path | None = None, device: str = "cpu",
               progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per (count, image): the two draws' TKO, their change and their maps' Pearson.

    Columns :data:`COUNT_COLUMNS`; ``seconds_per_map`` is the wall time of both draws'
    maps over the images, per map.
    """
    count_param = method(method_key).random_samples
    if count_param is None:
        raise ValueError(f"{method_key} is deterministic: it has no sample count to converge")
    rows = []
    for count in counts:
        draws, seconds = [], 0.0
        for draw in (0, 1):
            engine = ExplanationEngine(data, models, manifest=manifest, device=device, cache_mb=0,
                                       method_params={method_key: {count_param: int(count), "seed": draw}})
            started = time.perf_counter()
            draws.append({ex.image_id: ex.methods[method_key]
                          for ex in engine.explain_many(seed, list(image_ids), [method_key])})
            seconds += time.perf_counter() - started
            engine.close()
        for image_id in image_ids:
            first, second = draws[0][image_id], draws[1][image_id]
            rows.append({"method": method_key, "count": int(count), "image_id": image_id,
                         "pearson": map_pearson(first.map, second.map), "tko_0": first.tko, "tko_1": second.tko,
                         "tko_change": abs(first.tko - second.tko),
                         "seconds_per_map": seconds / (2 * len(image_ids))})
        if progress:
            progress(f"{method_key} {count_param}={count}: done")
    return pd.DataFrame(rows, columns=COUNT_COLUMNS)

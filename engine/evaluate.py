"""Evaluate every seed x split x method and write result tables.

Outputs in ``out_dir``:
- ``per_seed/seed_<n>_<split>.csv``: tidy rows of one seed and split (the resumable unit) + a ``.json`` sidecar
  saying which weights and method settings produced it;
- ``tko_table.csv``: all seeds, one row per (seed, image id, method);
- ``win_rates.csv``: win rate per seed, split, class (and "overall"), method;
- ``summary.json``: win rates across seeds (mean, std, bootstrap 95% interval) and the
  classification scores of each seed.
"""

from __future__ import annotations

import io
import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import metrics
from .data import atomic_write_text
from .explain import ExplanationEngine
from .explainers import DEFAULT_METHODS
from .train import balanced_accuracy

log = logging.getLogger("pixel_evidence.evaluate")

TABLE_COLUMNS = ["seed", "split", "image_id", "class", "predicted", "correct", "target", "method",
                 "k", "n", "tko", "chance", "lift", "iou", "rank", "win_share", "ig_relative_delta"]


def _csv_text(df: pd.DataFrame) -> str:
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


EXTRA_METRICS = {"pointing": metrics.pointing_game, "relevance_mass": metrics.relevance_mass,
                 "auroc": metrics.auroc}


def seed_rows(engine: ExplanationEngine, seed: int, splits: Sequence[str], methods: Sequence[str],
              target: str = "predicted", batch_size: int = 8, progress: bool = True,
              extra_metrics: Sequence[str] = (), maps_for_good: bool = False) -> pd.DataFrame:
    """One row per (image, method) of ``seed`` over ``splits``.

    Images without a mask (``good``) cannot be ranked, so by default only their prediction
    is computed and their scores are NaN; ``maps_for_good`` computes their maps anyway.
    """
    unknown = sorted(set(extra_metrics) - set(EXTRA_METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {sorted(EXTRA_METRICS)}")
    rows: list[dict[str, Any]] = []
    nan = math.nan
    for split in splits:
        ids = engine.image_ids(split)
        mapped = [i for i in ids if maps_for_good or engine.sample(i).has_mask]
        unmapped = [i for i in ids if i not in set(mapped)]
        with tqdm(total=len(ids), desc=f"seed {seed} {split}", unit="img", disable=not progress, leave=False) as bar:
            for group, group_methods in ((mapped, methods), (unmapped, ())):
                for ex in engine.explain_many(seed, group, group_methods, target, batch_size=batch_size,
                                              progress=bar.update):
                    head = {"seed": seed, "split": split, "image_id": ex.image_id, "class": ex.true_class,
                            "predicted": ex.predicted_class, "correct": ex.correct, "target": ex.target_class,
                            "k": ex.k, "n": ex.n}
                    for m in methods:
                        r = ex.methods.get(m)
                        row = {**head, "method": m, "tko": nan, "chance": nan, "lift": nan, "iou": nan,
                               "rank": nan, "win_share": nan, "ig_relative_delta": nan}
                        if r is not None:
                            row.update(tko=r.tko, chance=r.chance, lift=r.lift, iou=r.iou, rank=r.rank,
                                       win_share=r.win_share,
                                       ig_relative_delta=r.extras.get("relative_delta", nan))
                        for name in extra_metrics:
                            row[name] = EXTRA_METRICS[name](r.map, ex.mask) if r is not None else nan
                        rows.append(row)
    return pd.DataFrame(rows, columns=TABLE_COLUMNS + list(extra_metrics))


def _provenance(engine: ExplanationEngine, seed: int, splits, methods, target, extra_metrics,
                maps_for_good) -> dict[str, Any]:
    return {"weights_sha256": engine.meta[seed]["weights_sha256"], "manifest_sha256": engine.manifest_sha256,
            "splits": list(splits), "target": target, "metrics": list(extra_metrics),
            "maps_for_good": maps_for_good,
            "methods": {m: engine.params_of(m) for m in methods}}


def classification_scores(table: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """Balanced accuracy per seed and split, from the table's per-image predictions."""
    per_image = table.drop_duplicates(["seed", "split", "image_id"])
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for (seed, split), g in per_image.groupby(["seed", "split"], sort=True):
        y = g["class"].map(index).to_numpy()
        p = g["predicted"].map(index).to_numpy()
        out.append({"seed": seed, "split": split, "balanced_accuracy": balanced_accuracy(y, p, len(classes)),
                    "accuracy": float(np.mean(y == p)), "n_images": len(g)})
    return pd.DataFrame(out)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return _json_safe(value.item())
    return value


def _write_tables(engine: ExplanationEngine, out_dir: Path, frames: list[pd.DataFrame], methods: Sequence[str],
                  target: str, include_misclassified: bool, extra_metrics: Sequence[str]) -> dict[str, Any]:
    table = pd.concat(frames, ignore_index=True)
    rates = metrics.win_rates(table, include_misclassified=include_misclassified)
    across = metrics.summarize_over_seeds(rates)
    clf = classification_scores(table, engine.classes)
    units = table[["seed", "split"]].drop_duplicates().sort_values(["split", "seed"])
    summary = {
        "seeds": sorted(int(s) for s in table["seed"].unique()), "splits": sorted(table["split"].unique()),
        "evaluated": [{"seed": int(r.seed), "split": r.split} for r in units.itertuples()],
        "methods": list(methods), "target": target,
        "counted_images": "all defect images" if include_misclassified else "correctly classified defect images",
        "win_rates_across_seeds": across.to_dict(orient="records"),
        "win_rates_per_seed": rates.to_dict(orient="records"),
        "classification": clf.to_dict(orient="records"),
        "mean_scores": table.groupby(["split", "method"])[["tko", "chance", "lift", "iou", *extra_metrics]]
        .mean().reset_index().to_dict(orient="records"),
    }
    atomic_write_text(out_dir / "tko_table.csv", _csv_text(table))
    atomic_write_text(out_dir / "win_rates.csv", _csv_text(rates))
    atomic_write_text(out_dir / "summary.json", json.dumps(_json_safe(summary), indent=1) + "\n")
    return summary


def evaluate(engine: ExplanationEngine, out_dir: Path, *, seeds: Sequence[int] | None = None,
             splits: Sequence[str] = ("test", "train"), methods: Sequence[str] = DEFAULT_METHODS,
             target: str = "predicted", include_misclassified: bool = False, force: bool = False,
             batch_size: int = 8, progress: bool = True, extra_metrics: Sequence[str] = (),
             maps_for_good: bool = False) -> dict[str, Any]:
    """Run (or resume) the evaluation and write the tables; return the summary dict.

    The resumable unit is one (split, seed): ``per_seed/seed_<n>_<split>.csv``. Splits run
    in the order given (test first by default), every seed within a split, and the summary
    tables are rewritten after each unit, so an interrupted run still leaves usable tables.
    """
    out_dir = Path(out_dir)
    seeds = list(seeds) if seeds is not None else engine.seeds
    methods = list(methods)
    frames = []
    summary: dict[str, Any] = {}
    units = [(split, seed) for split in splits for seed in seeds]
    for split, seed in tqdm(units, desc="seed x split", unit="unit", disable=not progress):
        csv_path = out_dir / "per_seed" / f"seed_{seed}_{split}.csv"
        side = csv_path.with_suffix(".json")
        prov = _provenance(engine, seed, [split], methods, target, extra_metrics, maps_for_good)
        if not force and csv_path.is_file() and side.is_file():
            try:
                if json.loads(side.read_text()) == prov:
                    frames.append(pd.read_csv(csv_path))
                    log.info("seed %d %s already evaluated; skipping (use --force to redo)", seed, split)
                    continue
            except (json.JSONDecodeError, pd.errors.ParserError):
                log.warning("%s is unreadable; recomputing it", csv_path)
        df = seed_rows(engine, seed, [split], methods, target, batch_size, progress, extra_metrics, maps_for_good)
        atomic_write_text(csv_path, _csv_text(df))
        atomic_write_text(side, json.dumps(prov, indent=1, sort_keys=True) + "\n")
        frames.append(df)
        summary = _write_tables(engine, out_dir, frames, methods, target, include_misclassified, extra_metrics)
    if frames and not summary:
        summary = _write_tables(engine, out_dir, frames, methods, target, include_misclassified, extra_metrics)
    return summary

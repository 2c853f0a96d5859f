"""Evaluate every seed x split x method and write result tables.

Outputs in ``out_dir``:
- ``per_seed/seed_<n>.csv``: tidy rows for one seed (resumable unit) + a ``.json`` sidecar
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


def seed_rows(engine: ExplanationEngine, seed: int, splits: Sequence[str], methods: Sequence[str],
              target: str = "predicted", batch_size: int = 8, progress: bool = True) -> pd.DataFrame:
    """One row per (image, method) of ``seed`` over ``splits``."""
    rows: list[dict[str, Any]] = []
    for split in splits:
        ids = engine.image_ids(split)
        with tqdm(total=len(ids), desc=f"seed {seed} {split}", unit="img", disable=not progress, leave=False) as bar:
            for ex in engine.explain_many(seed, ids, methods, target, batch_size=batch_size, progress=bar.update):
                for m, r in ex.methods.items():
                    rows.append({
                        "seed": seed, "split": split, "image_id": ex.image_id, "class": ex.true_class,
                        "predicted": ex.predicted_class, "correct": ex.correct, "target": ex.target_class,
                        "method": m, "k": ex.k, "n": ex.n, "tko": r.tko, "chance": r.chance, "lift": r.lift,
                        "iou": r.iou, "rank": r.rank, "win_share": r.win_share,
                        "ig_relative_delta": r.extras.get("relative_delta", math.nan)})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _provenance(engine: ExplanationEngine, seed: int, splits, methods, target) -> dict[str, Any]:
    return {"weights_sha256": engine.meta[seed]["weights_sha256"], "manifest_sha256": engine.manifest_sha256,
            "splits": list(splits), "target": target,
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


def evaluate(engine: ExplanationEngine, out_dir: Path, *, seeds: Sequence[int] | None = None,
             splits: Sequence[str] = ("train", "test"), methods: Sequence[str] = DEFAULT_METHODS,
             target: str = "predicted", include_misclassified: bool = False, force: bool = False,
             batch_size: int = 8, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the evaluation and write the tables; return the summary dict."""
    out_dir = Path(out_dir)
    seeds = list(seeds) if seeds is not None else engine.seeds
    methods = list(methods)
    frames = []
    for seed in tqdm(seeds, desc="seeds", unit="seed", disable=not progress):
        csv_path = out_dir / "per_seed" / f"seed_{seed}.csv"
        side = csv_path.with_suffix(".json")
        prov = _provenance(engine, seed, splits, methods, target)
        if not force and csv_path.is_file() and side.is_file():
            try:
                if json.loads(side.read_text()) == prov:
                    frames.append(pd.read_csv(csv_path))
                    log.info("seed %d already evaluated; skipping (use --force to redo)", seed)
                    continue
            except (json.JSONDecodeError, pd.errors.ParserError):
                log.warning("%s is unreadable; recomputing it", csv_path)
        df = seed_rows(engine, seed, splits, methods, target, batch_size, progress)
        atomic_write_text(csv_path, _csv_text(df))
        atomic_write_text(side, json.dumps(prov, indent=1, sort_keys=True) + "\n")
        frames.append(df)

    table = pd.concat(frames, ignore_index=True)
    rates = metrics.win_rates(table, include_misclassified=include_misclassified)
    across = metrics.summarize_over_seeds(rates)
    clf = classification_scores(table, engine.classes)
    summary = {
        "seeds": seeds, "splits": list(splits), "methods": methods, "target": target,
        "counted_images": "all defect images" if include_misclassified else "correctly classified defect images",
        "win_rates_across_seeds": across.to_dict(orient="records"),
        "win_rates_per_seed": rates.to_dict(orient="records"),
        "classification": clf.to_dict(orient="records"),
        "mean_tko": table.groupby(["split", "method"])["tko"].mean().reset_index().to_dict(orient="records"),
    }
    atomic_write_text(out_dir / "tko_table.csv", _csv_text(table))
    atomic_write_text(out_dir / "win_rates.csv", _csv_text(rates))
    atomic_write_text(out_dir / "summary.json", json.dumps(_json_safe(summary), indent=1) + "\n")
    return summary

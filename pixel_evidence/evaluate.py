"""Evaluate every seed x split x method and write result tables.

Outputs in ``out_dir``:
- ``per_seed/seed_<n>_<split>.csv``: tidy rows of one seed and split (the resumable unit) + a ``.json`` sidecar
  saying which weights and method settings produced it;
- ``tko_table.csv``: all seeds, one row per (seed, image id, method);
- ``win_rates.csv``: win rate per seed, split, class (and "overall"), method;
- ``summary.json``: win rates across seeds (mean, std, bootstrap 95% interval) and the
  classification scores of each seed;
- ``significance/{friedman,pairwise,critical_difference}.csv``: which differences between the
  methods are significant, per score, split and seed and pooled over seeds
  (:mod:`pixel_evidence.significance_tables`), written when the run ends.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pixel_evidence import metrics
from pixel_evidence.analyses import AGREEMENT, ANALYSES, SANITY, AnalysisSettings
from pixel_evidence.choices import METRICS
from pixel_evidence.engine.explain import ExplanationEngine
from pixel_evidence.files import atomic_write_csv, atomic_write_text, remove_stale_temp_files
from pixel_evidence.methods import DEFAULT_METHODS
from pixel_evidence.metrics.scores import EXTRA_SCORES
from pixel_evidence.models import CheckpointError
from pixel_evidence.results import (SUMMARY_FILE, TABLE_COLUMNS, TABLE_FILE, WIN_RATES_FILE, ig_columns,
                                    localisation_win_rates)
from pixel_evidence.significance_tables import (remove_significance, results_significance_dir, significance_tables,
                                                write_significance)

log = logging.getLogger("pixel_evidence.evaluate")



# Columns of the main table that compare a map with the defect mask: NaN on data without
# masks, and said so in summary.json, so an empty column is not read as a score of 0.
MASK_COLUMNS = ("tko", "chance", "lift", "iou", "rank", "win_share", *EXTRA_SCORES)
NEEDS_MASKS = "needs masks: the data has no defect masks, so this column is empty (NaN), not a score of 0"

def split_metrics(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``--metrics`` words -> (localisation columns of the main table, analyses)."""
    unknown = sorted(set(names) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    return [n for n in EXTRA_SCORES if n in names], [n for n in ANALYSES if n in names]


def _main_row(ex, m: str, extra_metrics: Sequence[str]) -> dict[str, Any]:
    nan = math.nan
    r = ex.methods.get(m)
    row = {"seed": ex.seed, "split": ex.split, "image_id": ex.image_id, "class": ex.true_class,
           "predicted": ex.predicted_class, "correct": ex.correct, "target": ex.target_class, "k": ex.k, "n": ex.n,
           "method": m, "tko": nan, "chance": nan, "lift": nan, "iou": nan, "rank": nan, "win_share": nan,
           **ig_columns(r.extras if r is not None else None)}
    if r is not None:
        row.update(chance=r.chance, lift=r.lift, iou=r.iou, rank=r.rank, win_share=r.win_share)
    for name in ("tko", *extra_metrics):
        row[name] = r.scores[name] if r is not None else nan
    return row


def _spread(ids: Sequence[str], n: int) -> set[str]:
    """``n`` ids evenly spread over ``ids`` (all of them if there are fewer)."""
    if n >= len(ids):
        return set(ids)
    return {ids[round(i * (len(ids) - 1) / max(1, n - 1))] for i in range(n)} if n > 0 else set()


def unit_rows(engine: ExplanationEngine, seed: int, split: str, methods: Sequence[str], *, main: bool = True,
              analyses: Sequence[str] = (), target: str = "predicted", batch_size: int = 8, progress: bool = True,
              extra_metrics: Sequence[str] = (), maps_for_good: bool = False,
              settings: AnalysisSettings = AnalysisSettings(),
              image_ids: Sequence[str] | None = None) -> tuple[pd.DataFrame | None, dict[str, pd.DataFrame]]:
    """The main table (one row per image and method) and each analysis table of one (seed, split),
    or of the images ``image_ids`` of it (a sweep's chunk).

    Images without a mask (``good``) cannot be ranked, so by default only their prediction
    is computed and their scores are NaN; ``maps_for_good`` computes their maps anyway.
    Data without any masks gets the maps of every image (its mask scores are all NaN).
    Analyses run on the images that have maps; sanity on ``settings.sanity_images`` of them.
    """
    split_metrics([*extra_metrics, *analyses])
    ids = engine.catalogue.image_ids(split) if image_ids is None else list(image_ids)
    every_map = maps_for_good or not engine.catalogue.has_masks
    mapped = [i for i in ids if every_map or engine.catalogue.sample(i).has_mask]
    with_maps = set(mapped)
    unmapped = [i for i in ids if i not in with_maps] if main else []
    sanity_ids = _spread(mapped, settings.sanity_images) if SANITY.name in analyses else set()
    if not main and set(analyses) <= {SANITY.name}:  # nothing else to do: explain only the checked images
        mapped = [i for i in mapped if i in sanity_ids]
    rows: list[dict[str, Any]] = []
    extra: dict[str, list[dict[str, Any]]] = {a: [] for a in analyses}
    with tqdm(total=len(mapped) + len(unmapped), desc=f"seed {seed} {split}", unit="img", disable=not progress,
              leave=False) as bar:
        for group, group_methods in ((mapped, methods), (unmapped, ())):
            for ex in engine.explain_many(seed, group, group_methods, target, batch_size=batch_size,
                                          progress=bar.update, scores=extra_metrics):
                if main:
                    rows += [_main_row(ex, m, extra_metrics) for m in methods]
                if group_methods:
                    for a in analyses:
                        if a != SANITY.name or ex.image_id in sanity_ids:
                            extra[a] += ANALYSES[a].rows(engine, ex, settings)
    table = pd.DataFrame(rows, columns=[*TABLE_COLUMNS, *extra_metrics]) if main else None
    return table, {a: pd.DataFrame(extra[a], columns=list(ANALYSES[a].columns)) for a in analyses}


def _provenance(engine: ExplanationEngine, seed: int, splits, methods, target, extra_metrics,
                maps_for_good, left_out: Sequence[str] = ()) -> dict[str, Any]:
    """What a unit's tables depend on; ``left_out``: the ids of its images that could not be
    read (recorded only when there are some, so the unit is recomputed once they are fixed)."""
    return {**({"left_out": sorted(left_out)} if left_out else {}),
            "weights_sha256": engine.pool.meta[seed]["weights_sha256"],
            "manifest_sha256": engine.catalogue.manifest_sha256,
            "splits": list(splits), "target": target, "metrics": list(extra_metrics),
            "maps_for_good": maps_for_good,
            "methods": {m: engine.params_of(m) for m in methods},
            # the Grad-CAM layer, when the metadata names one (older metadata: the default layer)
            **({"cam_layer": engine.pool.meta[seed]["cam_layer"]} if "cam_layer" in engine.pool.meta[seed] else {})}


def _satisfies(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """A finished unit can be reused when everything matches and it has at least the wanted metrics."""
    if {k: v for k, v in stored.items() if k != "metrics"} != {k: v for k, v in wanted.items() if k != "metrics"}:
        return False
    return set(wanted.get("metrics", [])) <= set(stored.get("metrics", []))


def classification_scores(table: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """Balanced accuracy per seed and split, from the table's per-image predictions."""
    per_image = table.drop_duplicates(["seed", "split", "image_id"])
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for (seed, split), g in per_image.groupby(["seed", "split"], sort=True):
        y = g["class"].map(index).to_numpy()
        p = g["predicted"].map(index).to_numpy()
        out.append({"seed": seed, "split": split, "balanced_accuracy": metrics.balanced_accuracy(y, p, len(classes)),
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
                  target: str, include_misclassified: bool, extra_metrics: Sequence[str],
                  analysis_frames: dict[str, list[pd.DataFrame]], *, significance: bool = True) -> dict[str, Any]:
    """Write the folder's tables from the units' rows; return the summary (plus this run's
    ``significance_notes``). Without ``significance`` the significance tables are removed
    instead of rewritten (a run between units: they cost seconds, and old ones would
    describe other rows)."""
    table = pd.concat(frames, ignore_index=True)
    rates = metrics.win_rates(table, include_misclassified=include_misclassified)
    across = metrics.summarize_over_seeds(rates)
    clf = classification_scores(table, engine.catalogue.classes)
    units = table[["seed", "split"]].drop_duplicates().sort_values(["split", "seed"])
    scores = [c for c in EXTRA_SCORES if c in table.columns]
    summary = {
        "seeds": sorted(int(s) for s in table["seed"].unique()), "splits": sorted(table["split"].unique()),
        "evaluated": [{"seed": int(r.seed), "split": r.split} for r in units.itertuples()],
        "methods": list(methods), "target": target,
        "counted_images": "all defect images" if include_misclassified else "correctly classified defect images",
        "win_rates_across_seeds": across.to_dict(orient="records"),
        "win_rates_per_seed": rates.to_dict(orient="records"),
        "classification": clf.to_dict(orient="records"),
        "mean_scores": table.groupby(["split", "method"])[["tko", "chance", "lift", "iou", *scores]]
        .mean().reset_index().to_dict(orient="records"),
        # who wins when another localisation score decides (overall, across seeds)
        "win_rates_by_score": {
            score: [r for r in metrics.summarize_over_seeds(localisation_win_rates(
                table, score, include_misclassified=include_misclassified)).to_dict(orient="records")
                if r["class"] == metrics.OVERALL] for score in scores},
    }
    imported = [m for m in methods if m in engine.imported.methods]
    if imported:  # maps made elsewhere: ranked like the others, but not computed (no cost, no settings)
        summary["imported_methods"] = imported
    if engine.catalogue.has_masks:  # defect images with K = 0: bad masks, not defect-free images
        summary["empty_masks"] = engine.catalogue.empty_masks(table.loc[table["k"] == 0, "image_id"])
    else:
        summary["column_notes"] = {TABLE_FILE: {c: NEEDS_MASKS for c in MASK_COLUMNS if c in table.columns},
                                   WIN_RATES_FILE: {"win_rate": NEEDS_MASKS}}
    for name, parts in analysis_frames.items():
        if parts:
            df = pd.concat(parts, ignore_index=True)
            atomic_write_csv(out_dir / ANALYSES[name].file, df)
            summary[name] = ANALYSES[name].summary(df).to_dict(orient="records")
        else:  # none made with the current settings: an older table would describe other settings
            (out_dir / ANALYSES[name].file).unlink(missing_ok=True)
    atomic_write_csv(out_dir / TABLE_FILE, table)
    atomic_write_csv(out_dir / WIN_RATES_FILE, rates)
    atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(_json_safe(summary), indent=1) + "\n")
    notes: tuple[str, ...] = ()
    if significance:
        tests = significance_tables(table, methods=list(methods), include_misclassified=include_misclassified)
        write_significance(results_significance_dir(out_dir), tests)
        notes = tests.notes
    else:
        remove_significance(results_significance_dir(out_dir))
    return {**summary, "significance_notes": list(notes)}


def _load_unit(csv_path: Path, prov: dict[str, Any], exact: bool) -> pd.DataFrame | None:
    """A finished unit's table when its sidecar matches ``prov``, else None."""
    side = csv_path.with_suffix(".json")
    if not (csv_path.is_file() and side.is_file()):
        return None
    try:
        stored = json.loads(side.read_text())
        if stored == prov if exact else _satisfies(stored, prov):
            return pd.read_csv(csv_path)
    except (json.JSONDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError):
        log.warning("%s is unreadable; recomputing it", csv_path)
    return None


def _save_unit(csv_path: Path, df: pd.DataFrame, prov: dict[str, Any]) -> None:
    atomic_write_csv(csv_path, df)
    atomic_write_text(csv_path.with_suffix(".json"), json.dumps(prov, indent=1, sort_keys=True) + "\n")


def _side_provenance(prov: dict[str, Any], analysis: str, settings: AnalysisSettings) -> dict[str, Any]:
    """Provenance of an analysis file: the unit's weights, methods and target, plus its settings."""
    return {**{k: v for k, v in prov.items() if k not in ("metrics", "maps_for_good")},
            "analysis": analysis, "settings": settings.of(analysis)}


UNIT_SIDECAR = re.compile(r"seed_(-?\d+)_(test|train)\.json")


def _left_out(engine: ExplanationEngine, split: str, unreadable: Mapping[str, str]) -> list[str]:
    return [i for i in engine.catalogue.image_ids(split) if i in unreadable]


def _finished_units(engine: ExplanationEngine, out_dir: Path, methods: Sequence[str], target: str,
                    scores: Sequence[str], maps_for_good: bool, settings: AnalysisSettings,
                    unreadable: Mapping[str, str]) -> tuple[list[pd.DataFrame], dict[str, list[pd.DataFrame]]]:
    """Every finished unit in ``per_seed/`` made with these methods, target and settings and the
    current weights (main tables, and the analysis tables that exist), test split first."""
    found = []
    for side in (out_dir / "per_seed").glob("seed_*_*.json"):
        match = UNIT_SIDECAR.fullmatch(side.name)
        if match and int(match.group(1)) in engine.pool.meta:
            found.append((match.group(2), int(match.group(1))))
    frames: list[pd.DataFrame] = []
    analysis_frames: dict[str, list[pd.DataFrame]] = {a: [] for a in ANALYSES}
    for split, seed in sorted(found, key=lambda unit: (unit[0] != "test", unit[1])):
        stem = out_dir / "per_seed" / f"seed_{seed}_{split}"
        prov = _provenance(engine, seed, [split], methods, target, scores, maps_for_good,
                           _left_out(engine, split, unreadable))
        main = _load_unit(stem.with_suffix(".csv"), prov, exact=False)
        if main is None:
            continue
        frames.append(main)
        for a in ANALYSES:
            df = _load_unit(stem.with_suffix(f".{a}.csv"), _side_provenance(prov, a, settings), exact=True)
            if df is not None:
                analysis_frames[a].append(df)
    return frames, analysis_frames


def evaluate(engine: ExplanationEngine, out_dir: Path, *, seeds: Sequence[int] | None = None,
             splits: Sequence[str] = ("test", "train"), methods: Sequence[str] = DEFAULT_METHODS,
             target: str = "predicted", include_misclassified: bool = False, force: bool = False,
             batch_size: int = 8, progress: bool = True, extra_metrics: Sequence[str] = (),
             maps_for_good: bool = False, settings: AnalysisSettings = AnalysisSettings()) -> dict[str, Any]:
    """Run (or resume) the evaluation and write the tables; return the summary dict.

    ``extra_metrics`` may name localisation scores (columns of the main table) and analyses
    (``agreement``, ``faithfulness``, ``sanity``: tables of their own). The resumable unit
    is one (split, seed): ``per_seed/seed_<n>_<split>.csv`` and, per analysis,
    ``per_seed/seed_<n>_<split>.<analysis>.csv``, each with a ``.json`` sidecar of the
    weights and settings behind it; a unit whose sidecar matches is reused. Splits run in
    the order given (test first by default), every seed within a split.

    The tables in ``out_dir`` cover every finished unit made with the same methods, target
    and settings and the current weights, also units of seeds or splits not asked for in
    this run (so analyses can be added for a few seeds without dropping the rest). They are
    rewritten after each computed unit, so an interrupted run still leaves usable tables; the
    significance tables are written once, when the run ends (until then they are removed:
    ``pixel-evidence significance`` makes them from an interrupted run's tables).

    One bad input never stops the rest: a seed whose model cannot be used (left out by the
    engine, or failing when loaded) is skipped, and so is an image whose image or mask is
    missing or unusable (each mask of the splits is decoded, each image opened, once, first).
    The returned summary's ``skipped`` lists them, one line each (this run's, not written to
    ``summary.json``); ``empty_masks`` names defect images whose mask has no defect pixels.
    Temp files that killed runs left in ``out_dir`` are removed first.
    """
    out_dir = Path(out_dir)
    remove_stale_temp_files(out_dir, out_dir / "per_seed")
    seeds = list(seeds) if seeds is not None else sorted({*engine.pool.seeds, *engine.pool.left_out})
    skipped = {s: engine.pool.left_out.get(s, f"no model for seed {s} in {engine.pool.models_dir}")
               for s in seeds if s not in engine.pool.meta}
    methods = list(methods)
    scores, analyses = split_metrics(extra_metrics)
    if AGREEMENT.name in analyses and len(methods) < 2:
        raise ValueError("agreement compares methods: give at least two with --methods")

    unreadable = engine.catalogue.unreadable(i for split in splits for i in engine.catalogue.image_ids(split))
    for line in unreadable.values():
        log.warning("skipped image: %s", line)

    def write_tables(*, significance: bool) -> dict[str, Any]:
        frames, analysis_frames = _finished_units(engine, out_dir, methods, target, scores, maps_for_good, settings,
                                                  unreadable)
        return _write_tables(engine, out_dir, frames, methods, target, include_misclassified, scores,
                             analysis_frames, significance=significance) if frames else {}

    units = [(split, seed) for split in splits for seed in seeds]
    for split, seed in tqdm(units, desc="seed x split", unit="unit", disable=not progress):
        if seed in skipped:
            continue
        stem = out_dir / "per_seed" / f"seed_{seed}_{split}"
        left_out = _left_out(engine, split, unreadable)
        prov = _provenance(engine, seed, [split], methods, target, scores, maps_for_good, left_out)
        done_main = not force and _load_unit(stem.with_suffix(".csv"), prov, exact=False) is not None
        todo = [a for a in analyses if force or _load_unit(stem.with_suffix(f".{a}.csv"),
                                                           _side_provenance(prov, a, settings), exact=True) is None]
        if done_main and not todo:
            log.info("seed %d %s already evaluated; skipping (use --force to redo)", seed, split)
            continue
        try:
            table, extra = unit_rows(engine, seed, split, methods, main=not done_main, analyses=todo, target=target,
                                     batch_size=batch_size, progress=progress, extra_metrics=scores,
                                     maps_for_good=maps_for_good, settings=settings,
                                     image_ids=[i for i in engine.catalogue.image_ids(split) if i not in unreadable])
        except CheckpointError as err:  # e.g. weights that do not fit the network, found when it is built
            skipped[seed] = str(err)
            log.warning("skipped seed %d: %s", seed, err)
            continue
        if not done_main:
            _save_unit(stem.with_suffix(".csv"), table, prov)
        for a in todo:
            _save_unit(stem.with_suffix(f".{a}.csv"), extra[a], _side_provenance(prov, a, settings))
        write_tables(significance=False)
    return {**write_tables(significance=True),
            "skipped": [*(f"seed {s}: {why}" for s, why in sorted(skipped.items())), *unreadable.values()]}


def export_from_store(engine: ExplanationEngine, store: Path, category: str, out_dir: Path, *,
                      target: str = "predicted", include_misclassified: bool = False) -> dict[str, Any]:
    """Write the usual tables (tko_table.csv, win_rates.csv, summary.json, the significance
    tables) of one category of a sweep's Parquet store, so a sweep's results read like a
    single run's; return the summary."""
    from pixel_evidence.results import read_store

    tables = read_store(store)
    if category not in tables.categories:
        raise ValueError(f"{store}: no rows of category {category!r} (found: {', '.join(tables.categories) or 'none'});"
                         " give --category")
    rows = tables.category(category)
    scores = [c for c in EXTRA_SCORES if c in rows.columns and rows[c].notna().any()]
    table = rows[[*TABLE_COLUMNS, *scores]]
    methods = [m for m in engine.method_labels() if m in set(table["method"])]
    return _write_tables(engine, Path(out_dir), [table], methods, target, include_misclassified, scores, {})

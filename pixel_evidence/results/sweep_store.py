"""The sweep's Parquet store: its layout, and reading it back as the evaluation's tables.

Layout under the store folder (written by ``pixel_evidence.sweep``)::

    rows/category=<name>/seed=<n>/split=<split>/method=<key>/<task key>.parquet
    failures/<task key>.parquet

Each row file holds one task's rows of one method: the main table's columns (``TABLE_COLUMNS``,
the partition columns left to the path) plus the provenance ``checkpoint_sha256``,
``settings_sha256`` and ``task_key``. Files are written whole and renamed into place, so a
reader sees finished tasks only; names starting with "." (temp files) are skipped by pyarrow.

A task ranks only the methods it computed; :func:`read_store` ranks every method present for
an image, so rank and win share mean the same as in ``evaluate``'s table. A store that a sweep
is still filling (or one stopped midway) has methods on some images only; ranking them there
would set images ranked among 14 methods beside images ranked among 5. The reader keeps only
rows where every method of the category is present (:func:`complete_rows`) and says what it held out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from pixel_evidence.metrics import rank_methods, summarize_over_seeds, win_rates, win_shares
from pixel_evidence.metrics.scores import EXTRA_SCORES
from pixel_evidence.results.reading import TABLE_COLUMNS, results_dir

ROWS_DIR, FAILURES_DIR = "rows", "failures"
SWEEP_SUBDIR = "sweep"  # the default store: <models>/results/sweep, where the dashboard looks
PARTITION_COLUMNS = ("category", "seed", "split", "method")
PARTITIONING = ds.partitioning(pa.schema([("category", pa.string()), ("seed", pa.int64()), ("split", pa.string()),
                                          ("method", pa.string())]), flavor="hive")
PROVENANCE_COLUMNS = ("checkpoint_sha256", "settings_sha256", "task_key")
KEY = ["category", "seed", "split", "image_id"]  # one image of one seed: what its methods are ranked within
_TYPES = {"image_id": pa.string(), "class": pa.string(), "predicted": pa.string(), "correct": pa.bool_(),
          "target": pa.string(), "k": pa.int64(), "n": pa.int64()}
FAILURE_SCHEMA = pa.schema([("category", pa.string()), ("seed", pa.int64()), ("split", pa.string()),
                            ("methods", pa.string()), ("image_id", pa.string()), ("error", pa.string()),
                            ("task_key", pa.string())])


def row_schema(extra_metrics: Sequence[str] = ()) -> pa.Schema:
    """The columns of a row file: the main table's without the partition ones, then provenance."""
    columns = [c for c in (*TABLE_COLUMNS, *extra_metrics) if c not in PARTITION_COLUMNS]
    return pa.schema([(c, _TYPES.get(c, pa.float64())) for c in columns] +
                     [(c, pa.string()) for c in PROVENANCE_COLUMNS])


def sweep_dir(models_dir: Path | str) -> Path:
    return results_dir(models_dir) / SWEEP_SUBDIR


def store_stamp(store: Path | str) -> tuple[int, int]:
    """(number of row and failure files, newest modification time): changes whenever a task lands."""
    files = [p for d in (ROWS_DIR, FAILURES_DIR) for p in (Path(store) / d).rglob("*.parquet")]
    return len(files), max((p.stat().st_mtime_ns for p in files), default=0)


def partition_dir(store: Path, category: str, seed: int, split: str, method: str) -> Path:
    return Path(store) / ROWS_DIR / f"category={category}" / f"seed={seed}" / f"split={split}" / f"method={method}"


@dataclass(frozen=True)
class StoreTables:
    """The store's rows as ``evaluate``'s tables, with a ``category`` column in front."""

    tko: pd.DataFrame          # one row per (category, seed, split, image, method)
    failures: pd.DataFrame     # one row per image a task could not read
    problems: tuple[str, ...]  # e.g. rows found twice (from runs with other chunk sizes)

    @property
    def categories(self) -> list[str]:
        return sorted(self.tko["category"].unique())

    @property
    def ig_refined(self) -> bool:
        """True when the store's IG was refined to a tolerance (its rows say whether it
        converged), False for the fixed rule or no IG."""
        ig = self.tko[self.tko["method"] == "ig"]
        return "ig_converged" in ig and bool(ig["ig_converged"].notna().any())

    def category(self, name: str) -> pd.DataFrame:
        """One category's rows in ``evaluate``'s columns (tko_table.csv)."""
        return self.tko[self.tko["category"] == name].drop(columns="category").reset_index(drop=True)


def _rerank(table: pd.DataFrame) -> pd.DataFrame:
    """Rank and win share among every method present for each image (tasks saw only their group)."""
    ranks, shares = [], []
    for _, g in table.groupby(KEY, sort=False):
        tkos = dict(zip(g.index, g["tko"]))
        ranks.append(pd.Series(rank_methods(tkos)))
        shares.append(pd.Series(win_shares(tkos)))
    out = table.copy()
    if ranks:
        out["rank"] = pd.concat(ranks)
        out["win_share"] = pd.concat(shares)
    return out


def complete_rows(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The rows of the (category, split)s' seeds that have every method of that category and
    split for every image, and a line per seed held out: seeds are held out whole (a method of a
    sweep still running is missing on its last seeds), unless no seed has every method; then
    the methods missing anywhere are left out instead (a method run on some seeds only)."""
    kept, notes = [], []
    for (category, split), part in table.groupby(["category", "split"], sort=True):
        methods = set(part["method"])
        images = part.groupby(["seed", "image_id"])["method"].nunique()
        whole = images == len(methods)
        seeds_whole = whole.groupby(level="seed").all()
        done = sorted(seeds_whole.index[seeds_whole])
        if done:
            held = sorted(seeds_whole.index[~seeds_whole])
            if held:
                notes.append(f"{category} {split}: seed(s) {', '.join(map(str, held))} held out: not every method "
                             f"({len(methods)}) has rows for every image yet (a sweep still running or stopped)")
            kept.append(part[part["seed"].isin(done)])
            continue
        counts = part.groupby("method")[["seed", "image_id"]].apply(lambda g: len(g.drop_duplicates()))
        full = counts.index[counts == len(images)]
        partial = sorted(set(methods) - set(full))
        notes.append(f"{category} {split}: {', '.join(partial)} left out: rows for only part of the images")
        kept.append(part[part["method"].isin(full)])
    if not kept:
        return table, notes
    return pd.concat(kept).reset_index(drop=True), notes


def read_store(store: Path | str) -> StoreTables:
    """Every finished task's rows, ranked across methods; an empty store gives empty tables."""
    store = Path(store)
    problems: list[str] = []
    rows_dir = store / ROWS_DIR
    if rows_dir.is_dir() and any(rows_dir.rglob("*.parquet")):
        # one schema for every file: a file written before a column existed reads it as empty
        # (without it, the first file's columns would decide what every file gives)
        schema = pa.unify_schemas([row_schema(EXTRA_SCORES), PARTITIONING.schema])
        table = ds.dataset(rows_dir, format="parquet", partitioning=PARTITIONING, schema=schema).to_table().to_pandas()
    else:
        table = pd.DataFrame(columns=[*PARTITION_COLUMNS, *row_schema().names])
    scores = [c for c in EXTRA_SCORES if c in table.columns and table[c].notna().any()]
    columns = ["category", *TABLE_COLUMNS, *scores, *PROVENANCE_COLUMNS]
    table = table[columns].sort_values(["category", "split", "seed", "image_id", "method"], kind="stable")
    duplicated = table.duplicated(["category", "seed", "split", "image_id", "method"])
    if duplicated.any():
        problems.append(f"{store}: {int(duplicated.sum())} rows found twice (a run with other settings or chunks "
                        "left its files); kept the first; a finished `pixel-evidence sweep` removes the others")
        table = table[~duplicated]
    table, held_out = complete_rows(table.reset_index(drop=True))
    problems.extend(held_out)
    table = _rerank(table.reset_index(drop=True))
    fail_dir = store / FAILURES_DIR
    failures = (ds.dataset(fail_dir, format="parquet", schema=FAILURE_SCHEMA).to_table().to_pandas()
                if fail_dir.is_dir() and any(fail_dir.glob("*.parquet")) else FAILURE_SCHEMA.empty_table().to_pandas())
    return StoreTables(table, failures, tuple(problems))


def category_win_rates(tables: StoreTables, *, split: str = "test", include_misclassified: bool = False) -> pd.DataFrame:
    """Overall win rate per category and method, mean and std over seeds (columns
    ``category, method, mean, std, n_seeds``), from each category's own rows."""
    out = []
    for name in tables.categories:
        rows = tables.category(name)
        rows = rows[rows["split"] == split]
        if rows.empty:
            continue
        across = summarize_over_seeds(win_rates(rows, include_misclassified=include_misclassified))
        overall = across[across["class"] == "overall"]
        out.append(overall.assign(category=name)[["category", "method", "mean", "std", "n_seeds"]])
    if not out:
        return pd.DataFrame(columns=["category", "method", "mean", "std", "n_seeds"])
    return pd.concat(out, ignore_index=True)

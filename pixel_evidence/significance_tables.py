"""The significance tables beside the result rows: Friedman, pairwise tests and the CD diagram's numbers.

:func:`significance_tables` runs :func:`pixel_evidence.metrics.significance.compare_over_seeds`
for every (score, split) a table of rows holds and lays its answers out as three tidy tables,
one row per comparison scope (a seed, or every seed pooled with (seed, image) blocks):

- ``friedman``: one row per (score, split, scope): the blocks and methods compared, Friedman's
  chi^2 and Iman-Davenport's F with their p-values, Nemenyi's critical difference and alpha;
- ``pairwise``: one row per (score, split, scope, pair of methods), the columns of
  :data:`~pixel_evidence.metrics.significance.PAIR_COLUMNS`; the pooled rows also count the
  seeds in which the pair differs by Nemenyi and by Wilcoxon-Holm (empty on a seed's rows);
- ``critical_difference``: one row per (score, split, scope, method): its average rank, mean
  score, the CD, and the numbers of the diagram's bars it belongs to.

They are written as ``significance/<name>.csv`` in an evaluation's results folder and as
``significance/category=<name>/<name>.csv`` in a sweep's store; this module holds those names,
the tables' columns, and the writer and reader. It is torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from pixel_evidence.files import atomic_write_csv
from pixel_evidence.metrics.scores import LOCALISATION_SCORES
from pixel_evidence.metrics.significance import PAIR_COLUMNS, block_matrix, compare_over_seeds
from pixel_evidence.results.reading import TABLE_FILE, load_results
from pixel_evidence.results.sweep_store import read_store

SIGNIFICANCE_SUBDIR = "significance"
POOLED = "pooled"  # the scope of the comparison over every seed's images together
ALPHA = 0.05
HEAD_COLUMNS = ("score", "split", "scope")
SEED_COUNT_COLUMNS = ("n_seeds", "n_nemenyi_significant", "n_holm_significant")


@dataclass(frozen=True)
class SignificanceTable:
    name: str                  # the file's stem
    columns: tuple[str, ...]

    @property
    def file(self) -> str:
        return f"{self.name}.csv"


FRIEDMAN = SignificanceTable("friedman", (*HEAD_COLUMNS, "n_blocks", "n_methods", "friedman_statistic", "friedman_p",
                                          "iman_davenport_statistic", "iman_davenport_p", "critical_difference",
                                          "alpha"))
PAIRWISE = SignificanceTable("pairwise", (*HEAD_COLUMNS, *PAIR_COLUMNS, *SEED_COUNT_COLUMNS))
CRITICAL_DIFFERENCE = SignificanceTable("critical_difference", (*HEAD_COLUMNS, "method", "average_rank",
                                                                "mean_score", "critical_difference", "groups"))
SIGNIFICANCE_TABLES: dict[str, SignificanceTable] = {t.name: t for t in (FRIEDMAN, PAIRWISE, CRITICAL_DIFFERENCE)}


@dataclass(frozen=True)
class Significance:
    """The three tables (name -> DataFrame in its registered columns; empty when nothing could
    be compared) and one line per comparison left out, saying why."""

    tables: dict[str, pd.DataFrame]
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self.tables[FRIEDMAN.name].empty


def table_scores(rows: pd.DataFrame) -> list[str]:
    """The registered localisation scores ``rows`` has values of, in the registry's order."""
    return [s for s in LOCALISATION_SCORES if s in rows.columns and rows[s].notna().any()]


def _comparable_seeds(rows: pd.DataFrame, score: str, methods: list[str] | None,
                      include_misclassified: bool) -> tuple[list[int], list[int]]:
    """Seeds with at least two blocks every method scored (Friedman's minimum), and the others."""
    counted = rows if include_misclassified else rows[rows["correct"].eq(True)]
    if set(methods or rows["method"]) - set(counted["method"]):  # e.g. no image classified correctly
        return [], sorted(int(s) for s in set(rows["seed"]))
    blocks = block_matrix(counted, score=score, methods=methods).index.get_level_values("seed")
    per_seed = pd.Series(1, index=blocks).groupby(level=0).size()
    kept = sorted(int(s) for s in per_seed.index[per_seed >= 2])
    return kept, sorted(int(s) for s in set(rows["seed"]) - set(kept))


def significance_tables(rows: pd.DataFrame, *, methods: Sequence[str] | None = None,
                        scores: Sequence[str] | None = None, alpha: float = ALPHA,
                        include_misclassified: bool = False) -> Significance:
    """Friedman, pairwise and critical-difference tables of every (score, split) of ``rows``.

    Parameters
    ----------
    rows : DataFrame
        Tidy rows as in ``tko_table.csv``, one per (seed, split, image, method), any number of
        splits: columns ``seed, split, image_id, method, correct`` and the scores.
    methods : list of str, optional
        The methods compared; default every method of ``rows``. Fewer than three: no tables
        (Friedman's test needs three), and a note says so.
    scores : list of str, optional
        Default :func:`table_scores` (every registered score with values; all are higher-is-better).
    alpha : float
        Significance level of every test.
    include_misclassified : bool
        As the win rates: by default only correctly classified images count.

    Seeds with fewer than two images that every method scored are left out of a (score, split)
    (per seed and pooled) with a note. Rows come ordered by score (registry order), split
    (test first), then scope (seeds ascending, then ``"pooled"``); ``scope`` holds strings.
    """
    methods = sorted(rows["method"].unique()) if methods is None else list(methods)
    scores = table_scores(rows) if scores is None else list(scores)
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in SIGNIFICANCE_TABLES}
    notes: list[str] = []
    if len(methods) < 3:
        notes.append(f"no significance tables: {len(methods)} method(s); Friedman's test compares three or more")
        scores = []
    for score in scores:
        for split in sorted(rows["split"].unique(), key=lambda s: (s != "test", s)):
            part = rows[rows["split"] == split]
            kept, left_out = _comparable_seeds(part, score, methods, include_misclassified)
            if left_out:
                notes.append(f"{score} {split}: seed(s) {', '.join(map(str, left_out))} left out: fewer than two "
                             "images that every method scored")
            if not kept:
                continue
            result = compare_over_seeds(part[part["seed"].isin(kept)], score=score, methods=methods, alpha=alpha,
                                        include_misclassified=include_misclassified)
            scoped = [*((str(seed), c) for seed, c in result.per_seed.items()), (POOLED, result.pooled)]
            head = {"score": score, "split": split}
            for scope, c in scoped:
                parts[FRIEDMAN.name].append(pd.DataFrame([{
                    **head, "scope": scope, "n_blocks": c.n_blocks, "n_methods": c.n_methods,
                    "friedman_statistic": c.friedman_statistic, "friedman_p": c.friedman_p,
                    "iman_davenport_statistic": c.iman_davenport_statistic,
                    "iman_davenport_p": c.iman_davenport_p, "critical_difference": c.critical_difference,
                    "alpha": c.alpha}]))
                pairs = c.pairs.assign(**head, scope=scope)
                if scope == POOLED:  # seed_counts lists the pairs in pooled.pairs' order
                    for column in SEED_COUNT_COLUMNS:
                        pairs[column] = result.seed_counts[column].to_numpy()
                parts[PAIRWISE.name].append(pairs)
                cd = c.cd_table().assign(**head, scope=scope)
                parts[CRITICAL_DIFFERENCE.name].append(cd.merge(c.ranks[["method", "mean_score"]], on="method"))
    tables = {}
    for name, table in SIGNIFICANCE_TABLES.items():
        frame = pd.concat(parts[name], ignore_index=True) if parts[name] else pd.DataFrame()
        tables[name] = frame.reindex(columns=list(table.columns))
    for column in SEED_COUNT_COLUMNS:  # whole numbers, empty on a seed's rows
        tables[PAIRWISE.name][column] = tables[PAIRWISE.name][column].astype("Int64")
    return Significance(tables, tuple(notes))


def store_significance_dir(store: Path | str, category: str) -> Path:
    """Where a sweep store keeps one category's significance tables."""
    return Path(store) / SIGNIFICANCE_SUBDIR / f"category={category}"


def results_significance_dir(results: Path | str) -> Path:
    """Where an evaluation's results folder keeps its significance tables."""
    return Path(results) / SIGNIFICANCE_SUBDIR


def write_significance(folder: Path | str, significance: Significance) -> list[Path]:
    """Write the tables into ``folder`` (each to a temp file, then renamed into place); the paths.

    When nothing could be compared, the tables of an earlier run are removed instead: they
    would describe other rows."""
    folder = Path(folder)
    if significance.empty:
        remove_significance(folder)
        return []
    written = []
    for name, table in SIGNIFICANCE_TABLES.items():
        atomic_write_csv(folder / table.file, significance.tables[name])
        written.append(folder / table.file)
    return written


def write_results_significance(results: Path | str, *, alpha: float = ALPHA,
                               include_misclassified: bool = False) -> tuple[list[Path], list[str]]:
    """Write the tables of an evaluation's results folder from its ``tko_table.csv``: the paths
    written, and lines on what was left out. ``ValueError`` when the folder has no readable table."""
    found = load_results(results)
    if found.tko is None:
        raise ValueError("; ".join(found.problems) or f"{results}: no {TABLE_FILE}; run `pixel-evidence evaluate`")
    tests = significance_tables(found.tko, alpha=alpha, include_misclassified=include_misclassified)
    return write_significance(results_significance_dir(results), tests), list(tests.notes)


def write_store_significance(store: Path | str, categories: Sequence[str] | None = None, *,
                             alpha: float = ALPHA) -> tuple[list[Path], list[str]]:
    """Write each category's tables into a sweep store, from the rows it holds now: the paths
    written, and lines on what was left out.

    The store's reader keeps the seeds that have every method of the category (a sweep still
    running or stopped has methods on some seeds only), so a partial store's tables cover
    those seeds. ``categories``: default every category of the store; a named one without
    rows has its old tables removed.
    """
    tables = read_store(store)
    notes = list(tables.problems)
    written: list[Path] = []
    for category in tables.categories if categories is None else categories:
        rows = tables.category(category) if category in tables.categories else tables.tko.iloc[:0]
        tests = significance_tables(rows, alpha=alpha)
        written += write_significance(store_significance_dir(store, category), tests)
        notes += [f"{category}: {line}" for line in tests.notes]
    return written, notes


def remove_significance(folder: Path | str) -> None:
    """Remove the tables from ``folder`` (absent ones are fine)."""
    for table in SIGNIFICANCE_TABLES.values():
        (Path(folder) / table.file).unlink(missing_ok=True)


def read_significance(folder: Path | str) -> dict[str, pd.DataFrame] | None:
    """The tables in ``folder`` (``scope`` as strings, ``groups`` "" for none), or None when one is missing."""
    folder = Path(folder)
    if not all((folder / t.file).is_file() for t in SIGNIFICANCE_TABLES.values()):
        return None
    # "groups" as text: "1" must not read as the number 1.0 beside an empty cell
    tables = {name: pd.read_csv(folder / t.file, dtype={"scope": str, "groups": str})
              for name, t in SIGNIFICANCE_TABLES.items()}
    tables[CRITICAL_DIFFERENCE.name]["groups"] = tables[CRITICAL_DIFFERENCE.name]["groups"].fillna("")
    for column in SEED_COUNT_COLUMNS:
        tables[PAIRWISE.name][column] = tables[PAIRWISE.name][column].astype("Int64")
    return tables

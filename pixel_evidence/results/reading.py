"""Reading an evaluation's result folder: its tables, summary and per-seed provenance.

Nothing here writes files; unreadable files are reported, never raised, so a view can
say what is wrong and keep showing the rest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from pixel_evidence.analyses import ANALYSES
from pixel_evidence.metrics.scores import LOCALISATION_SCORES

RESULTS_SUBDIR = "results"
# The files evaluate writes into a results folder: the main table, its win rates, their
# summary, and each analysis's table (pixel_evidence.analyses names those).
TABLE_FILE = "tko_table.csv"
WIN_RATES_FILE = "win_rates.csv"
SUMMARY_FILE = "summary.json"
RESULT_FILES = (TABLE_FILE, WIN_RATES_FILE, SUMMARY_FILE, *(a.file for a in ANALYSES.values()))
# The main table's columns (tko_table.csv), before the optional localisation scores; the
# dashboard's per-image ranking export has the same ones plus the method's label.
# The ig_* columns are Integrated Gradients' convergence (NaN on other methods' rows).
IG_COLUMNS = {"ig_relative_delta": "relative_delta", "ig_gap_bound": "gap_bound", "ig_steps": "steps",
              "ig_converged": "converged",
              "ig_stability_spearman": "stability_spearman", "ig_tko_change": "tko_change"}  # column: extra
TABLE_COLUMNS = ("seed", "split", "image_id", "class", "predicted", "correct", "target", "method",
                 "k", "n", "tko", "chance", "lift", "iou", "rank", "win_share", *IG_COLUMNS)


def ig_columns(extras: Mapping[str, float] | None) -> dict[str, float]:
    """The ig_* columns of one row from a method's extras (NaN where an extra is absent:
    another method, or IG with a fixed rule, which has no stability to report)."""
    return {col: float((extras or {}).get(extra, float("nan"))) for col, extra in IG_COLUMNS.items()}


@dataclass(frozen=True)
class Results:
    """The evaluation tables of one results folder; missing files are ``None``."""

    directory: Path
    tko: pd.DataFrame | None = None
    win_rates: pd.DataFrame | None = None
    summary: dict[str, Any] | None = None
    problems: tuple[str, ...] = ()
    provenance: dict[int, dict[str, Any]] = field(default_factory=dict)
    analyses: dict[str, pd.DataFrame] = field(default_factory=dict)  # name -> table, when present
    # name -> the distinct settings its per-seed sidecars record (e.g. agreement's top share)
    settings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def scores(self) -> list[str]:
        """Localisation scores present in the main table (TKO first)."""
        if self.tko is None:
            return []
        return [c for c in LOCALISATION_SCORES if c in self.tko.columns and self.tko[c].notna().any()]

    @property
    def available(self) -> bool:
        return self.tko is not None and self.win_rates is not None

    @property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.tko["seed"].unique()) if self.tko is not None else []

    @property
    def splits(self) -> list[str]:
        if self.tko is None:
            return []
        return [s for s in ("train", "test") if s in set(self.tko["split"])]

    def seed_rows(self, seed: int) -> pd.DataFrame:
        """The table rows of one seed (empty frame when there are none)."""
        if self.tko is None:
            return pd.DataFrame()
        return self.tko[self.tko["seed"] == seed].reset_index(drop=True)


def results_dir(models_dir: Path | str) -> Path:
    return Path(models_dir) / RESULTS_SUBDIR


def _bool_column(series: pd.Series) -> pd.Series:
    if series.dtype == bool:
        return series
    return series.astype(str).str.strip().str.lower().isin(("true", "1", "yes"))


def _read_csv(path: Path, required: Sequence[str], problems: list[str]) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        problems.append(f"{path}: unreadable ({exc.__class__.__name__}); rerun `pixel-evidence evaluate --force`")
        return None
    missing = [c for c in required if c not in df.columns]
    if missing:
        problems.append(f"{path}: missing columns {missing}; rerun `pixel-evidence evaluate --force`")
        return None
    return df


def load_results(directory: Path | str) -> Results:
    """Read ``tko_table.csv``, ``win_rates.csv``, ``summary.json`` and the per-seed sidecars.

    Missing files give ``None`` fields; unreadable ones are listed in ``problems`` (never
    raised), so a view can say what is wrong and keep showing the rest.
    """
    directory = Path(directory)
    problems: list[str] = []
    tko = _read_csv(directory / TABLE_FILE,
                    ["seed", "split", "image_id", "class", "predicted", "correct", "method", "tko", "chance"],
                    problems)
    if tko is not None:
        tko["correct"] = _bool_column(tko["correct"])
        tko["seed"] = tko["seed"].astype(int)
    rates = _read_csv(directory / WIN_RATES_FILE, ["seed", "split", "class", "method", "win_rate", "n_images"],
                      problems)
    if rates is not None:
        rates["seed"] = rates["seed"].astype(int)
    summary = None
    if (directory / SUMMARY_FILE).is_file():
        try:
            summary = json.loads((directory / SUMMARY_FILE).read_text())
        except (json.JSONDecodeError, OSError, UnicodeDecodeError) as exc:
            problems.append(f"{directory / SUMMARY_FILE}: unreadable ({exc.__class__.__name__})")
    provenance: dict[int, dict[str, Any]] = {}
    for side in sorted((directory / "per_seed").glob("seed_*.json")):
        # seed_<n>_<split>.json (the main table of a unit); analysis sidecars have a further suffix
        match = re.fullmatch(r"seed_(-?\d+)_(train|test)", side.stem)
        if match is None:
            continue
        try:
            provenance.setdefault(int(match.group(1)), json.loads(side.read_text()))
        except (json.JSONDecodeError, OSError, UnicodeDecodeError):
            problems.append(f"{side}: unreadable")
    analyses = {}
    for name, analysis in ANALYSES.items():
        df = _read_csv(directory / analysis.file, ["seed", "split", "image_id"], problems)
        if df is not None:
            if "correct" in df:
                df["correct"] = _bool_column(df["correct"])
            for col in ("final", "passed"):
                if col in df:
                    df[col] = _bool_column(df[col])
            analyses[name] = df
    settings = {name: _analysis_settings(directory, name, problems) for name in analyses}
    return Results(directory, tko, rates, summary, tuple(problems), provenance, analyses, settings)


def _analysis_settings(directory: Path, name: str, problems: list[str]) -> list[dict[str, Any]]:
    """Distinct ``settings`` recorded in one analysis's per-seed sidecars."""
    out: list[dict[str, Any]] = []
    for side in sorted((directory / "per_seed").glob(f"seed_*.{name}.json")):
        try:
            settings = json.loads(side.read_text()).get("settings") or {}
        except (json.JSONDecodeError, OSError, UnicodeDecodeError, AttributeError):
            problems.append(f"{side}: unreadable")
            continue
        if settings not in out:
            out.append(settings)
    return out


def stale_seeds(results: Results, metas: Mapping[int, Mapping[str, Any]]) -> list[int]:
    """Seeds in the results whose recorded weights differ from the current checkpoints.

    A seed without a sidecar is not reported (nothing to compare); a seed whose model is
    gone is reported, since its rows no longer describe an available model.
    """
    out = []
    for seed in results.seeds:
        meta = metas.get(seed)
        prov = results.provenance.get(seed)
        if meta is None:
            out.append(seed)
        elif prov is not None and prov.get("weights_sha256") != meta.get("weights_sha256"):
            out.append(seed)
    return out

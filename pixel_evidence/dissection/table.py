"""The dissection table: one row per seed, stage, unit and defect class, written by
``pixel-evidence dissect`` (:func:`pixel_evidence.engine.dissector.dissect_seeds`) and read by
the dashboard.

Files in the output folder:

- ``per_seed/seed_<n>_<split>_<stage>.csv`` with a ``.json`` sidecar (the weights it was
  computed from): one seed's stage, the resumable unit. A unit whose sidecar names the
  seed's current weights is kept on a rerun; ``force`` recomputes it.
- ``dissection.csv``: every unit of the folder, rebuilt after each run.

Every file is written atomically. The constants of the method live here, with the table
whose columns they define, so that reading it needs no torch.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd

QUANTILE = 0.995     # T_k: this quantile of unit k's activations over the split
DETECTOR_IOU = 0.04  # NetDissect's cut-off: a unit with IoU_k,c >= it detects concept c
COLUMNS = ("seed", "split", "stage", "unit", "class", "iou", "threshold", "tie_share", "at_max", "detector")
# How a unit fires at its threshold (pixel_evidence/dissection/units.py): recorded with each per-seed file, so
# a file made under another rule is recomputed, not kept.
UNION_RULES = ("all", "defect", "concept")  # which images' firing counts in a concept's union
FIRING_RULE = "above, and tied pixels by the tie share"
TABLE = "dissection.csv"
DISSECTION_SUBDIR = "dissection"



def unit_path(out: Path, seed: int, split: str, stage: str) -> Path:
    return out / "per_seed" / f"seed_{seed}_{split}_{stage}.csv"


def table_csv(df: pd.DataFrame) -> str:
    buffer = io.StringIO()
    df.to_csv(buffer, index=False, float_format="%.6g")
    return buffer.getvalue()



def recorded_provenance(sidecar: Path) -> dict | None:
    try:
        return json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def read_dissection(directory: Path) -> pd.DataFrame | None:
    """``dissection.csv`` of ``directory``, or None when there is none; a table without the
    expected columns is a one-line ``ValueError`` naming the file."""
    path = Path(directory) / TABLE
    if not path.is_file():
        return None
    df = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; rewrite it with `pixel-evidence dissect --force`")
    for flag in ("detector", "at_max"):
        df[flag] = df[flag].astype(str).str.lower().isin(("true", "1"))
    return df


def detector_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Per split, stage and class: detector units per seed, as mean, std (ddof 1; 0 for one
    seed) and the number of seeds."""
    per_seed = table.groupby(["split", "stage", "class", "seed"])["detector"].sum().rename("n").reset_index()
    out = per_seed.groupby(["split", "stage", "class"])["n"].agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"count": "n_seeds"}).fillna({"std": 0.0})


def ceiling_shares(table: pd.DataFrame) -> pd.Series:
    """Per stage, the share of its units whose threshold is their largest activation (tied at
    a ceiling), averaged over the table's seeds and splits."""
    units = table.drop_duplicates(["seed", "split", "stage", "unit"])
    return units.groupby("stage", sort=False)["at_max"].mean()

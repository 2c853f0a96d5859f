"""The dissection table: one row per seed, stage, unit and defect class, written by
``pixel-evidence dissect`` and read by the dashboard.

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
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import pandas as pd

from .files import atomic_write_text, remove_stale_temp_files

if TYPE_CHECKING:  # the table is read without torch (the dashboard)
    from .dissection import Dissection

QUANTILE = 0.995     # T_k: this quantile of unit k's activations over the split
DETECTOR_IOU = 0.04  # NetDissect's cut-off: a unit with IoU_k,c >= it detects concept c
COLUMNS = ("seed", "split", "stage", "unit", "class", "iou", "threshold", "tie_share", "at_max", "detector")
# How a unit fires at its threshold (engine/dissection.py): recorded with each per-seed file, so
# a file made under another rule is recomputed, not kept.
UNION_RULES = ("all", "defect", "concept")  # which images' firing counts in a concept's union
FIRING_RULE = "above, and tied pixels by the tie share"
TABLE = "dissection.csv"
DISSECTION_SUBDIR = "dissection"

log = logging.getLogger("pixel_evidence.engine")


def dissection_frame(seed: int, split: str, result: "Dissection") -> pd.DataFrame:
    """The table rows of one dissected stage, unit-major, concepts in their order."""
    rows = [(seed, split, result.stage, unit, concept, float(result.iou[unit, c]), float(result.thresholds[unit]),
             float(result.tie_share[unit]), bool(result.at_max[unit]), bool(result.detectors[unit, c]))
            for unit in range(len(result.thresholds)) for c, concept in enumerate(result.concepts)]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _unit_path(out: Path, seed: int, split: str, stage: str) -> Path:
    return out / "per_seed" / f"seed_{seed}_{split}_{stage}.csv"


def _csv(df: pd.DataFrame) -> str:
    buffer = io.StringIO()
    df.to_csv(buffer, index=False, float_format="%.6g")
    return buffer.getvalue()


def dissect_seeds(dissector, out: Path, *, seeds: Sequence[int], stages: Sequence[str], split: str,
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
            path = _unit_path(out, seed, split, stage)
            sidecar = path.with_suffix(".json")
            provenance = {"seed": seed, "split": split, "stage": stage, "weights_sha256": weights,
                          "quantile": QUANTILE, "detector_iou": DETECTOR_IOU, "firing": FIRING_RULE, "union": union}
            if not force and path.is_file() and _recorded(sidecar) == provenance:
                report(f"seed {seed} {stage}: kept ({path})")
                continue
            result = dissector.run(seed, stage, split, batch_size=batch_size, union=union)
            atomic_write_text(path, _csv(dissection_frame(seed, split, result)))
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
    atomic_write_text(out / TABLE, _csv(table))
    return table


def _recorded(sidecar: Path) -> dict | None:
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

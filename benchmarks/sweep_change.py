"""What recomputing one method's rows changes in a whole-field sweep store: two stores (the
shipped one before the change and after it) compared on the (seed, split, image) rows both hold.

Writes a JSON record with, per method, the win rate by TKO (each seed's mean win share, then
mean and std over seeds) and the mean TKO before and after; for the changed methods the
per-image TKO change (median and largest absolute change); and how many images' winners flip.
The docs' results pages render it, so what moved is stated from files, not retyped.

    python -m benchmarks.sweep_change OLD_STORE NEW_STORE --methods sidu --note "..." --out FILE.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from pixel_evidence import metrics
from pixel_evidence.files import atomic_write_text
from pixel_evidence.results import read_store

KEY = ["category", "seed", "split", "image_id"]


def counted_rows(store: Path) -> pd.DataFrame:
    """The store's rankable rows: correctly classified images with a TKO (a defect mask)."""
    tko = read_store(store).tko
    return tko[tko["correct"].astype(bool) & tko["tko"].notna()]


def method_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per method: win rate by TKO over seeds (mean, std with ddof 1) and mean TKO (per seed,
    then over seeds); the same definitions as the results pages."""
    rates = metrics.win_rates(rows.drop(columns="category"))
    overall = rates[rates["class"] == metrics.OVERALL]
    per_method = overall.groupby("method")["win_rate"].agg(["mean", "std"])
    mean_tko = rows.groupby(["method", "seed"])["tko"].mean().groupby(level="method").mean()
    return per_method.assign(mean_tko=mean_tko)


def winners(rows: pd.DataFrame) -> pd.Series:
    """Per image, the methods sharing its best TKO, joined with '+'."""
    best = rows.groupby(KEY)["tko"].transform("max")
    return rows[rows["tko"] == best].groupby(KEY)["method"].apply(lambda m: "+".join(sorted(m)))


def compare(old_store: Path, new_store: Path, changed: list[str]) -> dict:
    return compare_rows(counted_rows(old_store), counted_rows(new_store), changed)


def compare_rows(old: pd.DataFrame, new: pd.DataFrame, changed: list[str]) -> dict:
    """The record of :func:`compare` from two stores' rankable rows."""
    images = old.set_index(KEY).index.unique().intersection(new.set_index(KEY).index.unique())
    old, new = (t.set_index(KEY).loc[images].reset_index() for t in (old, new))
    before, after = method_summary(old), method_summary(new)
    w_old, w_new = winners(old), winners(new)
    tko = old.merge(new, on=[*KEY, "method"], suffixes=("_old", "_new"))
    methods = {}
    for m in after.index:
        entry = {"win_rate_before": [float(before.loc[m, "mean"]), float(before.loc[m, "std"])],
                 "win_rate_after": [float(after.loc[m, "mean"]), float(after.loc[m, "std"])],
                 "mean_tko_before": float(before.loc[m, "mean_tko"]), "mean_tko_after": float(after.loc[m, "mean_tko"])}
        if m in changed:
            d = (tko.loc[tko["method"] == m, "tko_new"] - tko.loc[tko["method"] == m, "tko_old"]).abs()
            entry.update(median_abs_tko_change=float(d.median()), max_abs_tko_change=float(d.max()),
                         images_with_tko_change=int((d > 0).sum()))
        methods[m] = entry
    return {"changed": changed, "images": int(len(images)), "seeds": sorted(int(s) for s in new["seed"].unique()),
            "winner_flips": int((w_old.loc[images] != w_new.loc[images]).sum()), "methods": methods}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("old_store", type=Path)
    p.add_argument("new_store", type=Path)
    p.add_argument("--methods", nargs="+", required=True, help="the methods whose rows were recomputed")
    p.add_argument("--note", default="", help="why they were recomputed (one sentence, kept in the record)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    record = {"note": args.note, **compare(args.old_store, args.new_store, args.methods)}
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

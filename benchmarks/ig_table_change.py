"""What Integrated Gradients to a tolerance changes in an evaluation: two main tables
(``tko_table.csv``, e.g. the shipped 25-step one and a re-evaluation), compared on the
(seed, split) units both hold.

Prints, per split: how many per-image winners flip (``--list-flips``: which), overall win
rates of both (mean over the seeds), IG's gap, steps and convergence, and how IG's TKO moved.

    python -m benchmarks.ig_table_change OLD_TABLE NEW_TABLE [--list-flips]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from pixel_evidence import metrics

KEY = ["seed", "split", "image_id"]


def winners(table: pd.DataFrame) -> pd.Series:
    """Per rankable image, the sorted tuple of methods sharing the win (as a string)."""
    won = table[table["win_share"] > 0]
    return won.groupby(KEY)["method"].apply(lambda m: "+".join(sorted(m)))


def _gap_line(name: str, split: str, ig: pd.DataFrame) -> str:
    g = ig["ig_relative_delta"].dropna()
    return (f"| {name} | {split} | {len(g)} | {g.median():.4f} | {g.quantile(0.9):.4f} | {g.max():.4f} | "
            f"{(g > 0.01).mean():.0%} | {(g > 0.05).mean():.0%} |")


def _flips(old: pd.DataFrame, new: pd.DataFrame, split: str, listed: bool) -> list[str]:
    """How many per-image winners of one split flip (and, when ``listed``, which)."""
    w_old, w_new = winners(old), winners(new)
    both = w_old.index.intersection(w_new.index)
    flips = w_old[both] != w_new[both]
    correct = old.drop_duplicates(KEY).set_index(KEY)["correct"].astype(str).str.lower().eq("true")
    counted = flips[correct.reindex(both).fillna(False).to_numpy()]
    sole = (~w_old[both].str.contains("+", regex=False)) & (~w_new[both].str.contains("+", regex=False))
    lines = [f"{split}: per-image winners (rankable images) {int(flips.sum())} of {len(both)} flip "
             f"({int((flips & sole).sum())} a change of the sole winner, {int((flips & ~sole).sum())} a tie made "
             f"or broken); {int(counted.sum())} of {len(counted)} among the correctly classified defect images "
             "that the win rates count."]
    if listed and flips.any():
        lines += ["", "| seed | split | image | winner before | winner after |", "|---|---|---|---|---|"]
        lines += [f"| {s} | {p} | {i} | {w_old[(s, p, i)]} | {w_new[(s, p, i)]} |"
                  for (s, p, i) in flips[flips].index]
    return lines + [""]


def _refinement(split: str, ig_old: pd.DataFrame, ig_new: pd.DataFrame) -> list[str]:
    """The tolerance scheme's steps, convergence and stability, and how IG's TKO moved."""
    lines = []
    if "ig_steps" in ig_new and ig_new["ig_steps"].notna().any():
        st, conv = ig_new["ig_steps"], ig_new["ig_converged"]
        rho, dtko = ig_new["ig_stability_spearman"], ig_new["ig_tko_change"].abs()
        lines.append(f"{split}, after: steps mean {st.mean():.0f}, median {st.median():.0f}, "
                     f"p90 {st.quantile(0.9):.0f}, max {st.max():.0f}; converged {int(conv.sum())} of {len(conv)} "
                     f"({conv.mean():.0%}); stability between the last two refinements: Spearman median "
                     f"{rho.median():.4f}, min {rho.min():.4f}; |TKO change| in the last refinement median "
                     f"{dtko.median():.4f}, max {dtko.max():.4f}.")
    common = ig_old.index.intersection(ig_new.index)
    d = (ig_new.loc[common, "tko"] - ig_old.loc[common, "tko"]).abs()
    lines.append(f"{split}: IG's TKO, after minus before: |change| median {d.median():.4f}, "
                 f"p90 {d.quantile(0.9):.4f}, max {d.max():.4f} over {len(d)} images.")
    return lines


def compare(old: pd.DataFrame, new: pd.DataFrame, *, list_flips: bool = False) -> str:
    units = old[["seed", "split"]].drop_duplicates().merge(new[["seed", "split"]].drop_duplicates())
    old, new = old.merge(units), new.merge(units)
    splits = sorted(units["split"].unique(), key=lambda s: (s != "test", s))
    lines = [f"Units compared: {len(units)} (seed, split): "
             + ", ".join(f"{s}/{p}" for s, p in units.itertuples(index=False)), ""]
    for split in splits:
        lines += _flips(old[old.split == split], new[new.split == split], split, list_flips)
    lines += ["| split | method | win rate before | after | change |", "|---|---|---|---|---|"]
    rates = {}
    for name, table in (("old", old), ("new", new)):
        r = metrics.win_rates(table)
        rates[name] = r[r["class"] == metrics.OVERALL].groupby(["split", "method"])["win_rate"].mean()
    for (split, method), before in rates["old"].items():
        after = rates["new"].get((split, method), np.nan)
        lines.append(f"| {split} | {method} | {before:.3f} | {after:.3f} | {after - before:+.3f} |")

    def ig_rows(table: pd.DataFrame, split: str) -> pd.DataFrame:
        return table[(table["method"] == "ig") & table["tko"].notna() & (table["split"] == split)].set_index(KEY)

    lines += ["", "| IG table | split | images | gap median | p90 | max | > 1% | > 5% |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [_gap_line(name, split, ig_rows(table, split)) for split in splits
              for name, table in (("before", old), ("after", new))]
    lines.append("")
    for split in splits:
        lines += _refinement(split, ig_rows(old, split), ig_rows(new, split))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--list-flips", action="store_true", help="list every image whose winner flips")
    args = ap.parse_args()
    print(compare(pd.read_csv(args.old), pd.read_csv(args.new), list_flips=args.list_flips))


if __name__ == "__main__":
    main()

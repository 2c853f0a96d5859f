"""What Integrated Gradients to a tolerance changes in an evaluation: two main tables
(``tko_table.csv``, e.g. the shipped 25-step one and a re-evaluation), compared on the
(seed, split) units both hold.

Prints: per-image winners that flip, overall win rates of both (mean over the seeds), IG's
gap, steps and convergence, and how IG's TKO moved.

    python -m benchmarks.ig_table_change OLD_TABLE NEW_TABLE
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from engine import metrics

KEY = ["seed", "split", "image_id"]


def winners(table: pd.DataFrame) -> pd.Series:
    """Per rankable image, the sorted tuple of methods sharing the win (as a string)."""
    won = table[table["win_share"] > 0]
    return won.groupby(KEY)["method"].apply(lambda m: "+".join(sorted(m)))


def _gap_line(name: str, ig: pd.DataFrame) -> str:
    g = ig["ig_relative_delta"].dropna()
    line = (f"| {name} | {len(g)} | {g.median():.4f} | {g.quantile(0.9):.4f} | {g.max():.4f} | "
            f"{(g > 0.01).mean():.0%} | {(g > 0.05).mean():.0%} |")
    return line


def compare(old: pd.DataFrame, new: pd.DataFrame) -> str:
    units = old[["seed", "split"]].drop_duplicates().merge(new[["seed", "split"]].drop_duplicates())
    old, new = old.merge(units), new.merge(units)
    lines = [f"Units compared: {len(units)} (seed, split): "
             + ", ".join(f"{s}/{p}" for s, p in units.itertuples(index=False)), ""]
    w_old, w_new = winners(old), winners(new)
    both = w_old.index.intersection(w_new.index)
    flips = (w_old[both] != w_new[both])
    correct = old.drop_duplicates(KEY).set_index(KEY)["correct"].astype(str).str.lower().eq("true")
    counted = flips[correct.reindex(both).fillna(False).to_numpy()]
    lines += [f"Per-image winners (rankable images): {int(flips.sum())} of {len(both)} flip; "
              f"{int(counted.sum())} of {len(counted)} among the correctly classified defect images that the win "
              "rates count.", ""]
    if flips.any():
        lines += ["| seed | split | image | winner before | winner after |", "|---|---|---|---|---|"]
        lines += [f"| {s} | {p} | {i} | {w_old[(s, p, i)]} | {w_new[(s, p, i)]} |"
                  for (s, p, i) in flips[flips].index]
        lines.append("")
    lines += ["| split | method | win rate before | after | change |", "|---|---|---|---|---|"]
    rates = {}
    for name, table in (("old", old), ("new", new)):
        r = metrics.win_rates(table)
        rates[name] = r[r["class"] == metrics.OVERALL].groupby(["split", "method"])["win_rate"].mean()
    for (split, method), before in rates["old"].items():
        after = rates["new"].get((split, method), np.nan)
        lines.append(f"| {split} | {method} | {before:.3f} | {after:.3f} | {after - before:+.3f} |")
    ig_old = old[(old["method"] == "ig") & old["tko"].notna()].set_index(KEY)
    ig_new = new[(new["method"] == "ig") & new["tko"].notna()].set_index(KEY)
    lines += ["", "| IG table | images | gap median | p90 | max | > 1% | > 5% |", "|---|---|---|---|---|---|---|",
              _gap_line("before", ig_old), _gap_line("after", ig_new)]
    if "ig_steps" in ig_new and ig_new["ig_steps"].notna().any():
        st, conv = ig_new["ig_steps"], ig_new["ig_converged"]
        rho, dtko = ig_new["ig_stability_spearman"], ig_new["ig_tko_change"].abs()
        lines += ["", f"After: steps mean {st.mean():.0f}, median {st.median():.0f}, p90 {st.quantile(0.9):.0f}, "
                      f"max {st.max():.0f}; converged {int(conv.sum())} of {len(conv)} "
                      f"({conv.mean():.0%}); stability between the last two refinements: Spearman median "
                      f"{rho.median():.4f}, min {rho.min():.4f}; |TKO change| in the last refinement median "
                      f"{dtko.median():.4f}, max {dtko.max():.4f}."]
    common = ig_old.index.intersection(ig_new.index)
    d = (ig_new.loc[common, "tko"] - ig_old.loc[common, "tko"]).abs()
    lines.append(f"IG's TKO, after minus before (25-step map): |change| median {d.median():.4f}, "
                 f"p90 {d.quantile(0.9):.4f}, max {d.max():.4f} over {len(d)} images.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    args = ap.parse_args()
    print(compare(pd.read_csv(args.old), pd.read_csv(args.new)))


if __name__ == "__main__":
    main()

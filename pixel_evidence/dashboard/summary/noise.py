"""The stochastic methods' own noise: how many wins survive another draw of the method's seed.

Reads the study that ``pixel-evidence noise`` writes beside the models
(:mod:`pixel_evidence.results.noise_study`): per winning method its wins in the shipped draw
and those that every other draw confirms, per stochastic method its TKO spread, and, when
measured, the sample count from which its maps stop moving.
"""

from __future__ import annotations

import pandas as pd
import panel as pn
import param

from pixel_evidence.dashboard.charts import drawing
from pixel_evidence.dashboard.markup import plain
from pixel_evidence.dashboard.summary.section import Section, text
from pixel_evidence.metrics.draw_noise import STABLE_PEARSON, STABLE_TKO_CHANGE, count_curve, stable_count


def _count(value: float) -> str:
    """A win count: whole, or with the shares of tied wins."""
    return f"{value:g}" if float(value).is_integer() else f"{value:.2f}"


def wins_table(summary: dict, label) -> pd.DataFrame:
    """Per winning method: its draw-0 wins, the robust ones, and (stochastic ones) its TKO spread."""
    spreads = summary["methods"]
    rows = []
    for m, wins in summary["wins"].items():
        s = spreads.get(m)
        rows.append({"Method": label(m), "wins (draw 0)": _count(wins),
                     "robust wins": _count(summary["robust_wins"].get(m, 0.0)),
                     "TKO spread median / p90 / max": (f"{s['median_spread']:.3f} / {s['p90_spread']:.3f} / "
                                                       f"{s['max_spread']:.3f}" if s else "deterministic")})
    for m, s in spreads.items():  # a stochastic method that won nothing still shows its noise
        if m not in summary["wins"]:
            rows.append({"Method": label(m), "wins (draw 0)": "0", "robust wins": "0",
                         "TKO spread median / p90 / max":
                             f"{s['median_spread']:.3f} / {s['p90_spread']:.3f} / {s['max_spread']:.3f}"})
    return pd.DataFrame(rows)


def counts_table(counts: pd.DataFrame, params: dict, label) -> pd.DataFrame:
    """Per stochastic method: its sample count, the stable count, and its noise at the default."""
    from pixel_evidence.methods import METHODS

    curve = count_curve(counts)
    rows = []
    for m in curve["method"].unique():
        name = METHODS[m].random_samples
        default = int(params[m][name])
        at_default = curve[(curve["method"] == m) & (curve["count"] == default)]
        stable = stable_count(curve, m)
        tried = curve.loc[curve["method"] == m, "count"]
        rows.append({"Method": label(m), "sample count": f"{name} = {default}",
                     "stable from": (f"{stable}" if stable is not None else f"not by {int(tried.max())}"),
                     "Pearson of two draws at the default": (f"{at_default['median_pearson'].iloc[0]:.3f}"
                                                             if len(at_default) else "–"),
                     "|ΔTKO| of two draws at the default": (f"{at_default['median_tko_change'].iloc[0]:.3f}"
                                                            if len(at_default) else "–")})
    return pd.DataFrame(rows)


class NoiseSection(Section):
    key = "noise"
    css_classes = ["pe-noise"]

    @param.depends("store.noise", watch=True)
    @drawing
    def _draw(self) -> None:
        store, study = self.store, self.store.noise
        heading = pn.pane.Markdown("## The stochastic methods' own noise")
        if study is None:
            self.show([heading, text(
                f"No noise study in {plain(str(store.noise_directory))}. RISE, LIME, SmoothGrad and SmoothGrad-IG "
                "draw random masks, samples or noise, and the tables above use one draw of each. Measure how much "
                "another draw moves them with <code>pixel-evidence noise --counts</code> (needs a sweep of every "
                "method first), then press “Reload results”.")], [])
            return
        s = study.summary
        methods = ", ".join(store.label(m) for m in s["methods_studied"])
        words = (
            f"{plain(methods)} were run {s['n_draws']} times on seed {s['seed']}'s {plain(s['split'])} images, each "
            f"time with another value of the method's own random seed (draw 0 is the one every other table uses). "
            f"Of the {s['n_images']} images, <b>{s['robust_images']} keep the same winner under every draw</b>; "
            f"{s['winner_changes']} change winner under some draw, and {s['ties_within_noise']} are ties within "
            "noise: the winner's lead over the runner-up is no larger than the TKO spread of one of the two. "
            "A robust win is one that every draw confirms; shared wins count as shares.")
        parts = [heading, text(words), pn.pane.DataFrame(wins_table(s, store.label), index=False, width=760,
                                                         css_classes=["pe-noise-wins"], justify="right")]
        tables = [(f"Wins under the methods' own noise, seed {s['seed']} {s['split']}", wins_table(s, store.label))]
        if study.counts is not None:
            counts = counts_table(study.counts, study.params, store.label)
            parts += [text(
                f"Two draws at each sample count on {study.counts['image_id'].nunique()} images: a count is stable "
                f"when the two maps' Pearson correlation reaches {STABLE_PEARSON} and their TKO differs by at most "
                f"{STABLE_TKO_CHANGE} at the median image, and so does every larger count tried."),
                pn.pane.DataFrame(counts, index=False, width=900, css_classes=["pe-noise-counts"], justify="right")]
            tables.append(("Sample counts of the stochastic methods", counts))
        self.show(parts, tables)

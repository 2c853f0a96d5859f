"""Does the map depend on the model's weights? The randomization check's verdicts per method."""

from __future__ import annotations

import pandas as pd
import panel as pn

from pixel_evidence.analyses import SANITY
from pixel_evidence.dashboard.formatting import based_on
from pixel_evidence.dashboard.markup import plain
from pixel_evidence.dashboard.summary.section import AnalysisSection, text
from pixel_evidence.metrics import SANITY_PASS_THRESHOLD
from pixel_evidence.results import sanity_stats

CELL = "padding:6px 14px;border-bottom:1px solid #ddd;text-align:left"


def verdict_html(n: int, passed: int) -> str:
    noun = "image" if n == 1 else "images"
    if passed == n:
        return f'<span style="color:#1a7f37">✔ passed on {passed} of {n} {noun}</span>'
    return (f'<span style="color:#B31B1B"><b>✘ FAILED on {n - passed} of {n} {noun}</b>: the map barely '
            "changes when the model's weights are random</span>")


class SanitySection(AnalysisSection):
    key = SANITY.name
    question = "Sanity check: does the map depend on the model's weights?"
    css_classes = ["pe-sanity-summary"]

    def _table(self, stats: pd.DataFrame) -> str:
        body = []
        for r in stats.set_index("method").loc[self.store.method_order(stats["method"])].reset_index().itertuples():
            rho = "—" if pd.isna(r.final_spearman_mean) else f"{r.final_spearman_mean:.2f}"
            body.append(f"<tr><td style='{CELL}'><b>{plain(self.store.label(r.method))}</b></td>"
                        f"<td style='{CELL}'>{verdict_html(int(r.n_images), int(r.n_passed))}</td>"
                        f"<td style='{CELL};text-align:right'>{rho}</td></tr>")
        return ("<table class='pe-sanity-table' style='border-collapse:collapse;font-size:15px'><tr>"
                + "".join(f"<th style='{CELL}'>{h}</th>" for h in ("Method", "Randomization check",
                                                                   "mean final Spearman ρ"))
                + "</tr>" + "".join(body) + "</table>")

    def draw_rows(self, title: str, split: str, rows: pd.DataFrame) -> None:
        stats = sanity_stats(rows)
        self.show([
            pn.pane.Markdown(title),
            text("The classifier head and then every encoder stage, top down, get random weights, and the map "
                 "is recomputed. A method passes on an image when its map from the fully random model no "
                 f"longer resembles the trained model's map (|Spearman ρ| below {SANITY_PASS_THRESHOLD}). A map "
                 "that survives randomization shows the input (edges, colours), not what the model learned. "
                 f"Based on {based_on(rows[rows['final']])}."),
            pn.pane.HTML(self._table(stats), sizing_mode="stretch_width")],
            [(f"Randomization check per method ({split} split)",
              self.store.with_labels(stats.drop(columns=["split"]), at=0)),
             (f"Randomization check, every stage ({split} split)",
              self.store.with_labels(rows.drop(columns=["split"]), at=3))])

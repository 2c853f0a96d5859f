"""The Units tab: Network Dissection of the encoder's stages against the defect masks.

The table is ``pixel-evidence dissect``'s (read here, never computed: it takes minutes per
seed). Per defect class the view shows the seed's best units with their IoU and where each
fires on the images of that class where it covers most of the defect; those overlays come from the engine, one batched
forward per class, computed off the server's threads like the analysis sections' answers (the newest request wins).
Per stage it shows how many detector units each class has across seeds.
"""

from __future__ import annotations

import base64
import io
import logging
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from PIL import Image

from pixel_evidence.dashboard.colours import FALSE_ALARM, HIT, hex_rgb
from pixel_evidence.dashboard.formatting import fmt, mean_std
from pixel_evidence.dashboard.host import SHARED
from pixel_evidence.dashboard.markup import plain
from pixel_evidence.dashboard.newest import Newest
from pixel_evidence.dashboard.pictures import grey, outline
from pixel_evidence.dashboard.state import DashboardState
from pixel_evidence.dashboard.summary.results import evaluate_command
from pixel_evidence.dissection.overlay import UnitOverlay
from pixel_evidence.dissection.table import (DETECTOR_IOU, DISSECTION_SUBDIR, ceiling_shares, detector_counts,
                                             read_dissection)
from pixel_evidence.engine.contract import Engine

log = logging.getLogger("pixel_evidence.dashboard")

TOP_UNITS = 3     # units shown per class
STRIP_IMAGES = 4  # images of the class in each unit's strip
THUMB = 128       # px per overlay


def overlay_png(image: np.ndarray, mask: np.ndarray, active: np.ndarray) -> str:
    """Dimmed grey image, the defect outlined in white, the unit's firing pixels on the defect in
    the hit colour and off it in the false-alarm colour, each as strong as the pixel fires
    (``active`` (H, W) in [0, 1]: pixels tied with the threshold fire by the unit's tie share);
    a PNG data URI of ``THUMB`` px."""
    out = grey(image, 0.55).astype(np.float64)
    out[outline(mask, max(1, mask.shape[0] // 112))] = (255, 255, 255)
    weight = np.asarray(active, np.float64)[..., None]
    colour = np.where(mask[..., None], np.array(hex_rgb(HIT), np.float64), np.array(hex_rgb(FALSE_ALARM), np.float64))
    out = out * (1 - weight) + colour * weight  # over the outline too: a thin crack is all outline
    picture = Image.fromarray(out.clip(0, 255).astype(np.uint8)).resize((THUMB, THUMB), Image.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def best_images(overlays: list[UnitOverlay], n: int = STRIP_IMAGES) -> list[UnitOverlay]:
    """The ``n`` overlays where the unit covers most of the defect (then most firing pixels,
    then the split's order): where a unit detects the class, if anywhere."""
    order = sorted(range(len(overlays)), key=lambda i: (-float((overlays[i].active * overlays[i].mask).sum()),
                                                        -float(overlays[i].active.sum()), i))
    return [overlays[i] for i in order[:n]]


def counts_html(counts: pd.DataFrame, at_ceiling: pd.Series) -> str:
    """Detector units per class (columns) and stage (rows), mean ± std over seeds, and the
    share of each stage's units whose threshold sits at their ceiling (``at_ceiling``)."""
    classes = sorted(counts["class"].unique())
    head = "".join(f"<th style='padding:4px 12px'>{plain(c)}</th>" for c in classes)
    rows = []
    for stage, part in counts.groupby("stage", sort=False):
        cells = {r["class"]: r for r in part.to_dict("records")}
        tds = "".join(f"<td style='padding:4px 12px;text-align:right'>{mean_std(cells[c]['mean'], cells[c]['std'])}"
                      "</td>" if c in cells else "<td></td>" for c in classes)
        n = int(part["n_seeds"].max())
        share = float(at_ceiling.get(stage, 0.0))
        ceiling = (f"<span class='pe-stage-at-max' style='color:#B34700'>⚠ {share:.0%} of units at their "
                   "ceiling</span>" if share > 0 else "")
        rows.append(f"<tr class='pe-detector-count' data-stage='{plain(stage)}'><th style='padding:4px 12px;"
                    f"text-align:left'>{plain(stage)}</th>{tds}<td style='color:#555;padding:4px 12px'>"
                    f"{n} seed{'s' if n != 1 else ''}</td><td style='padding:4px 12px'>{ceiling}</td></tr>")
    return (f"<table style='font-size:15px;border-collapse:collapse'><tr><th style='text-align:left;"
            f"padding:4px 12px'>stage</th>{head}<th></th><th></th></tr>{''.join(rows)}</table>")


def threshold_words(row: dict[str, Any]) -> str:
    """Where the unit fires, with a warning when its threshold is its own largest value."""
    if row["at_max"]:
        return (f"<span class='pe-unit-at-max' style='color:#B34700'>⚠ threshold at its ceiling "
                f"({row['threshold']:.3g}): fires on {row['tie_share']:.0%} of the pixels there</span>")
    return f"fires above {row['threshold']:.3g}"


def unit_row_html(cls: str, row: dict[str, Any], pictures: list[str], image_ids: list[str]) -> str:
    """One unit: its number, IoU, threshold and whether it is a detector, then its strip."""
    badge = ("<span style='background:#009E73;color:white;border-radius:4px;padding:1px 6px'>detector</span>"
             if row["detector"] else "<span style='color:#555'>below 0.04</span>")
    strip = "".join(f"<img src='{src}' width='{THUMB}' height='{THUMB}' title='{plain(i)}' "
                    f"style='margin-right:6px;border-radius:3px'>" for src, i in zip(pictures, image_ids))
    return (f"<div class='pe-unit-row' data-class='{plain(cls)}' data-unit='{int(row['unit'])}' "
            f"style='display:flex;align-items:center;gap:14px;margin:4px 0'>"
            f"<div style='width:190px;font-size:15px'><b>unit {int(row['unit'])}</b><br>IoU "
            f"<span class='pe-unit-iou'>{fmt(row['iou'])}</span> {badge}<br>"
            f"<span style='color:#555;font-size:13px'>{threshold_words(row)}</span></div>"
            f"<div>{strip}</div></div>")


class UnitsView(pn.viewable.Viewer):
    """Top units per defect class for the state's seed and the chosen stage, and the detector
    counts of every stage; a note with the command when there is no table."""

    shown = param.Tuple(default=None, allow_None=True, length=2, doc="(seed, stage) of the strips on screen")

    def __init__(self, state: DashboardState, engine: Engine, **params: Any):
        super().__init__(**params)
        self.state, self.engine = state, engine
        self.directory = Path(engine.pool.models_dir) / "results" / DISSECTION_SUBDIR
        self._requests = Newest(SHARED.analyse)
        self._problem = ""  # why the table cannot be read, when it cannot
        self.split = "test"
        self._counts = pn.pane.HTML("", sizing_mode="stretch_width")
        self._units = pn.Column(pn.pane.HTML(""), sizing_mode="stretch_width", min_height=80)
        self._stage = pn.widgets.Select(label="Stage", width=220)
        self._stage.param.watch(lambda _e: self.refresh(), "value")
        state.param.watch(lambda _e: self.refresh(), "seed")
        self._layout = pn.Column(sizing_mode="stretch_width", css_classes=["pe-units"])
        self.table = self._read()
        self._build()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _read(self) -> pd.DataFrame | None:
        try:
            return read_dissection(self.directory)
        except (ValueError, OSError, pd.errors.ParserError) as exc:
            self._problem = str(exc)
            return None

    def _build(self) -> None:
        intro = pn.pane.HTML(
            "<div style='font-size:14px;color:#333;max-width:1100px'>Network Dissection asks which single units "
            "(channels) of a stage fire on a defect class. A unit fires where its activation, upsampled to the "
            "image, is above its own 99.5th percentile over the split. Where that percentile is a value many "
            "positions share (a unit clamped at its ceiling, such as ReLU6's 6), the tied pixels share what is "
            "left of the unit's 0.5% and fire partly: drawn fainter, counted by that share. Its <b>IoU</b> with a "
            "class sums the "
            "overlap with that class's masks over all images and divides by the summed union (firing on other "
            f"images counts against it). A unit with IoU ≥ {DETECTOR_IOU} is a <b>detector</b> of the class. In "
            "the strips, the class's images where the unit covers most of the defect: "
            f"<span style='color:{HIT}'>■</span> the unit fires on the defect, "
            f"<span style='color:{FALSE_ALARM}'>■</span> off it, white: the defect's outline.</div>",
            sizing_mode="stretch_width")
        if self.table is None or self.table.empty:
            why = self._problem or f"No dissection table in {self.directory}."
            command = evaluate_command(self.engine).replace("pixel-evidence evaluate", "pixel-evidence dissect "
                                                            "--stage STAGE", 1)
            self._layout.objects = [intro, pn.pane.HTML(
                f"<div class='pe-units-missing' style='font-size:15px'>{plain(why)} Write it with "
                f"<code>{plain(command)}</code> (a stage name it does not know lists the network's stages)."
                "</div>")]
            return
        split = self.split = self.table["split"].iloc[0]
        of_split = self.table[self.table["split"] == split]
        self._counts.object = counts_html(detector_counts(of_split), ceiling_shares(of_split))
        self._layout.objects = [
            intro,
            pn.pane.HTML(f"<h3 style='margin:10px 0 2px 0'>Detector units per class, {plain(split)} split "
                         "(mean ± std over seeds)</h3>"), self._counts,
            pn.pane.HTML("<h3 style='margin:14px 0 2px 0'>The best units of each defect class</h3>"),
            self._stage, self._units]
        stages = list(dict.fromkeys(self.table["stage"]))
        self._stage.options = stages
        self._stage.value = stages[-1]  # the last block (the Grad-CAM layer's, by default): draws its strips

    def refresh(self) -> None:
        """Draw the strips of the state's seed and the chosen stage; returns without waiting."""
        if self.table is None or not self._stage.value:
            return
        pn.state.execute(partial(self._fetch, self._requests.ask(), int(self.state.seed), self._stage.value))

    async def _fetch(self, number: int, seed: int, stage: str) -> None:
        self._units.loading = True
        try:
            body = await self._requests.wait(number, self._strips, seed, stage)
        except Exception as exc:  # noqa: BLE001 - shown to the user, logged for the operator
            log.exception("unit overlays of seed %s %s failed", seed, stage)
            body = f"<div style='color:#B34700;font-size:15px'>Could not draw the units: {plain(str(exc))}</div>"
        if not self._requests.is_newest(number):
            return  # the user moved on
        self._units.objects = [pn.pane.HTML(body, sizing_mode="stretch_width")]
        self._units.loading = False
        self.shown = (seed, stage)

    def _strips(self, seed: int, stage: str) -> str:
        rows = self.table[(self.table["seed"] == seed) & (self.table["stage"] == stage)
                          & (self.table["split"] == self.split)]
        if rows.empty:
            return (f"<div style='font-size:15px'>Seed {seed} has no dissection of {plain(stage)}: run "
                    f"<code>pixel-evidence dissect --stage {plain(stage)} --seeds {seed}</code></div>")
        parts = []
        for cls, part in rows.groupby("class"):
            top = part.sort_values(["iou", "unit"], ascending=[False, True]).head(TOP_UNITS).to_dict("records")
            # the table's thresholds have 6 significant digits: a pixel within 1e-6 of T_k may differ
            # (a threshold at a bounded unit's ceiling, such as ReLU6's 6, is exact)
            overlays = self.engine.dissector.overlays(seed, stage, [int(r["unit"]) for r in top],
                                                      [float(r["threshold"]) for r in top],
                                                      [float(r["tie_share"]) for r in top],
                                                      self.engine.catalogue.image_ids(self.split, cls))
            units = "".join(unit_row_html(cls, r, [overlay_png(o.image, o.mask, o.active) for o in strip],
                                          [o.image_id for o in strip])
                            for r, strip in zip(top, map(best_images, overlays)))
            parts.append(f"<h4 style='margin:12px 0 4px 0'>{plain(cls)}</h4>{units}")
        return "".join(parts)

"""Pictures that show what the numbers use: heatmap scaling, one colour per method in every
view, the opening image's rule, progress and cancelling of slow work, the data set's bar."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

# ----------------------------------------------------------------------------- heatmap scaling


def _rise_like_map(rng: np.random.Generator, offset: float) -> np.ndarray:
    """A map on a high baseline (every pixel an average probability) with a tight blob."""
    m = offset + 0.02 * rng.random((64, 64))
    m[20:28, 30:38] += 0.3
    return m.astype(np.float32)


def test_heatmap_picture_ignores_a_constant_offset_and_shows_the_blob():
    from pixel_evidence.dashboard.pictures import display_scale

    rng = np.random.default_rng(0)
    low = _rise_like_map(rng, 0.0)
    high = low + np.float32(0.9)  # the same map on a high baseline
    shown_low, _ = display_scale(low)
    shown_high, (lo, hi) = display_scale(high)
    # float32 map values near 1.2 carry ~1e-7 relative error; stretched over a range of ~0.3,
    # that is ~1e-6 in the picture: 1e-5 leaves room and still catches any real difference
    np.testing.assert_allclose(shown_high, shown_low, atol=1e-5)
    assert (lo, hi) == pytest.approx((np.percentile(high, 1), np.percentile(high, 99.5)), rel=1e-6)
    blob = np.zeros(high.shape, bool)
    blob[20:28, 30:38] = True
    # the baseline is dark and the blob bright, where dividing by the 99.5th percentile alone
    # leaves the baseline at 0.9 / 1.2: a uniform wash
    assert shown_high[~blob].mean() < 0.1 and shown_high[blob].mean() > 0.9
    assert np.clip(high / np.percentile(high, 99.5), 0, 1)[~blob].mean() > 0.7
    # a positive factor changes nothing either, like the top K
    np.testing.assert_allclose(display_scale(high * 3)[0], shown_high, atol=1e-5)


def test_heatmap_scaling_edge_cases():
    from pixel_evidence.dashboard.pictures import display_scale

    flat = np.full((10, 10), 4.0, np.float32)
    assert not display_scale(flat)[0].any()
    spike = np.zeros((50, 50), np.float32)
    spike[3, 4] = 2.0  # the percentiles meet: the extremes serve
    shown, (lo, hi) = display_scale(spike)
    assert (lo, hi) == (0.0, 2.0) and shown[3, 4] == 1.0 and shown.sum() == 1.0


# ----------------------------------------------------------------------------- method colours


def _lab(colour: str) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB hex colour, written out from the standard's formulas."""
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ lin
    f = np.cbrt(xyz / np.array([0.95047, 1.0, 1.08883]))
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_every_method_has_its_own_colour_and_dash():
    from pixel_evidence.dashboard.colours import line_styles
    from pixel_evidence.methods import method_labels

    labels = method_labels()
    assert len(labels) >= 12
    styles = line_styles(labels)
    colours = [c for c, _ in styles.values()]
    assert len(set(colours)) == len(labels)
    # ΔE*76 of about 2.3 is just noticeable side by side; lines in a legend need far more.
    # 20 keeps every pair plainly apart (the palette's closest pair is at 22)
    closest = min(np.linalg.norm(_lab(a) - _lab(b)) for a, b in itertools.combinations(colours, 2))
    assert closest >= 20
    # the dash tells the closest pairs apart a second way
    for (la, (ca, da)), (lb, (cb, db)) in itertools.combinations(styles.items(), 2):
        if np.linalg.norm(_lab(ca) - _lab(cb)) < 30:
            assert da != db, (la, lb)


def test_the_colour_maps_are_matplotlibs_without_importing_it():
    """The page's colour maps come from Bokeh, so a first view never waits for matplotlib to
    import (0.4 s). inferno, RdBu and Blues are matplotlib's maps within one unit per channel;
    Bokeh's cividis is another version of that map than matplotlib's (up to 23 units apart), so
    it is checked for what it is for: lightness that only rises, from dark blue to yellow."""
    import subprocess
    import sys
    from pathlib import Path

    from matplotlib import colormaps

    from pixel_evidence.dashboard.colours import palette

    probe = ("import sys\nfrom pixel_evidence.dashboard.colours import palette\n"
             "for name in ('inferno', 'cividis', 'RdBu', 'Blues'): palette(name)\n"
             "print('matplotlib' in sys.modules)\n")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.stdout.strip() == "False"

    def rgb(colours):
        return np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in colours])

    for name in ("inferno", "RdBu", "Blues"):
        theirs = np.round(colormaps[name](np.arange(256))[:, :3] * 255)  # the map's own 256-entry table
        assert np.abs(rgb(palette(name)) - theirs).max() <= 1, name
    lightness = np.array([_lab(c)[0] for c in palette("cividis")])
    assert np.all(np.diff(lightness) >= 0) and lightness[-1] - lightness[0] > 70
    assert len(palette("RdBu", 11)) == 11
    with pytest.raises(ValueError, match="unknown colour map 'jet'"):
        palette("jet")


def test_a_method_has_the_same_colour_in_every_view(dash):
    import re

    from pixel_evidence.dashboard.colours import line_styles

    labels = dict(dash.catalogue.method_labels)
    styles = line_styles(labels)
    ex = dash.store.explanation
    for key, row in dash.image_view._rows.items():  # the card's swatch
        colour = re.search(r'data-colour="([^"]+)"', row.card.object).group(1)
        assert colour == styles[labels[key]][0]
    assert dash.analysis.faithfulness.styles == styles  # the per-image charts
    for label, colour in dash.results.colours.items():  # the summary's boxes and bars
        if label in styles:
            assert colour == styles[label][0]
    # and a method keeps its colour whichever others are on screen
    dash.state.methods = ["ig"]
    ig = dash.image_view._rows["ig"].card.object
    assert f'data-colour="{styles[ex.methods["ig"].label][0]}"' in ig


# ----------------------------------------------------------------------------- opening image


def _rows(image_id, seed, tkos, *, k=10, correct=True, split="test"):
    return [{"seed": seed, "split": split, "image_id": image_id, "method": m, "tko": t, "k": k, "correct": correct}
            for m, t in tkos.items()]


def test_the_opening_image_is_the_largest_spread_between_the_methods():
    from pixel_evidence.dashboard.catalogue import opening_image

    methods = ("gradcam", "saliency", "ig")
    table = pd.DataFrame(
        _rows("a", 42, {"gradcam": 0.5, "saliency": 0.4, "ig": 0.45})             # spread 0.1
        + _rows("b", 42, {"gradcam": 0.0, "saliency": 0.7, "ig": 0.2})            # spread 0.7: the one
        + _rows("c", 42, {"gradcam": 0.0, "saliency": 0.9, "ig": 0.0}, correct=False)  # misclassified
        + _rows("d", 43, {"gradcam": 0.0, "saliency": 1.0, "ig": 0.0})            # another seed
        + _rows("e", 42, {"gradcam": 0.0, "saliency": 0.0, "ig": 0.0}, k=0)       # a good image
        + _rows("f", 42, {"gradcam": 0.0, "saliency": 0.95, "ig": 0.0}, split="train")
        + _rows("g", 42, {"gradcam": 0.0, "saliency": 0.99}))                     # a method missing
    known = dict.fromkeys("abcdefg")
    assert opening_image(table, 42, methods, known) == "b"
    assert opening_image(table, 42, methods, {"a": 0}) == "a"  # ids the data does not have are skipped
    assert opening_image(None, 42, methods, known) == ""
    assert opening_image(table, 7, methods, known) == ""


def test_a_link_that_names_a_place_opens_what_it_always_opened(engine):
    import dataclasses

    from pixel_evidence.dashboard.host import engine_catalogue
    from pixel_evidence.dashboard.state import DashboardState

    cat = engine_catalogue(engine)
    opening = engine.catalogue.image_ids("test", "hole")[-1]
    cat = dataclasses.replace(cat, opening=opening)
    state = DashboardState(cat)
    state.open_link({})
    assert state.image_id == opening
    for query, expected in (({"class": "crack"}, engine.catalogue.image_ids("test", "crack")[0]),
                            ({"split": "test"}, engine.catalogue.image_ids("test", "crack")[0]),
                            ({"image": engine.catalogue.image_ids("test", "hole")[0]},
                             engine.catalogue.image_ids("test", "hole")[0])):
        state = DashboardState(cat)
        state.open_link(query)
        assert state.image_id == expected, query
    state = DashboardState(cat)
    state.open_link({"seed": str(engine.pool.seeds[1])})  # a link without a place: the opening image
    assert (state.image_id, state.seed) == (opening, engine.pool.seeds[1])


# ----------------------------------------------------------------------------- progress


def test_the_randomization_check_reports_its_maps_and_stops_when_cancelled(engine):
    from pixel_evidence.progress import Cancelled, Progress, reporting

    ex = engine.explain(engine.pool.seeds[0], engine.catalogue.image_ids("test", "crack")[1], methods=("gradcam",))
    stages = len(engine.pool.network(ex.seed)[0].randomization_order())
    seen = []
    progress = Progress(on_change=lambda p: seen.append((p.done, p.total)))
    stop = Progress()
    stop.cancel()
    with reporting(stop), pytest.raises(Cancelled):
        engine.sanity(ex)
    with reporting(progress):  # a cancelled run left nothing half-done in the cache
        result = engine.sanity(ex)
    assert len(result["gradcam"].steps) == stages
    assert (progress.done, progress.total) == (stages, stages)
    assert seen[0] == (0, stages) and seen[-1] == (stages, stages)
    assert progress.remaining_s() == 0.0


def test_rise_reports_its_forwards_and_stops_between_chunks():
    import torch

    from pixel_evidence.explainers.rise import RISE
    from pixel_evidence.progress import Cancelled, Progress, reporting

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    rise = RISE(net, n_masks=40, batch_size=16, grid=2)
    x, t = torch.rand(2, 3, 8, 8), torch.tensor([0, 1])
    progress = Progress()
    with reporting(progress):
        rise.attribute(x, t)
    assert (progress.done, progress.total) == (80, 80)  # 40 masked copies of each of 2 images

    def stop_after_first(p: Progress) -> None:
        if p.done:
            p.cancel()

    stopping = Progress(on_change=stop_after_first)
    with reporting(stopping), pytest.raises(Cancelled):
        rise.attribute(x, t)
    assert stopping.done == 16  # one chunk, then the next report stopped it


def test_cancelling_a_slow_method_shows_the_image_without_it(dash, monkeypatch):
    from pixel_evidence.progress import Progress

    def cancel_at_once(self, n: int = 1) -> None:  # the user presses Cancel at the first report
        self.cancel()
        Progress._report(self, done=n)

    monkeypatch.setattr(Progress, "advance", cancel_at_once)
    dash.state.methods = ["gradcam", "rise"]
    assert dash.state.methods == ["gradcam"]
    assert dash.store.explanation is not None and list(dash.store.explanation.methods) == ["gradcam"]
    assert "Stopped computing RISE" in dash.image_view._stopped.object and dash.image_view._stopped.visible
    assert dash.store.tracker is None and not dash.image_view._progress._layout.visible
    dash.state.step(1)  # the next request: the note has done its job
    assert not dash.image_view._stopped.visible


def test_progress_line_words():
    from pixel_evidence.dashboard.progress_note import progress_html

    text = progress_html("Computing RISE", 320, 1000, "forwards", 25.4)
    assert "320 / 1,000 forwards" in text and "about 25 s left" in text
    assert "about 2.5 min left" in progress_html("x", 1, 2, "maps", 150)


def test_generating_the_data_set_shows_a_bar(tmp_path, capsys):
    from pixel_evidence.data.synthetic import _write_set

    _write_set(tmp_path / "set", 0, 3, 1, 1, 32, progress=True)
    n = 3 + 1 + 4  # train good, test good, one per defect class
    err = capsys.readouterr().err
    assert "generating the built-in data set" in err and f"{n}/{n}" in err


def test_the_default_pane_sizes_are_those_of_a_1366_by_768_window():
    """The page draws at DEFAULT until it reports its window: the common laptop's."""
    from pixel_evidence.dashboard.sizes import DEFAULT, pane_sizes

    assert pane_sizes(1366, 768) == DEFAULT == pane_sizes(0, 0)

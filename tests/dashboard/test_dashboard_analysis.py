"""The per-image tab's analysis section on a real engine (tiny models from ``tiny_run``):
slow-method labels and warning, agreement matrix, deletion / insertion curves, the
randomization check, and that answers for an image the user has left are never shown.
"""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")

WAIT = 300  # seconds: a cap for a broken view, not a pace (CI runs at load 10+ on 2 cores)


def _spans(html_text: str, css: str) -> dict[tuple[str, ...], str]:
    """{(data-method, data-mode?): text} of the ``<span class=css ...>`` elements of a table."""
    out = {}
    for attrs, text in re.findall(rf'<span class="{css}" ([^>]*)>([^<]*)</span>', html_text):
        keys = dict(re.findall(r'data-([a-z]+)="([^"]*)"', attrs))
        out[tuple(v for k, v in keys.items() if k in ("method", "mode"))] = text
    return out


def _trapezoid(xs, ys) -> float:
    """Area under the polyline through (xs, ys), written out here: the engine's own
    ``curve_auc`` made the number under test."""
    points = list(zip(map(float, xs), map(float, ys)))
    return sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(points, points[1:]))


# ----------------------------------------------------------------------------- slow methods


def test_slow_methods_are_labelled_in_the_sidebar(dash):
    from pixel_evidence.explainers import REGISTRY

    slow = {k for k, cls in REGISTRY.items() if cls.slow}
    assert slow, "the registry should have perturbation methods"
    options = dash.controls["methods"].options
    assert set(options.values()) == set(REGISTRY)
    for label, key in options.items():
        assert label == (f"{REGISTRY[key].label} (slow)" if key in slow else REGISTRY[key].label)
    # the state and the URL keep plain keys; typed names are still understood
    cat = dash.catalogue
    rise = REGISTRY["rise"].label
    assert cat.parse_methods(f"{rise},rise,{rise.lower()} (slow),gradcam") == (["rise", "gradcam"], [])
    assert cat.parse_methods(["Grad-CAM++", "bogus"]) == (["gradcam_pp"], ["bogus"])
    dash.state.apply_query({"methods": f"{rise} (slow),saliency"})
    assert dash.state.methods == ["rise", "saliency"]
    assert dash.state.to_query()["methods"] == "rise,saliency"


def test_slow_warning_names_exactly_the_slow_methods(dash, engine):
    from pixel_evidence.dashboard.image_html import slow_warning_html
    from pixel_evidence.explainers import REGISTRY

    view = dash.image_view
    assert not view._slow.visible  # the default methods are all quick
    slow = [k for k, cls in REGISTRY.items() if cls.slow]
    quick = [k for k, cls in REGISTRY.items() if not cls.slow]
    dash.state.methods = ["gradcam", "occlusion"]
    assert view._slow.visible and "pe-slow-warning" in view._slow.css_classes
    text = view._slow.object
    assert "Occlusion" in text and REGISTRY["occlusion"].cost_note in text and "Grad-CAM" not in text
    assert "perturbation method" in text and "hundreds of forward passes" in text and "seconds" in text
    assert list(dash.store.explanation.methods) == ["gradcam", "occlusion"]
    # every method at once: each slow one named with its cost, no quick one named
    everything = slow_warning_html(dash.catalogue, list(REGISTRY))
    named = set(re.findall(r"<li><b>([^<]+)</b>", everything))
    assert named == {REGISTRY[k].label for k in slow}
    assert all(REGISTRY[k].cost_note in everything for k in slow)
    assert slow_warning_html(dash.catalogue, quick) == ""
    dash.state.methods = ["saliency"]
    assert not view._slow.visible


# ----------------------------------------------------------------------------- agreement


def test_agreement_matrix_equals_the_metrics(dash, engine):
    from holoviews.plotting.util import process_cmap

    from pixel_evidence import metrics
    view = dash.analysis.agreement
    assert view.answer.future.result(WAIT)
    ex = dash.store.explanation
    labels = {k: r.label for k, r in ex.methods.items()}
    independent = {"pearson": metrics.pearson, "spearman": metrics.spearman,
                   "top_iou": lambda a, b: metrics.top_fraction_iou(a, b, 0.2)}
    cell = re.compile(r'data-a="([^"]+)" data-b="([^"]+)" style="background:(#\w+);[^"]*">([^<]*)</td>')
    for metric, fn in independent.items():
        dash.state.agreement = metric  # the shared state drives the matrix (and the URL)
        assert view._metric.value == metric
        assert view._matrix.visible
        cells = {(a, b): (colour, text) for a, b, colour, text in cell.findall(view._matrix.object)}
        assert len(cells) == len(labels) ** 2
        top = process_cmap("Blues" if metric == "top_iou" else "RdBu", ncolors=256)[-1]  # the colour of 1
        for ka, la in labels.items():
            for kb, lb in labels.items():
                expected = 1.0 if ka == kb else fn(ex.methods[ka].map, ex.methods[kb].map)
                colour, text = cells[(la, lb)]
                if np.isnan(expected):
                    assert text == "—" and colour == "#dddddd", (metric, la, lb)
                else:
                    assert text == f"{expected:.2f}", (metric, la, lb)
                if ka == kb:  # a map agrees with itself: the top of the shared scale
                    assert colour == top, (metric, la)
    assert "pe-agreement" in view._layout.css_classes


def test_one_agreement_measure_for_both_views(dash):
    """The per-image matrix and the summary heatmap share the state's measure: choosing it in
    either view moves the other, and the measure is part of the page URL."""
    per_image, summary = dash.analysis.agreement._metric, dash.summary.agreement._stat_select
    assert per_image.value == summary.value == dash.state.agreement == "spearman"
    per_image.value = "top_iou"
    assert dash.state.agreement == summary.value == "top_iou"
    summary.value = "pearson"
    assert dash.state.agreement == per_image.value == "pearson"
    assert dash.state.to_query()["agreement"] == "pearson"


def test_agreement_follows_the_image_and_needs_two_methods(dash, engine):
    from pixel_evidence import metrics
    view = dash.analysis.agreement
    dash.state.step(1)
    assert view.answer.future.result(WAIT)
    ex = dash.store.explanation
    assert (view.pairs[0]["a"], view.pairs[0]["b"]) == ("gradcam", "saliency")
    for row in view.pairs:  # a Grad-CAM map that is all zero has no rank correlation: NaN on both sides
        expected = metrics.spearman(ex.methods[row["a"]].map, ex.methods[row["b"]].map)
        assert row["spearman"] == pytest.approx(expected, nan_ok=True), (row["a"], row["b"])
    assert any(np.isfinite(row["spearman"]) for row in view.pairs)
    dash.state.methods = ["ig"]
    assert view.pairs is None and not view._matrix.visible
    assert "two or more methods" in view._note.object


def test_going_back_to_an_image_reuses_its_agreement(dash, monkeypatch):
    from pixel_evidence.engine.explanation import Explanation

    view = dash.analysis.agreement
    assert view.answer.future.result(WAIT)
    ranked = []
    original = Explanation.agreement

    def counted(self, *args, **kwargs):
        ranked.append(self.image_id)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Explanation, "agreement", counted)
    first = dash.store.explanation.image_id
    dash.state.step(1)
    assert view.answer.future.result(WAIT)
    second = dash.store.explanation.image_id
    dash.state.step(-1)  # back: the matrix is shown again without ranking the maps again
    assert view.answer.future.result(WAIT) and view._matrix.visible
    assert ranked.count(second) <= 1 and first not in ranked


# ----------------------------------------------------------------------------- faithfulness


def test_faithfulness_table_and_charts_equal_the_engine(dash, engine):
    from pixel_evidence.dashboard.colours import method_colours

    view = dash.analysis.faithfulness
    assert view.result is None and "Not computed" in view._status.object
    for start in ("black", "blur"):
        view.start = start
        assert view.result is None and view._table.object == ""  # a new choice clears the old curves
        assert view.compute().result(WAIT) is True
        ex = dash.store.explanation
        expected = engine.faithfulness(ex, start=start, steps=20)
        shown = _spans(view._table.object, "pe-auc")
        assert set(shown) == {(m, mode) for m in ex.methods for mode in ("deletion", "insertion")}
        for m, modes in expected.items():
            for mode, curve in modes.items():
                assert curve.start == start and len(curve.fractions) == 21
                assert curve.auc == pytest.approx(_trapezoid(curve.fractions, curve.probabilities))
                assert shown[(m, mode)] == f"{curve.auc:.3f}"
        # one chart per mode, one line per method in its dashboard colour, AUC in the legend
        colours = method_colours(dict(engine.method_labels()))
        assert view._charts.visible
        charts = [p.object for p in view._plots]
        assert len(charts) == 2
        for chart, mode in zip(charts, ("deletion", "insertion")):
            lines = list(chart)
            assert len(lines) == len(ex.methods)
            for line, (m, r) in zip(lines, ex.methods.items()):
                curve = expected[m][mode]
                assert line.label == f"{r.label} (AUC {curve.auc:.3f})"
                np.testing.assert_allclose(line.dimension_values(1), curve.probabilities)
                assert line.opts.get().kwargs["color"] == colours[r.label]
    # the best method of each mode is starred
    best_del = min(expected, key=lambda m: expected[m]["deletion"].auc)
    assert re.search(rf'data-method="{best_del}" data-mode="deletion">[^<]*</span> ★', view._table.object)


def test_removing_a_method_keeps_the_others_curves(dash, engine, monkeypatch):
    """The curves already computed for the remaining methods stay on screen, without
    another press and without asking the engine again; adding a method back asks anew."""
    view = dash.analysis.faithfulness
    assert view.compute().result(WAIT) is True
    before = dict(view.result)
    asked = []
    real = engine.faithfulness
    monkeypatch.setattr(engine, "faithfulness", lambda *a, **k: asked.append(a) or real(*a, **k))
    dash.state.methods = ["gradcam", "ig"]
    assert set(view.result) == {"gradcam", "ig"} and not asked
    for m in ("gradcam", "ig"):
        assert view.result[m] is before[m]
    shown = _spans(view._table.object, "pe-auc")
    assert {m for m, _mode in shown} == {"gradcam", "ig"} and view._charts.visible
    assert "Not computed" not in view._status.object
    assert len(list(view._plots[0].object)) == 2  # a line per remaining method
    dash.state.methods = ["gradcam", "ig", "saliency"]  # a new method has no curves yet
    assert view.result is None and "Not computed" in view._status.object


def test_curves_of_another_image_are_never_shown(dash, engine, monkeypatch):
    view = dash.analysis.faithfulness
    first = dash.store.explanation
    gate = threading.Event()
    asked = []
    original = engine.faithfulness

    def slow_faithfulness(ex, **kwargs):
        asked.append(ex.image_id)
        assert gate.wait(WAIT)
        return original(ex, **kwargs)

    monkeypatch.setattr(engine, "faithfulness", slow_faithfulness)
    pending = view.compute()
    assert view._box.loading and "Computing" in view._status.object
    dash.state.step(1)  # the user moves on while the curves are computed
    second = dash.store.explanation
    assert second.image_id != first.image_id
    assert not view._box.loading and "Not computed" in view._status.object
    gate.set()
    assert pending.result(WAIT) is False  # the answer came, and was dropped
    assert asked == [first.image_id]
    assert view.result is None and view._table.object == ""
    assert not view._charts.visible

    # the current image's curves are shown, and cleared as soon as the target changes
    assert view.compute().result(WAIT) is True
    assert asked[-1] == second.image_id and set(view.result) == set(second.methods)
    dash.state.target = "true"
    assert view.result is None and view._table.object == ""

    # pressed twice: only the newest answer is drawn
    gate.clear()
    older = view.compute()
    gate.set()
    newer = view.compute()
    assert newer.result(WAIT) is True and older.result(WAIT) is False


def test_a_failure_is_shown_not_raised(dash, engine, monkeypatch):
    def broken(*_a, **_k):
        raise RuntimeError("model on fire")

    monkeypatch.setattr(engine, "faithfulness", broken)
    view = dash.analysis.faithfulness
    assert view.compute().result(WAIT) is False
    assert "model on fire" in view._status.object and view.result is None
    assert not view._box.loading


# ----------------------------------------------------------------------------- sanity check


def test_sanity_verdicts_equal_the_engine(dash, engine):
    from pixel_evidence.dashboard.analysis_charts import FAIL_TEXT, PASS_TEXT
    from pixel_evidence.dashboard.formatting import fmt
    from pixel_evidence.metrics import SANITY_PASS_THRESHOLD as PASS_THRESHOLD

    view = dash.analysis.sanity
    assert "Slow" in view._guide.object and "10 map computations per method" in view._guide.object
    assert view.compute().result(WAIT) is True
    ex = dash.store.explanation
    expected = engine.sanity(ex)
    assert set(expected) == set(ex.methods) == set(view.result)
    table = view._table.object
    verdicts = {m: (p, t) for m, p, t in re.findall(
        r'class="pe-sanity-verdict" data-method="(\w+)" data-passed="(\w+)"[^>]*>([^<]*)<', table)}
    rhos = _spans(table, "pe-sanity-rho")
    for m, res in expected.items():
        assert res.steps[0].layer == "classifier" and res.steps[-1].layer == "encoder.0"
        passed = abs(res.steps[-1].spearman) < PASS_THRESHOLD
        assert res.passed == passed
        assert verdicts[m] == (str(passed).lower(), PASS_TEXT if passed else FAIL_TEXT)
        assert rhos[(m,)] == fmt(res.steps[-1].spearman)
    # the depth chart: one line per method through every randomization step
    lines = [el for el in view._plots[0].object if el.label in {r.label for r in ex.methods.values()}]
    assert len(lines) == len(ex.methods)
    for line, (m, res) in zip(lines, expected.items()):
        np.testing.assert_allclose(line.dimension_values(1), [s.spearman for s in res.steps])
    dash.state.step(1)
    assert view.result is None and view._table.object == "" and not view._charts.visible


def test_chart_panes_build_and_tear_down_plots_behind_the_charts_lock(monkeypatch):
    """Panel turns a chart into a Bokeh plot when its tab is first shown, and tears the plot
    down when the session ends, on threads of its own: HoloViews is not thread-safe, so both
    must hold CHARTS_LOCK (another thread cannot take it meanwhile)."""
    import threading

    from panel.pane import HoloViews

    from pixel_evidence.dashboard.charts import CHARTS_LOCK, ChartPane, hv

    held: list[str] = []

    def lock_is_held(step: str) -> None:
        taken: list[bool] = []
        other = threading.Thread(target=lambda: taken.append(CHARTS_LOCK.acquire(blocking=False)))
        other.start()
        other.join()
        if taken[0]:
            CHARTS_LOCK.release()
        else:
            held.append(step)

    render, cleanup = HoloViews._render, HoloViews._cleanup
    monkeypatch.setattr(HoloViews, "_render", lambda self, *a: (lock_is_held("build"), render(self, *a))[1])
    monkeypatch.setattr(HoloViews, "_cleanup", lambda self, *a: (lock_is_held("tear down"), cleanup(self, *a))[1])
    pane = ChartPane(hv().Curve([(0, 0), (1, 1)]))
    root = pane.get_root()
    pane._cleanup(root)
    assert held == ["build", "tear down"]

"""The dashboard's Viewer classes on a real engine (tiny models from the ``tiny_run`` fixture).

No browser here (see tests/browser/): the views are driven through their state object
and inspected as Python objects.
"""

from __future__ import annotations

import ast
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.layout_trees import make_mvtec_tree

# Bokeh's own DataFrame handling (Tabulator sources) trips a pandas deprecation: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")

ROOT = Path(__file__).resolve().parents[2]
WAIT = 300  # seconds: a cap for a broken view or store, not a pace (CI runs at load 10+ on 2 cores)
DASHBOARD = ROOT / "pixel_evidence" / "dashboard"


@pytest.fixture(scope="module")
def evaluated(tiny_run, tmp_path_factory):
    """A copy of the tiny models with evaluation results beside them (``<models>/results``)."""
    from pixel_evidence.engine.explain import ExplanationEngine
    from pixel_evidence.evaluate import evaluate

    root, models, *_ = tiny_run
    copy = tmp_path_factory.mktemp("evaluated") / "models"
    shutil.copytree(models, copy)
    eng = ExplanationEngine(root, copy, device="cpu", method_params={"ig": {"n_steps": 4}})
    evaluate(eng, copy / "results", progress=False)
    yield eng
    eng.close()


class Spy:
    """Wraps ``pixel_evidence.engine.explain`` on one engine instance and records its calls."""

    def __init__(self, engine, monkeypatch):
        self.calls = []
        original = engine.explain

        def explain(seed, image_id, *, split=None, methods=("gradcam", "saliency", "ig"), target="predicted"):
            self.calls.append((seed, split, image_id, tuple(methods), target))
            return original(seed, image_id, split=split, methods=methods, target=target)

        monkeypatch.setattr(engine, "explain", explain)


def test_default_state_shows_a_defect_image(dash, engine):
    s = dash.state
    assert s.seed == engine.pool.seeds[0]
    assert s.split == "test"
    assert s.image_class == "crack"  # the first defect class, not "good"
    assert s.image_id == engine.catalogue.image_ids("test", "crack")[0]
    assert s.methods == ["gradcam", "saliency", "ig"]
    assert s.target == "predicted" and s.tab == "image"
    ex = dash.store.explanation
    assert ex is not None and ex.image_id == s.image_id and ex.rankable
    assert dash.store.error == ""
    # the widgets carry the labels the issue asks for
    import panel as pn

    names = {w.label for w in dash.controls.values() if isinstance(w, pn.widgets.Widget)}
    assert {"Seed", "Split", "Class", "Image", "Methods", "Target"} <= names
    options = dash.controls["methods"].options  # slow methods read "RISE (slow)": see test_dashboard_analysis.py
    assert {label.removesuffix(" (slow)"): key for label, key in options.items()} == {
        label: key for key, label in engine.method_labels().items()}
    i, n = s.position
    assert (i, n) == (1, len(engine.catalogue.image_ids("test", "crack")))
    assert f"{i} / {n}" in dash.controls["count"].object
    assert engine.warnings == [] and not dash.engine_warnings.visible
    # the seed's model, named under the seed selector, follows the seed
    assert "efficientnet_lite0, multitask, partial · 64 px" in dash.controls["model"].object
    s.seed = engine.pool.seeds[1]
    assert "efficientnet_lite0, multitask, partial · 64 px" in dash.controls["model"].object


def test_engine_warnings_are_shown_escaped(tiny_run, tmp_path):
    """A seed left out (unfinished) and data changed since training: the page says so, as text
    (the paths in these lines hold markup characters here)."""
    from PIL import Image

    from pixel_evidence.dashboard.app import create_app
    from pixel_evidence.dashboard.markup import plain
    from pixel_evidence.engine.explain import ExplanationEngine

    root, models, *_ = tiny_run
    data = shutil.copytree(root, tmp_path / "data <b>")
    changed = data / "train" / "good" / "000.png"
    Image.open(changed).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(changed)
    copy = shutil.copytree(models, tmp_path / "models <i>")
    (copy / "seed_99.pt").write_bytes(b"an interrupted run")
    eng = ExplanationEngine(data, copy, device="cpu", method_params={"ig": {"n_steps": 4}})
    try:
        assert len(eng.warnings) == 2 and any("seed 99" in w for w in eng.warnings)
        pane = create_app(engine=eng).dashboard.engine_warnings
    finally:
        eng.close()
    assert pane.visible
    for line in eng.warnings:
        assert plain(line) in pane.object
    assert "data <b>" not in pane.object and "<i>" not in pane.object


def test_parameter_changes_call_the_engine(engine, monkeypatch):
    from pixel_evidence.dashboard.app import create_app

    spy = Spy(engine, monkeypatch)
    dash = create_app(engine=engine).dashboard
    s = dash.state
    first = spy.calls[-1]
    assert first == (s.seed, "test", s.image_id, ("gradcam", "saliency", "ig"), "predicted")

    s.step(1)
    assert spy.calls[-1][2] == engine.catalogue.image_ids("test", "crack")[1]
    assert dash.store.explanation.image_id == s.image_id

    s.target = "true"
    assert spy.calls[-1][4] == "true"
    assert dash.store.explanation.target_mode == "true"

    s.methods = ["saliency"]
    assert spy.calls[-1][3] == ("saliency",)
    assert list(dash.store.explanation.methods) == ["saliency"]
    assert len(dash.image_view._methods_col.objects) == 1

    s.seed = engine.pool.seeds[1]
    assert spy.calls[-1][0] == engine.pool.seeds[1]
    assert dash.store.explanation.seed == engine.pool.seeds[1]

    n = len(spy.calls)
    s.tab = "summary"  # no new computation for a tab switch
    assert len(spy.calls) == n


def test_class_change_resets_the_image(dash, engine):
    s = dash.state
    s.image_class = "hole"
    assert s.image_id == engine.catalogue.image_ids("test", "hole")[0]
    assert dash.store.explanation.image_id == s.image_id
    assert dash.store.explanation.true_class == "hole"
    s.split = "train"
    assert s.image_class == "hole" and s.image_id == engine.catalogue.image_ids("train", "hole")[0]
    assert s.param.image_id.objects == engine.catalogue.image_ids("train", "hole")


def test_previous_and_next_wrap_around(dash, engine):
    s = dash.state
    ids = engine.catalogue.image_ids("test", "crack")
    s.step(-1)
    assert s.image_id == ids[-1]
    assert dash.controls["count"].object.count(f"{len(ids)} / {len(ids)}") == 1
    s.step(1)
    assert s.image_id == ids[0]


def test_invalid_url_values_fall_back_with_a_notice(dash, engine):
    s = dash.state
    notes = s.apply_query({"seed": "999", "class": "scratch", "image": "no-such-image", "methods": "gradcam,bogus",
                           "target": "sideways", "tab": "nope", "score": "loudness", "agreement": "vibes",
                           "mode": "cinema"})
    # the default seed (the first), not the one nearest to 999 (the last)
    assert len(engine.pool.seeds) > 1 and s.seed == engine.pool.seeds[0]
    assert s.mode == "standard"
    assert s.image_class in engine.catalogue.classes
    assert s.image_id in engine.catalogue.image_ids(s.split, s.image_class)
    assert s.methods == ["gradcam"] and s.target == "predicted" and s.tab == "image" and s.score == "tko"
    assert s.agreement == "spearman"
    text = " ".join(notes)
    for word in ("999", "no-such-image", "bogus", "sideways", "nope", "loudness", "vibes", "cinema"):
        assert word in text
    assert dash.notice.visible and "no-such-image" in dash.notice.object
    assert dash.store.explanation.image_id == s.image_id
    s.step(1)  # the next user action clears the notices
    assert not dash.notice.visible


URL_KEYS = ("seed", "split", "class", "image", "methods", "target", "tab", "score", "agreement", "mode")
INJECTED = "<img src=x onerror=alert(1)>"


def _fresh_state(engine):
    from pixel_evidence.dashboard.host import engine_catalogue
    from pixel_evidence.dashboard.state import DashboardState

    return DashboardState(engine_catalogue(engine))


def test_url_keys_are_all_checked_here():
    from pixel_evidence.dashboard.state import URL_KEYS as STATE_KEYS

    assert set(URL_KEYS) == set(STATE_KEYS.values())


@pytest.mark.parametrize("key", URL_KEYS)
def test_notices_quote_url_values_escaped(engine, key):
    """The page shows notices as HTML (banner and pop-up): a link's markup must arrive as text."""
    from pixel_evidence.dashboard.markup import plain

    [note] = _fresh_state(engine).apply_query({key: INJECTED})
    assert plain(INJECTED) in note
    assert "<" not in note and ">" not in note


def test_notices_quote_a_long_url_value_short(engine):
    long = "x" * 20_000
    notes = _fresh_state(engine).apply_query({"image": long, "class": long, "methods": long, "score": long})
    assert len(notes) == 4
    for note in notes:
        assert "x" * 80 + "…" in note and "x" * 81 not in note and len(note) < 400


def test_the_banner_shows_notices_escaped_once(dash):
    dash.state.apply_query({"image": INJECTED})
    assert dash.notice.visible
    assert "&lt;img src=x onerror=alert(1)&gt;" in dash.notice.object
    assert "<img" not in dash.notice.object and "&amp;lt;" not in dash.notice.object


def test_url_names_an_image_of_another_class(dash, engine):
    hole = engine.catalogue.image_ids("train", "hole")[1]
    notes = dash.state.apply_query({"split": "test", "class": "crack", "image": hole})
    assert (dash.state.split, dash.state.image_class, dash.state.image_id) == ("train", "hole", hole)
    assert notes and "follow the image" in notes[0]


def test_a_link_with_an_earlier_image_id_opens_that_image(engine):
    """Links shared before the ids stopped naming MVTec's folders (``test-crack-001``) still
    open their image, without a notice: nothing was wrong with them."""
    state = _fresh_state(engine)
    image = engine.catalogue.image_ids("train", "hole")[1]
    sample = engine.catalogue.sample(image)
    origin, cls, stem = sample.path.split("/")[0], sample.cls, sample.path.split("/")[-1].split(".")[0]
    assert state.apply_query({"image": f"{origin}-{cls}-{stem}"}) == []
    assert (state.split, state.image_class, state.image_id) == ("train", "hole", image)


def test_location_sync_validates_and_rewrites_the_url(engine):
    from panel.io.location import Location

    from pixel_evidence.dashboard.state import bind_location

    hole = engine.catalogue.image_ids("test", "hole")[0]
    loc = Location(search=f"?seed={engine.pool.seeds[1]}&class=hole&image={hole}&methods=ig,saliency&tab=summary"
                          "&score=auroc&agreement=top_iou")
    state = _fresh_state(engine)
    bind_location(state, loc)
    assert (state.seed, state.image_class, state.image_id) == (engine.pool.seeds[1], "hole", hole)
    assert state.methods == ["ig", "saliency"] and state.tab == "summary" and state.notices == []
    assert state.score == "auroc" and state.agreement == "top_iou"
    state.step(1)
    assert f"image={state.image_id}" in loc.search
    state.score = "pointing"
    assert "score=pointing" in loc.search
    state.agreement = "pearson"
    assert "agreement=pearson" in loc.search

    bad = Location(search="?class=nope&image=zzz")
    state = _fresh_state(engine)
    bind_location(state, bad)
    assert len(state.notices) == 2
    assert "class=crack" in bad.search and f"image={state.image_id}" in bad.search


@pytest.mark.parametrize("seed", ["²", "9" * 5000])
def test_a_link_panel_cannot_read_still_opens_with_a_notice(engine, seed):
    """Panel's own reading of a query turns digit strings into ints, which fails for these."""
    from urllib.parse import urlencode

    from panel.io.location import Location

    from pixel_evidence.dashboard.state import bind_location

    hole = engine.catalogue.image_ids("test", "hole")[1]
    location = Location(search="?" + urlencode({"seed": seed, "image": hole}))
    state = _fresh_state(engine)
    bind_location(state, location)
    assert (state.seed, state.image_id) == (engine.pool.seeds[0], hole)
    [note] = state.notices
    assert note.startswith(f"No model for seed “{seed[:80]}") and len(note) < 200
    assert f"seed={engine.pool.seeds[0]}" in location.search and f"image={hole}" in location.search


def test_good_image_shows_no_winner(dash, engine):
    good = engine.catalogue.image_ids("test", "good")[0]
    dash.state.go_to(good)
    ex = dash.store.explanation
    assert ex.image_id == good and ex.k == 0 and not ex.rankable
    view = dash.image_view
    assert "nothing to rank" in view._verdict.object and "WINNER" not in view._verdict.object
    table = view._table.value
    assert (table["Result"] == "not ranked").all() and (table["TKO"] == "—").all()
    for row in view._rows.values():
        assert "WINNER" not in row.card.object and "shared win" not in row.card.object
    assert ex.winners == []


def test_ranking_table_equals_engine_numbers(dash, engine):
    from pixel_evidence.dashboard.formatting import fmt, fmt_lift, rank_label

    for image_id in engine.catalogue.image_ids("test", "crack") + engine.catalogue.image_ids("test", "hole"):
        dash.state.go_to(image_id)
        table = dash.image_view._table.value
        ex = engine.explain(dash.state.seed, image_id, split="test")
        assert len(table) == len(ex.methods)
        ranks = [r.rank for r in ex.methods.values()]
        by_label = table.set_index("Method")
        for key, r in ex.methods.items():
            row = by_label.loc[r.label]
            assert row["TKO"] == fmt(r.tko) and row["Lift"] == fmt_lift(r.lift) and row["IoU"] == fmt(r.iou)
            assert row["Chance"] == fmt(r.chance, 4)
            assert row["Rank"] == rank_label(r.rank, ranks)
            assert ("winner" in row["Result"] or "shared win" in row["Result"]) == (r.win_share > 0)
            card = dash.image_view._rows[key].card.object
            assert f'data-method="{key}" style="font-size:46px;font-weight:800;line-height:1">{fmt(r.tko)}<' in card
        # best first: the table is sorted by rank
        shown = [ex.methods[k].rank for k in [next(k for k, r in ex.methods.items() if r.label == m)
                                               for m in table["Method"]]]
        assert shown == sorted(shown)


def test_rank_labels_show_ties():
    from pixel_evidence.dashboard.formatting import rank_label, result_label

    assert rank_label(1.0, [1.0, 2.0, 3.0]) == "1"
    assert rank_label(1.5, [1.5, 1.5, 3.0]) == "1.5 (tie)"
    assert rank_label(2.0, [2.0, 2.0, 2.0]) == "2 (3-way tie)"
    assert rank_label(math.nan, [math.nan]) == "—"
    assert result_label(0.5) == "shared win (1/2)" and result_label(1.0) == "winner" and result_label(0.0) == ""
    assert result_label(math.nan) == "not ranked"


def test_topk_picture_matches_engine_scores(dash, engine):
    ex = dash.store.explanation
    for key, pic in dash.store.pictures.methods.items():
        assert pic.pixels.tko == pytest.approx(ex.methods[key].tko, abs=1e-12)
        assert 0 <= pic.heat.min() and pic.heat.max() <= 1


def test_ranking_csv_rows(dash, engine):
    from pixel_evidence.dashboard import export
    ex = dash.store.explanation
    df = pd.read_csv(io.BytesIO(dash.exports._ranking().getvalue()))
    assert len(df) == len(ex.methods)
    assert set(df["method"]) == set(ex.methods)
    for _, row in df.iterrows():
        r = ex.methods[row["method"]]
        assert row["image_id"] == ex.image_id and row["seed"] == ex.seed and row["split"] == ex.split
        assert row["tko"] == r.tko and row["iou"] == r.iou and row["rank"] == r.rank
        assert row["k"] == ex.k and row["n"] == ex.n
    assert list(df.columns) == export.RANKING_COLUMNS
    assert dash.exports.ranking.filename == f"pixel-evidence_seed{ex.seed}_test_{ex.image_id}_ranking.csv"


def test_seed_results_csv_rows(evaluated):
    from pixel_evidence.dashboard.app import create_app

    dash = create_app(engine=evaluated).dashboard
    table = pd.read_csv(evaluated.pool.models_dir / "results" / "tko_table.csv")
    for seed in evaluated.pool.seeds:
        dash.state.seed = seed
        assert dash.exports.rows.filename == f"pixel-evidence_seed{seed}_results.csv"
        df = pd.read_csv(io.BytesIO(dash.exports._rows().getvalue()))
        expected = table[table["seed"] == seed].reset_index(drop=True)
        assert len(df) == len(expected) > 0
        assert (df["seed"] == seed).all()
        pd.testing.assert_frame_equal(df, expected, check_dtype=False)


def test_png_and_html_exports_are_in_memory(dash, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = set(os.listdir(ROOT))
    png = dash.exports._png().getvalue()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    page = dash.exports._html().getvalue().decode()
    assert page.lstrip().lower().startswith("<!doctype html") and "Bokeh" in page
    assert dash.store.explanation.image_id in page
    assert "cdn.bokeh.org" not in page and 'src="static/' not in page  # inline resources: works offline
    assert os.listdir(tmp_path) == [] and set(os.listdir(ROOT)) == before


def _repo_entries() -> list[Path]:
    """Every file and folder of the repository, relative to it, without the folders that tools
    write on their own: git, caches and ``.venv`` (the README's install command puts it here)."""
    skipped = {".git", ".venv", "__pycache__", ".pytest_cache"}
    entries = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skipped]
        entries += [(Path(folder) / name).relative_to(ROOT) for name in dirs + files]
    return sorted(entries)


def test_widget_changes_write_nothing(dash, engine, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _repo_entries()
    s = dash.state
    s.image_class = "hole"
    s.step(1)
    s.split = "train"
    s.target = "true"
    s.tab = "summary"
    assert _repo_entries() == before and os.listdir(tmp_path) == []


def test_linked_axes_across_image_panes(dash):
    import panel as pn
    from bokeh.document import Document
    from bokeh.models import Plot

    root = pn.panel(dash.image_view).get_root(Document())
    plots = [m for m in root.references() if isinstance(m, Plot)]
    assert len(plots) == 3 + 2 * len(dash.state.methods)
    assert len({id(p.x_range) for p in plots}) == 1 and len({id(p.y_range) for p in plots}) == 1
    assert plots[0].y_range.start > plots[0].y_range.end  # inverted: y = row index, images upright


def test_ig_delta_and_cost_are_shown(dash):
    ex = dash.store.explanation
    cards = {k: v.card.object for k, v in dash.image_view._rows.items()}
    assert "IG convergence gap" in cards["ig"]
    assert f"{100 * ex.methods['ig'].extras['relative_delta']:.1f}%" in cards["ig"]
    for key in ex.methods:
        assert "Cost:" in cards[key]
    assert "1st percentile" in dash.image_view._legend.object and "99.5th" in dash.image_view._legend.object
    assert "fractionally" in dash.image_view._legend.object


def test_an_undefined_ig_gap_reads_undefined_not_nan(dash):
    """F(x) = F(baseline) leaves IG's relative gap undefined (NaN): the card and both exports say so."""
    import dataclasses

    from pixel_evidence.dashboard.export import figure_html, ranking_table
    from pixel_evidence.dashboard.image_html import method_card_html

    ex = dash.store.explanation
    ig = dataclasses.replace(ex.methods["ig"], extras={**ex.methods["ig"].extras, "relative_delta": math.nan})
    ex = dataclasses.replace(ex, methods={**ex.methods, "ig": ig})
    card = method_card_html(ex, "ig", dash.catalogue, dash.store.pictures.methods["ig"])
    page = figure_html(ex, dash.store.pictures).getvalue().decode()
    for text in (card, page):
        assert re.search(r"IG convergence gap:? (<b>)?undefined: the image and the black baseline score the same",
                         text) and "nan%" not in text
    assert math.isnan(ranking_table(ex).set_index("method").loc["ig", "ig_relative_delta"])


def test_error_is_shown_not_raised(engine, monkeypatch):
    from pixel_evidence.dashboard.app import create_app

    dash = create_app(engine=engine).dashboard

    def broken(*_a, **_k):
        raise OSError("disk on fire")

    monkeypatch.setattr(engine, "explain", broken)
    dash.state.step(1)
    assert "disk on fire" in dash.store.error
    assert dash.image_view._alert.visible and not dash.image_view._content.visible
    assert dash.image_view._layout.loading is False


def test_stale_answers_are_dropped(engine, monkeypatch):
    """An answer that comes back after the user moved on must not overwrite the newer view."""
    import threading

    from pixel_evidence.dashboard.app import create_app

    dash = create_app(engine=engine).dashboard
    view = dash.image_view
    ids = engine.catalogue.image_ids("test", "crack")
    original = engine.explain
    gate = threading.Event()

    def slow(seed, image_id, **k):
        if image_id == ids[1]:
            assert gate.wait(WAIT)
        return original(seed, image_id, **k)

    monkeypatch.setattr(engine, "explain", slow)
    loading = threading.Event()
    view._layout.param.watch(lambda e: loading.set() if e.new else None, "loading")
    worker = threading.Thread(target=lambda: dash.state.step(1))  # asks for ids[1]: slow
    worker.start()
    assert loading.wait(WAIT)  # the loading indicator is on while it waits
    assert dash.store.computing
    dash.state.image_class = "hole"  # the user moves on
    gate.set()
    worker.join(WAIT)
    assert not worker.is_alive()
    assert dash.store.explanation.image_id == engine.catalogue.image_ids("test", "hole")[0]
    assert not view._layout.loading


# ----------------------------------------------------------------------------- the explanation store
#
# Inside a running event loop (as on the server) a request only schedules the store's
# coroutine; these tests run one and wait for the store's states through its watchers.

def _store(engine):
    from pixel_evidence.dashboard.store import ExplanationStore

    return ExplanationStore(_fresh_state(engine), engine)


class _Gate:
    """``pixel_evidence.engine.explain`` held at the gate for one image until ``open()``; records what was published."""

    def __init__(self, engine, monkeypatch, held: str):
        import threading

        self.held, self.entered, self._gate = held, threading.Event(), threading.Event()
        original = engine.explain

        def explain(seed, image_id, **k):
            if image_id == held:
                self.entered.set()
                assert self._gate.wait(WAIT)
            return original(seed, image_id, **k)

        monkeypatch.setattr(engine, "explain", explain)

    def open(self) -> None:
        self._gate.set()


async def _until(store, name: str, check) -> None:
    """Wait until ``check()`` holds, woken by every change of the store's ``name``."""
    import asyncio

    changed = asyncio.Event()
    watcher = store.param.watch(lambda _e: changed.set(), name)
    try:
        while not check():
            await asyncio.wait_for(changed.wait(), WAIT)
            changed.clear()
    finally:
        store.param.unwatch(watcher)


async def _settled() -> None:
    """Every coroutine the store scheduled has finished."""
    import asyncio

    await asyncio.gather(*(t for t in asyncio.all_tasks() if t is not asyncio.current_task()))


def test_store_request_sets_computing_then_the_answer_arrives(engine, monkeypatch):
    import asyncio

    store = _store(engine)
    first = store.state.image_id
    gate = _Gate(engine, monkeypatch, first)

    async def scenario():
        store.refresh()  # returns at once: the engine is held at the gate
        assert store.request.image_id == first and store.explanation is None
        await _until(store, "computing", lambda: store.computing)
        gate.open()
        await _until(store, "explanation", lambda: store.explanation is not None)
        assert store.explanation.image_id == first and not store.computing and store.error == ""
        assert set(store.pictures.methods) == set(store.explanation.methods)

    asyncio.run(scenario())


def test_store_drops_a_superseded_answer(engine, monkeypatch):
    import asyncio

    store = _store(engine)
    first, second = engine.catalogue.image_ids("test", "crack")[:2]
    gate = _Gate(engine, monkeypatch, first)
    published = []
    store.param.watch(lambda e: published.append(e.new.image_id), "explanation")

    async def scenario():
        store.refresh()
        await asyncio.get_running_loop().run_in_executor(None, gate.entered.wait, WAIT)
        store.state.step(1)  # a quick second click
        await _until(store, "explanation", lambda: store.explanation is not None)
        gate.open()  # the first answer now comes back, late
        await _settled()

    asyncio.run(scenario())
    assert store.state.image_id == second
    assert published == [second] and store.explanation.image_id == second and not store.computing


def test_store_engine_error_lands_in_error_and_the_view_shows_it(engine, monkeypatch):
    import asyncio

    from pixel_evidence.dashboard.image_view import ImageView

    store = _store(engine)
    view = ImageView(store)

    def broken(*_a, **_k):
        raise OSError("disk on fire")

    monkeypatch.setattr(engine, "explain", broken)

    async def scenario():
        store.refresh()
        await _until(store, "error", lambda: bool(store.error))

    asyncio.run(scenario())
    assert "disk on fire" in store.error and store.state.image_id in store.error
    assert store.explanation is None and not store.computing
    assert view._alert.visible and "disk on fire" in view._alert.object and not view._content.visible


def test_views_draw_what_the_store_publishes(engine):
    """The views follow the store alone: an explanation put into the store by hand (another image
    than the state names) is what they show, and none of them holds another view."""
    from pixel_evidence.dashboard.analysis_view import AnalysisView
    from pixel_evidence.dashboard.export_bar import ExportBar
    from pixel_evidence.dashboard.image_view import ImageView
    from pixel_evidence.dashboard.pictures import make_pictures
    from pixel_evidence.dashboard.summary import ResultsStore

    store = _store(engine)
    views = [ImageView(store), AnalysisView(store, engine),
             ExportBar(store, ResultsStore(store.state, engine))]
    hole = engine.catalogue.image_ids("test", "hole")[0]
    ex = engine.explain(store.state.seed, hole, split="test", methods=["gradcam", "saliency"], target="true")
    store.param.update(explanation=ex, pictures=make_pictures(ex))
    assert store.state.image_id != hole
    image, analysis, exports = views
    assert hole in image._title.object and set(image._rows) == {"gradcam", "saliency"}
    assert f"P({ex.target_class})" in analysis.faithfulness._guide.object
    assert exports.ranking.filename == f"pixel-evidence_seed{ex.seed}_test_{hole}_ranking.csv"
    for view in views:
        held = [v for v in vars(view).values() if isinstance(v, (ImageView, AnalysisView, ExportBar))]
        assert held == [], (type(view).__name__, held)


def test_summary_with_results(evaluated):
    from pixel_evidence.dashboard.app import create_app

    dash = create_app(engine=evaluated).dashboard
    summary = dash.summary
    assert summary.store.results.available
    assert not summary._notice.visible
    assert len(summary.win._column.objects) >= 2 and len(summary.tko._column.objects) >= 2
    intro = summary._intro.object
    assert "correctly classified defect images" in intro and "1/k" in intro and "chance" in intro
    titles = [c.title for c in summary.numbers._column.objects[1:]]
    assert any("Win rates" in t for t in titles) and any("TKO" in t for t in titles)
    assert any("Confusion" in t for t in titles) and any("Training" in t for t in titles)
    # the confusion matrix follows the selected seed and split
    dash.state.split = "train"
    assert f"seed {dash.state.seed}, train" in summary.confusion._column.objects[0].object
    [(_title, counts)] = summary.store.tables["confusion"]
    assert counts.set_index("true").values.sum() == len(evaluated.catalogue.image_ids("train"))


def test_summary_without_results_names_the_command(dash):
    summary = dash.summary
    assert not summary.store.results.available
    assert summary._notice.visible and "pixel-evidence evaluate" in summary._notice.object
    assert summary.win._column.objects == []
    # the training curves come from the checkpoints: a heading, then the loss and accuracy charts
    heading, *charts = summary.curves._column.objects
    assert "Training: loss" in heading.object and [type(c).__name__ for c in charts] == ["ChartPane", "ChartPane"]


# ----------------------------------------------------------------------------- the data's own words


def test_how_to_read_names_the_data_shown():
    """A category whose classes are not hazelnut's is described in its own words."""
    from pixel_evidence.dashboard.about import about_markdown

    text = about_markdown("tile", ("good", "glue_strip", "oil")).lower()
    assert "<b>tile</b>" in text and "(glue_strip, oil)" in text and "the models" not in text
    models = about_markdown("tile", ("good", "oil"), {1: "resnet18, classifier, fine-tune", 3: "custom m.py:build, "
                                                      "classifier, partial", 2: "resnet18, classifier, fine-tune"})
    assert "- seeds 1, 2: resnet18, classifier, fine-tune\n- seed 3: custom m.py:build, classifier, partial" in models
    for word in ("hazelnut", "crack", "cut", "hole", "print"):  # hazelnut's defects; "cut-off" is TKO's
        assert not re.search(rf"\b{word}\b(?!-off)", text), word


def test_how_to_read_tab_uses_the_engines_category_and_classes(dash, engine):
    from pixel_evidence.dashboard.state import TABS

    about = dash.tabs[TABS.index("about")].object
    assert f"<b>{engine.catalogue.data_root.name}</b>" in about and "(crack, hole)" in about
    assert "hazelnut" not in about.lower()


# ----------------------------------------------------------------------------- set-up and config


def test_missing_models_page_names_the_fix(tiny_run, tmp_path):
    from pixel_evidence.dashboard.app import create_app
    from pixel_evidence.dashboard.config import AppConfig

    root, *_ = tiny_run
    (tmp_path / "empty").mkdir()
    tpl = create_app(AppConfig(data=root, models=tmp_path / "empty", warm=False))
    assert tpl.dashboard is None
    page = tpl.main[0].objects[0].object
    assert "pixel-evidence train" in page and "Traceback" not in page


def test_no_trained_models_page(tiny_run, tmp_path):
    from pixel_evidence.dashboard.app import create_app
    from pixel_evidence.dashboard.config import AppConfig

    root, models, *_ = tiny_run
    only_manifest = tmp_path / "models"
    only_manifest.mkdir()
    shutil.copy(models / "manifest.csv", only_manifest / "manifest.csv")
    page = create_app(AppConfig(data=root, models=only_manifest, warm=False)).main[0].objects[0].object
    assert "No trained models yet" in page and "pixel-evidence train" in page


def test_missing_data_page_names_the_download(tiny_run, tmp_path):
    from pixel_evidence.dashboard.app import create_app
    from pixel_evidence.dashboard.config import AppConfig

    _root, models, *_ = tiny_run
    page = create_app(AppConfig(data=tmp_path / "bottle", models=models, warm=False)).main[0].objects[0].object
    assert f"pixel-evidence data download bottle --data-dir {tmp_path}" in page and "Traceback" not in page
    # data that is no MVTec AD category: no download can bring it back, so none is offered
    page = create_app(AppConfig(data=tmp_path / "nowhere", models=models, warm=False)).main[0].objects[0].object
    assert "data download" not in page and f"--models {models}" in page


def test_a_bad_data_folder_logs_one_line_not_a_traceback(tiny_run, tmp_path, caplog):
    """The page explains the problem; the log gets one line at WARNING, the traceback only at DEBUG."""
    import logging

    from pixel_evidence.dashboard.app import create_app
    from pixel_evidence.dashboard.config import AppConfig

    _root, models, *_ = tiny_run
    caplog.set_level(logging.DEBUG, logger="pixel_evidence")
    create_app(AppConfig(data=tmp_path / "nowhere", models=models, warm=False))
    ours = [r for r in caplog.records if r.name.startswith("pixel_evidence")]
    loud = [r for r in ours if r.levelno >= logging.WARNING]
    assert [r.levelno for r in loud] == [logging.WARNING] and loud[0].exc_info is None
    assert "nowhere" in loud[0].getMessage() and "\n" not in loud[0].getMessage()
    assert any(r.levelno == logging.DEBUG and r.exc_info for r in ours)


def test_a_bad_data_folder_is_told_to_fetch_its_own_category(tiny_run, tmp_path):
    from pixel_evidence.dashboard.app import create_app
    from pixel_evidence.dashboard.config import AppConfig

    _root, models, *_ = tiny_run
    tile = make_mvtec_tree(tmp_path / "tile", n_train_good=1, n_test={"good": 1, "glue_strip": 1, "oil": 1}, size=16)
    page = create_app(AppConfig(data=tile, models=models, warm=False)).main[0].objects[0].object
    assert f"pixel-evidence data download tile --data-dir {tmp_path}" in page
    assert "hazelnut" not in page
    # MVTec's links expire: the page says where to get the archive by hand and what to run then
    assert "mvtec.com/company/research/datasets/mvtec-ad/downloads" in page
    assert f"pixel-evidence data download tile --data-dir {tmp_path} --archive PATH" in page


def test_engine_construction_failure_gets_a_problem_page():
    from pixel_evidence.dashboard.app import create_app
    from pixel_evidence.dashboard.config import AppConfig
    from pixel_evidence.dashboard.host import EngineHost

    def broken():
        raise RuntimeError("disk on fire")

    tpl = create_app(host=EngineHost(AppConfig(warm=False), broken).start())
    assert tpl.dashboard is None
    page = tpl.main[0].objects[0].object
    assert "The explanation engine could not start" in page and "RuntimeError: disk on fire" in page
    assert "Traceback" not in page and "Set-up needed" in tpl.sidebar[0].objects[0].object


def test_dashboard_construction_failure_gets_a_page_not_a_traceback(engine, monkeypatch):
    from pixel_evidence.dashboard import app
    def broken(_engine):
        raise ValueError("catalogue on fire")

    monkeypatch.setattr(app, "engine_catalogue", broken)
    tpl = app.create_app(engine=engine)
    assert tpl.dashboard is None
    page = tpl.main[0].objects[0].object
    assert "The dashboard could not start" in page and "ValueError: catalogue on fire" in page
    assert "Traceback" not in page


def test_a_split_without_images_says_so(engine, monkeypatch):
    """The class chosen has no images in the split: the page says so instead of drawing."""
    from pixel_evidence.dashboard.app import create_app

    listed = engine.catalogue.image_ids
    monkeypatch.setattr(engine.catalogue, "image_ids",
                        lambda split, cls=None: [] if split == "train" else listed(split, cls))
    dash = create_app(engine=engine).dashboard
    dash.state.split = "train"
    assert dash.state.image_id == "" and dash.state.position == (0, 0)
    view = dash.image_view
    assert view._alert.visible and not view._content.visible
    assert "No images in this split and class." in view._alert.object
    assert "0 / 0" in dash.controls["count"].object
    # the last image's figure is not offered for download beside a page that shows none
    bar = dash.exports
    assert bar.png.disabled and bar.html.disabled and bar.ranking.disabled
    assert bar._png() is None and bar._ranking() is None
    dash.state.split = "test"
    assert not bar.png.disabled and bar._ranking() is not None


def test_one_engine_per_process(tiny_run):
    from pixel_evidence.dashboard.config import AppConfig
    from pixel_evidence.dashboard.host import get_host

    root, models, *_ = tiny_run
    cfg = AppConfig(data=root, models=models, device="cpu", warm=False)
    a, b = get_host(cfg), get_host(AppConfig(data=root, models=models, device="cpu", warm=False))
    assert a is b
    assert a.engine(timeout=WAIT) is b.engine(timeout=WAIT) is not None


def test_config_file_and_arguments(tmp_path):
    from pixel_evidence.dashboard.config import ConfigError, parse_args

    (tmp_path / "cfg").mkdir()
    toml = tmp_path / "cfg" / "dash.toml"
    toml.write_text('data = "data/hazelnut"\nmodels = "/abs/models"\nig_steps = 16\nwarm = false\n')
    cfg = parse_args(["--config", str(toml)])
    assert cfg.data == tmp_path / "cfg" / "data" / "hazelnut" and cfg.models == Path("/abs/models")
    assert cfg.ig_steps == 16 and cfg.warm is False
    assert cfg.engine_kwargs()["method_params"] == {"ig": {"n_steps": 16}}
    js = tmp_path / "dash.json"
    js.write_text(json.dumps({"models": "m"}))
    cfg = parse_args(["--config", str(js), "--data", "/d"])
    assert cfg.models == tmp_path / "m" and cfg.data == Path("/d")
    assert parse_args([]).data is None and parse_args([]).models is None
    with pytest.raises(ConfigError, match="unknown key"):
        js.write_text(json.dumps({"modles": "m"}))
        parse_args(["--config", str(js)])
    with pytest.raises(ConfigError, match="unknown argument"):
        parse_args(["--bogus"])
    with pytest.raises(ConfigError, match="cannot read"):
        parse_args(["--config", str(tmp_path / "missing.toml")])


def test_root_app_serves_a_problem_page_for_bad_arguments():
    """``panel serve app.py --args --bogus``: the page served names the problem and the fix.
    In a subprocess, because app.py sets up the process's logging; it prints what it served."""
    code = ("import runpy, sys\n"
            "import panel as pn\n"
            "served = []\n"
            "pn.template.FastListTemplate.servable = lambda page, *a, **k: served.append(page)\n"
            "sys.argv = ['app.py', '--bogus']\n"
            "runpy.run_path('app.py')\n"
            "[page] = served\n"
            "print(page.main[0].object)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=WAIT)
    assert out.returncode == 0, out.stderr
    page = out.stdout
    assert "pe-setup-problem" in page and "The dashboard&#x27;s arguments are not usable" in page
    assert "unknown argument(s)" in page and "--bogus" in page
    assert "panel serve app.py --args --data DIR --models DIR" in page and "Traceback" not in page


# ----------------------------------------------------------------------------- no torch in the dashboard


def test_importing_the_dashboard_does_not_import_torch():
    code = ("import sys\n"
            "import pixel_evidence.dashboard.app, pixel_evidence.dashboard.state, pixel_evidence.dashboard.store, pixel_evidence.dashboard.image_view, pixel_evidence.dashboard.analysis_view, "
            "pixel_evidence.dashboard.summary, pixel_evidence.dashboard.export, pixel_evidence.dashboard.image_plots, pixel_evidence.dashboard.host, pixel_evidence.dashboard.background_fill, "
            "pixel_evidence.dashboard.session_memory, pixel_evidence.dashboard.setup_problem, pixel_evidence.dashboard.catalogue, "
            "pixel_evidence.dashboard.config\n"
            "bad = [m for m in ('torch', 'captum', 'torchvision') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=WAIT)


def test_dashboard_sources_never_import_torch_or_the_model():
    """Static check: no torch/captum anywhere in dashboard/, and the engine modules that load
    torch are imported only inside functions (lazily, once an engine is being built)."""
    forbidden = {"torch", "torchvision", "captum"}
    lazy_only = {"pixel_evidence.engine.explain", "pixel_evidence.explainers", "pixel_evidence.models.multitask", "pixel_evidence.models.checkpoint", "pixel_evidence.models.train",
                 "pixel_evidence.evaluate"}
    files = sorted(DASHBOARD.rglob("*.py")) + [ROOT / "app.py"]
    assert len(files) >= 6
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"
        for node in tree.body:  # module level only
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module not in lazy_only, f"{path.name} imports {node.module} at module level"
            if isinstance(node, ast.Import):
                for a in node.names:
                    assert a.name not in lazy_only, f"{path.name} imports {a.name} at module level"
        text = path.read_text()
        assert ".model(" not in text.replace("engine.pool.network(seed)", ""), f"{path.name} calls a model"


def test_setup_page_for_an_unreadable_data_folder_names_the_nearest_layout(tmp_path):
    """Issue 29: the page suggested `pixel-evidence train`, which fails at once on such a folder."""
    from PIL import Image

    from pixel_evidence.dashboard.app import problem_view
    from pixel_evidence.dashboard.config import AppConfig
    from pixel_evidence.dashboard.setup_problem import describe_setup_error
    from pixel_evidence.data import DataError

    data = tmp_path / "parts"
    for folder in ("bad", "masks"):  # the folder format without its normal folder
        (data / folder).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(data / folder / "000.png")
    config = AppConfig(data=data, models=tmp_path / "models")
    problem = describe_setup_error(DataError(f"{tmp_path}/models/manifest.csv: manifest not found; create it"), config)
    assert problem.title == "The data folder is in no layout this program reads"
    assert "nearest: mask-folder" in problem.detail and "would need good beside masks" in problem.detail
    assert problem.commands == ()
    page = problem_view(problem).object
    assert "&lt;class&gt;/" in page and "<class>" not in page
    # a readable folder keeps the page it had
    (data / "masks").rename(data / "other")
    readable = describe_setup_error(DataError("manifest.csv: manifest not found; create it"), config)
    assert readable.title.startswith("No models") and readable.commands

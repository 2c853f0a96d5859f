"""The whole page: template, sidebar widgets, tabs, downloads, set-up problems.

``create_app(config)`` is what ``app.py`` serves; tests call ``create_app(engine=...)`` with
an engine they built. One engine per process is shared by every session (see
:mod:`pixel_evidence.dashboard.host`); each session gets its own :class:`DashboardState` and views.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import panel as pn

from pixel_evidence.dashboard.about import about_markdown
from pixel_evidence.dashboard.allowed_hosts import check_hosts
from pixel_evidence.dashboard.analysis_view import AnalysisView
from pixel_evidence.dashboard.config import AppConfig
from pixel_evidence.dashboard.export_bar import ExportBar
from pixel_evidence.dashboard.host import EngineHost, engine_catalogue, get_host
from pixel_evidence.dashboard.image_view import ImageView
from pixel_evidence.dashboard.markup import plain
from pixel_evidence.dashboard.page_events import PageEvents
from pixel_evidence.dashboard.presentation import PRESENTATION_CSS, present
from pixel_evidence.dashboard.setup_problem import SetupProblem
from pixel_evidence.dashboard.sizes import pane_sizes
from pixel_evidence.dashboard.state import TAB_LABELS, TABS, DashboardState, bind_location, page_location
from pixel_evidence.dashboard.store import ExplanationStore
from pixel_evidence.dashboard.summary import ResultsStore, SummaryView
from pixel_evidence.dashboard.units_view import UnitsView
from pixel_evidence.engine.contract import Engine

log = logging.getLogger("pixel_evidence.dashboard")

TITLE = "Pixel Evidence — which explanation hits the defect?"
ACCENT = "#0072B2"
DEFAULT_THREADS = 8

def problem_view(problem: SetupProblem) -> pn.viewable.Viewable:
    """A friendly page for a set-up problem: what is wrong and the commands that fix it."""
    commands = "".join(f"<pre style='background:#f3f3f3;padding:8px 12px;border-radius:6px;font-size:15px'>"
                       f"{plain(c)}</pre>" for c in problem.commands)
    notes = "".join(f"<p>{plain(n)}</p>" for n in problem.notes)
    body = f"""
<div class="pe-setup-problem" style="font-size:16px;line-height:1.5;max-width:900px">
  <h2 style="color:#B34700">{plain(problem.title)}</h2>
  <p>{plain(problem.detail)}</p>
  {'<p><b>To fix it, run:</b></p>' + commands if commands else ''}
  {notes}
  <p style="color:#555">Then reload this page. Real data and models:
  <code>panel serve app.py --args --data DIR --models DIR</code> or <code>--args --config FILE</code>.</p>
</div>"""
    return pn.pane.HTML(body, sizing_mode="stretch_width")


def engine_warnings_html(warnings: list[str]) -> str:
    """The engine's warnings (skipped seeds, data changed since training) as an escaped list."""
    if not warnings:
        return ""
    items = "".join(f"<li>{plain(w)}</li>" for w in warnings)
    return (f'<div class="pe-engine-warnings-text"><b>The server left out models or found the data changed:'
            f'</b><ul style="margin:4px 0 0 0">{items}</ul></div>')


class Dashboard(pn.viewable.Viewer):
    """Everything of one session, once the engine is ready."""

    def __init__(self, engine: Engine, *, host: EngineHost | None = None, location: Any = None,
                 query: dict[str, str] | None = None, events: PageEvents | None = None, **params: Any):
        super().__init__(**params)
        self.engine = engine
        self.catalogue = engine_catalogue(engine)
        self.state = DashboardState(self.catalogue)
        if location is not None:
            bind_location(self.state, location)
        else:
            self.state.open_link(query or {})
        # two stores, several views each; no view holds another
        self.store = ExplanationStore(self.state, engine, host=host)
        self.results = ResultsStore(self.state, engine)
        self.image_view = ImageView(self.store)
        self.analysis = AnalysisView(self.store, engine)
        self._summary: SummaryView | None = None
        self.summary_tab = pn.Column(pn.pane.HTML(self._summary_loading(), sizing_mode="stretch_width"),
                                     sizing_mode="stretch_width")
        self.units: UnitsView | None = None  # built, and its overlays computed, when the tab is first opened
        self.units_tab = pn.Column(sizing_mode="stretch_width")
        self.exports = ExportBar(self.store, self.results)
        self.notice = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width",
                                    css_classes=["pe-notice"])
        # seeds left out and data changed since training: facts of the server, shown for as long as it runs
        self.engine_warnings = pn.pane.Alert(engine_warnings_html(engine.warnings), alert_type="warning",
                                             visible=bool(engine.warnings), sizing_mode="stretch_width",
                                             css_classes=["pe-engine-warnings"])
        self._show_notices()
        self.state.param.watch(self._show_notices, "notices")
        self.widgets = self._widgets()
        self.tabs = pn.Tabs(*[(TAB_LABELS[t], self._tab_content(t)) for t in TABS], dynamic=True,
                            sizing_mode="stretch_width")
        self.tabs.active = TABS.index(self.state.tab)
        self.tabs.param.watch(lambda e: setattr(self.state, "tab", TABS[e.new]), "active")
        self.state.param.watch(lambda e: setattr(self.tabs, "active", TABS.index(e.new)), "tab")
        self.state.param.watch(self._open_summary, "tab")
        # The window's size sets the panes' sizes; in presentation mode ← → step through the images.
        # A page's own probe (``events``) has reported the size before this view is built, so the
        # panes go out at their size instead of being drawn at a default and then again.
        self.events = events or PageEvents()
        self.events.param.watch(self._resize, ["window_width", "window_height"])
        self.events.param.watch(self._arrow, "press")
        self.main = pn.Column(self.engine_warnings, self.notice, self.tabs, *([] if events else [self.events]),
                              sizing_mode="stretch_width")
        self.state.param.watch(self._mode, "mode")
        self.image_view.on_new_panes = self._restyle  # new method rows are new panes
        self.results.param.watch(self._restyle, "tables")     # so are the summary's redrawn words
        self._open_summary()
        self._mode()

    def _tab_content(self, tab: str) -> pn.viewable.Viewable:
        if tab == "image":
            return pn.Column(self.image_view, self.analysis, sizing_mode="stretch_width")
        if tab == "summary":
            return self.summary_tab
        if tab == "units":
            return self.units_tab
        about = about_markdown(self.engine.catalogue.data_root.name, self.catalogue.classes, self.catalogue.seed_models)
        return pn.pane.Markdown(about, sizing_mode="stretch_width", styles={"font-size": "16px", "max-width": "950px"})

    @property
    def summary(self) -> SummaryView:
        """The summary tab's view, built the first time it is needed: its charts take a third of a
        second to build, which a session that never opens the tab should not spend."""
        if self._summary is None:
            self._summary = SummaryView(self.results)
            self.summary_tab.objects = [self._summary]
        return self._summary

    def _summary_loading(self) -> str:
        """What the summary tab says while its charts are drawn (seconds on a busy server)."""
        folder = plain(str(self.results.directory))
        return ('<div class="pe-summary-loading" style="font-size:16px;color:#333;margin:12px 0">'
                f"<b>Loading the summary…</b> Drawing the evaluation results in <code>{folder}</code>: win rates "
                "and TKO across seeds, the methods' agreement, deletion/insertion AUCs, the randomization "
                "verdicts, training curves and the confusion matrix.</div>")

    def _open_summary(self, *_: Any) -> None:
        if self.state.tab == "units" and self.units is None:
            self.units = UnitsView(self.state, self.engine)
            self.units_tab.objects = [self.units]
            self._restyle()
        if self.state.tab != "summary" or self._summary is not None:
            return

        def build() -> None:
            _ = self.summary  # built on first use
            self._restyle()

        # on the next tick: the tab shows what it is loading while the charts are drawn
        pn.state.execute(build, schedule=True)

    @property
    def presenting(self) -> bool:
        return self.state.mode == "presentation"

    def _mode(self, *_: Any) -> None:
        self.events.arrows = self.presenting
        self.image_view.card_css = [PRESENTATION_CSS] if self.presenting else []
        self._restyle()
        self._resize()

    def _restyle(self, *_: Any) -> None:
        present([self.widgets, self.main], self.presenting)

    def _resize(self, *_: Any) -> None:
        sizes = pane_sizes(self.events.window_width, self.events.window_height, self.presenting)
        self.image_view.resize(sizes, self.presenting)

    def _arrow(self, *_: Any) -> None:
        if self.state.tab == "image" and self.events.step:
            self.state.step(self.events.step)

    def _show_notices(self, *_: Any) -> None:
        notes = self.state.notices  # HTML already: the state escaped the URL's values as they came in
        self.notice.object = '<div class="pe-notice-text">' + "<br>".join(notes) + "</div>" if notes else ""
        self.notice.visible = bool(notes)
        if notes and pn.state.notifications is not None:
            for note in notes:
                pn.state.notifications.warning(note, duration=8000)

    def _dismiss_notices(self, *_: Any) -> None:
        if self.state.notices:
            self.state.notices = []

    def _widgets(self) -> pn.Column:
        s = self.state
        seed = pn.widgets.Select.from_param(s.param.seed, sizing_mode="stretch_width")
        model = pn.pane.HTML(self._model_note(), css_classes=["pe-model"], margin=(0, 10, 5, 10))
        s.param.watch(lambda *_: setattr(model, "object", self._model_note()), ["seed"])
        split = pn.widgets.RadioButtonGroup.from_param(s.param.split, color="primary", variant="outline",
                                                       sizing_mode="stretch_width")
        cls = pn.widgets.Select.from_param(s.param.image_class, sizing_mode="stretch_width")
        image = pn.widgets.Select.from_param(s.param.image_id, sizing_mode="stretch_width")
        prev = pn.widgets.Button(label="◀ Previous", width=105)
        nxt = pn.widgets.Button(label="Next ▶", width=90)
        prev.on_click(lambda _e: s.step(-1))
        nxt.on_click(lambda _e: s.step(1))
        count = pn.pane.HTML(self._count(), css_classes=["pe-count"], margin=(12, 10, 0, 5), width=85)
        s.param.watch(lambda *_: setattr(count, "object", self._count()), ["image_id", "image_class", "split"])
        methods = pn.widgets.MultiChoice.from_param(s.param.methods, sizing_mode="stretch_width")
        target = pn.widgets.RadioButtonGroup.from_param(s.param.target, options={"predicted class": "predicted",
                                                                                 "true class": "true"},
                                                        color="primary", variant="outline",
                                                        sizing_mode="stretch_width")
        # any user action after the first page clears the notices about the URL
        s.param.watch(self._dismiss_notices, ["seed", "split", "image_class", "image_id", "methods", "target"])
        self.controls = dict(seed=seed, model=model, split=split, cls=cls, image=image, prev=prev, next=nxt, count=count,
                             methods=methods, target=target)

        def label(text: str) -> pn.pane.HTML:
            return pn.pane.HTML(f"<label style='font-weight:600;font-size:14px'>{text}</label>", margin=(8, 10, 0, 10))

        return pn.Column(
            seed, model, label("Split"), split, cls, image, pn.Row(prev, nxt, count), methods, label("Target"), target,
            pn.pane.HTML("<hr><b>Download</b>", margin=(5, 10, 0, 10)), self.exports,
            sizing_mode="stretch_width")

    def _model_note(self) -> str:
        note = plain(self.catalogue.model_note(self.state.seed))
        return f"<span class='pe-model-text' style='font-size:13px;color:#555'>{note}</span>" if note else ""

    def _count(self) -> str:
        i, n = self.state.position
        return f"<span class='pe-count-text' style='font-size:18px;font-weight:700'>{i} / {n}</span>"

    def __panel__(self) -> pn.viewable.Viewable:
        return self.main


def _without_web_fonts() -> None:
    """Drop the Fast design's web-font link (Open Sans from fonts.googleapis.com), which Panel
    adds to the page twice (template resources and per-document design). The page must not
    reach beyond this server: classrooms may be offline, and no third party should see who
    opens it. System fonts serve instead. A browser test counts the page's outside requests."""
    from panel.theme.fast import Fast

    Fast._resources = {k: v for k, v in Fast._resources.items() if k != "font"}


def _extension() -> None:
    check_hosts()  # before the server listens under ``panel serve --warm``
    _without_web_fonts()
    pn.extension("tabulator", notifications=True, loading_indicator=True, sizing_mode="stretch_width")
    if not pn.config.nthreads:
        pn.config.nthreads = DEFAULT_THREADS


def _before_listening() -> bool:
    """Whether this page is ``panel serve --warm``'s start-up run: the server builds a visitor's
    page inside its running event loop, and the start-up run comes before any loop runs."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    return False


def create_app(config: AppConfig | None = None, *, engine: Engine | None = None, host: EngineHost | None = None,
               query: dict[str, str] | None = None) -> pn.template.FastListTemplate:
    """The page for one session.

    ``engine``: use this engine (tests). Otherwise the process-wide host of ``config`` is
    used; while it is still building, the page shows a short "loading" note and fills in
    when it is ready. ``query``: initial state when there is no browser URL (tests).
    """
    _extension()
    if engine is not None and host is None:
        host = EngineHost.for_engine(engine)
    doc = pn.state.curdoc
    location = page_location(doc) if doc is not None and doc.session_context else None
    if host is None:
        host = get_host(config or AppConfig(), import_here=location is not None and _before_listening())
    sidebar = pn.Column(sizing_mode="stretch_width")
    main = pn.Column(sizing_mode="stretch_width", min_height=300)
    events = PageEvents()  # in the page from its first bytes: it reports the window while the engine loads
    template = pn.template.FastListTemplate(
        title=TITLE, sidebar=[sidebar], main=[main, events], accent=ACCENT, header_background="#0B3954",
        sidebar_width=320, main_layout=None, theme_toggle=False)
    template.dashboard = None  # set once built; handy for tests and debugging

    def fill(engine_obj: Engine | None) -> None:
        started = time.perf_counter()
        if engine_obj is None:
            sidebar.objects = [pn.pane.HTML("<b>Set-up needed</b>", margin=10)]
            main.objects = [problem_view(host.problem)]
            return
        try:
            dash = Dashboard(engine_obj, host=host, location=location, query=query, events=events)
        except Exception as exc:  # noqa: BLE001 - never a traceback in the page
            log.exception("building the dashboard failed")
            main.objects = [problem_view(SetupProblem("The dashboard could not start", f"{type(exc).__name__}: {exc}",
                                                      (), ("The full error is in the server log.",)))]
            return
        template.dashboard = dash
        sidebar.objects = [dash.widgets]
        main.objects = [dash]
        dash.store.refresh()  # the first image, drawn into the page's models
        log.info("session view ready in %.2f s", time.perf_counter() - started)

    if location is None:  # no browser session (tests, notebooks): build now
        fill(host.engine())
        return template
    # In a server session the page is sent at once and filled in after it loaded, so the
    # first bytes never wait for the models (or for drawing a dozen figures).
    waiting = "" if host.ready else (
        "<div style='font-size:16px;margin-top:8px'>Loading the explanation engine (models, data). The first "
        "start of a new installation also generates the built-in data set; this page fills in by itself.</div>")
    main.objects = [pn.Column(pn.indicators.LoadingSpinner(value=True, size=40),
                              pn.pane.HTML("<div style='font-size:18px'>Preparing the view…</div>" + waiting),
                              css_classes=["pe-starting"])]

    # A page closed before the engine was ready is not built: `panel serve --warm` runs this
    # script once at start-up (which starts the engine) and closes that page straight away.
    closed = threading.Event()
    pn.state.curdoc.on_session_destroyed(lambda _context: closed.set())

    def later() -> None:
        engine_obj = host.engine()
        if not closed.is_set():
            fill(engine_obj)

    pn.state.onload(later, threaded=True)
    return template

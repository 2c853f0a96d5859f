"""The dashboard's one state object, its validation, and its link to the page URL.

``DashboardState`` holds what the user is looking at (seed, split, class, image, methods,
target, tab, the score that decides the summary's winners, and the measure by which methods'
maps are compared). Views depend on it; sidebar widgets are built from its parameters. Any
value coming from outside (a pasted URL) goes through :meth:`DashboardState.apply_query`,
which keeps what is valid, falls back to the nearest valid state for the rest, and says so
in ``notices``.

Notices are HTML (the page shows them as a banner and as pop-ups, both of which render
markup): every value from the URL is escaped, and trimmed to a readable length, in
:func:`quoted` as it enters a notice; names from the catalogue are escaped too.

URL format (all keys optional)::

    ?seed=42&split=test&class=crack&image=crack-003&methods=gradcam,saliency,ig
    &target=predicted&tab=image&score=tko&agreement=spearman&mode=standard   (one line in the address bar)

``mode=presentation`` is the view for the back of a lecture hall: large type, the winner and
TKO large, explanatory paragraphs folded away, ← and → for the previous and next image.
"""

from __future__ import annotations

import difflib
import urllib.parse
from typing import Any, Mapping

import param
from panel.io.location import Location
from panel.io.state import state as panel_state

from pixel_evidence.dashboard.catalogue import SPLITS, TARGETS, Catalogue
from pixel_evidence.dashboard.markup import plain
from pixel_evidence.data.mvtec import current_image_id
from pixel_evidence.metrics.scores import LOCALISATION_SCORES
from pixel_evidence.results import AGREEMENT_STATS

TABS = ("image", "summary", "units", "about")
TAB_LABELS = {"image": "Per image", "summary": "Summary", "units": "Units", "about": "How to read this"}
TARGET_LABELS = {"predicted": "predicted class", "true": "true class"}
# state parameter -> URL query key
URL_KEYS = {"seed": "seed", "split": "split", "image_class": "class", "image_id": "image", "methods": "methods",
            "target": "target", "tab": "tab", "score": "score", "agreement": "agreement", "mode": "mode"}
MODES = ("standard", "presentation")
# URL keys that name one of a few choices: what the user calls it, the valid values, the
# fallback for any other value, and what that fallback means on screen.
_CHOICES = {
    "target": ("target", TARGETS, "predicted", "explaining the predicted class"),
    "tab": ("tab", TABS, "image", "showing the per-image view"),
    "score": ("score", tuple(LOCALISATION_SCORES), "tko", "winners are decided by Top-K overlap"),
    "agreement": ("agreement measure", AGREEMENT_STATS, "spearman", "comparing maps by Spearman's rank correlation"),
    "mode": ("mode", MODES, "standard", "showing the standard view"),
}
QUOTE_CHARS = 80  # a notice quotes this much of a pasted value: a 20,000-character value is not news


def quoted(value: str) -> str:
    """A value from the URL as a notice quotes it: at most ``QUOTE_CHARS`` characters (then
    "…"), HTML-escaped, so a link can neither inject markup nor flood the page."""
    shown = value if len(value) <= QUOTE_CHARS else value[:QUOTE_CHARS] + "…"
    return plain(shown)


def _names(values: Any) -> str:
    """Catalogue names (classes, seeds, labels) listed for a notice, escaped."""
    return ", ".join(plain(str(v)) for v in values)


class DashboardState(param.Parameterized):
    """What is on screen. Every value is always valid for the catalogue."""

    seed = param.Selector(objects=[0], label="Seed", doc="Training seed: which of the trained models")
    split = param.Selector(objects=list(SPLITS), default="test", label="Split")
    image_class = param.Selector(objects=[""], label="Class")
    image_id = param.Selector(objects=[""], label="Image")
    methods = param.ListSelector(default=[], objects=[], label="Methods")
    target = param.Selector(objects=list(TARGETS), default="predicted", label="Target",
                            doc="Which class the maps explain: the model's prediction or the true class")
    tab = param.Selector(objects=list(TABS), default="image", label="Tab")
    score = param.Selector(objects=list(LOCALISATION_SCORES), default="tko", label="Winner decided by",
                           doc="The localisation score that decides which method wins an image (summary tab)")
    agreement = param.Selector(objects=list(AGREEMENT_STATS), default="spearman", label="Agreement measure",
                               doc="How two methods' maps are compared, in the per-image and the summary view")
    mode = param.Selector(objects=list(MODES), default="standard", label="Mode",
                          doc="presentation: large type for a lecture hall, ← → step through the images")
    notices = param.List(default=[], doc="Messages about values that were replaced (e.g. from a bad URL), "
                                         "as HTML: values from outside are escaped")

    def __init__(self, catalogue: Catalogue, **params: Any):
        self.catalogue = catalogue
        super().__init__(**{k: v for k, v in params.items() if k in ("name",)})
        self.param.seed.objects = list(catalogue.seeds)
        self.param.methods.objects = catalogue.method_options()
        self._syncing = False
        with param.parameterized.discard_events(self):
            self.seed = catalogue.seeds[0]
            self.methods = list(catalogue.default_methods)
            self._set_location("test", catalogue.default_class("test"), None)
        rest = {k: v for k, v in params.items() if k != "name"}
        if rest:
            self.apply_query({URL_KEYS.get(k, k): v for k, v in rest.items()}, notify=False)

    # ------------------------------------------------------------------ navigation

    def _set_location(self, split: str, cls: str, image_id: str | None) -> None:
        """Set split, class and image together, updating the choices first so every step is valid."""
        classes = self.catalogue.classes_in(split)
        if cls not in classes:
            cls = self.catalogue.default_class(split)
        ids = list(self.catalogue.image_ids(split, cls)) or [""]
        if image_id not in ids:
            image_id = ids[0]
        self.param.image_class.objects = classes
        self.param.image_id.objects = ids
        self.param.update(split=split, image_class=cls, image_id=image_id)

    @param.depends("split", watch=True)
    def _on_split(self) -> None:
        self._set_location(self.split, self.image_class, self.image_id if self._home(self.image_id) == (self.split, self.image_class) else None)

    @param.depends("image_class", watch=True)
    def _on_cls(self) -> None:
        keep = self.image_id if self._home(self.image_id) == (self.split, self.image_class) else None
        self._set_location(self.split, self.image_class, keep)

    def _home(self, image_id: str | None) -> tuple[str, str] | None:
        return self.catalogue.image_home.get(image_id or "")

    @property
    def image_ids(self) -> list[str]:
        return list(self.catalogue.image_ids(self.split, self.image_class))

    @property
    def position(self) -> tuple[int, int]:
        """(1-based index of the current image, number of images in the class)."""
        ids = self.image_ids
        return (ids.index(self.image_id) + 1 if self.image_id in ids else 0), len(ids)

    def step(self, delta: int) -> None:
        """Move ``delta`` images forward (negative: back) within the class, wrapping around."""
        ids = self.image_ids
        if not ids:
            return
        i = ids.index(self.image_id) if self.image_id in ids else 0
        self.image_id = ids[(i + delta) % len(ids)]

    def go_to(self, image_id: str) -> None:
        """Show ``image_id``, switching split and class as needed (KeyError if unknown)."""
        home = self._home(image_id)
        if home is None:
            raise KeyError(f"unknown image id {image_id!r}")
        self._set_location(home[0], home[1], image_id)

    # ------------------------------------------------------------------ URL values

    def to_query(self) -> dict[str, str]:
        return {"seed": str(self.seed), "split": self.split, "class": self.image_class, "image": self.image_id,
                "methods": ",".join(self.methods), "target": self.target, "tab": self.tab, "score": self.score,
                "agreement": self.agreement, "mode": self.mode}

    def open_link(self, query: Mapping[str, Any]) -> list[str]:
        """The view a link opens. A link that names no place (split, class or image) opens the
        catalogue's opening image; one that does opens what it always opened. Then the link's
        other values, as :meth:`apply_query` takes them."""
        opening = self.catalogue.opening
        if opening in self.catalogue.image_home and not any(query.get(k) for k in ("split", "class", "image")):
            self._set_location(*self.catalogue.image_home[opening], opening)
        return self.apply_query(query)

    def apply_query(self, query: Mapping[str, Any], *, notify: bool = True) -> list[str]:
        """Move to the state described by ``query`` (URL keys, string values).

        Valid values are taken; each invalid one is replaced by the nearest valid value and
        explained in the returned notices (also appended to ``self.notices`` when ``notify``).
        """
        q = {k: ("" if v is None else (",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)).strip())
             for k, v in query.items()}
        said = {k: quoted(v) for k, v in q.items()}  # the URL's values as notices quote them
        cat = self.catalogue
        notes: list[str] = []
        updates: dict[str, Any] = {}

        if q.get("seed"):
            text = q["seed"]
            try:
                seed = int(text)
            except ValueError:
                seed = None
            if seed in cat.seeds:
                updates["seed"] = seed
            else:  # the default seed, not the nearest: seed 999 is no closer to 51 than to 42
                notes.append(f"No model for seed “{said['seed']}”; showing the default seed {cat.seeds[0]} "
                             f"(available: {_names(cat.seeds)}).")
                updates["seed"] = cat.seeds[0]

        split = self.split
        if q.get("split"):
            if q["split"] in SPLITS:
                split = q["split"]
            else:
                notes.append(f"Unknown split “{said['split']}”; showing {split}. Use train or test.")

        cls = self.image_class
        class_given = bool(q.get("class"))
        if class_given:
            cls = q["class"]

        image_id = self.image_id if not (q.get("split") or class_given) else None
        if q.get("image"):
            asked = q["image"]
            if self._home(asked) is None and self._home(current_image_id(asked)) is not None:
                asked = current_image_id(asked)  # a link made before the ids changed: the same image
            home = self._home(asked)
            if home is None:
                pool = cat.image_ids(split, cls) if cls in cat.classes_in(split) else ()
                guess = difflib.get_close_matches(asked, list(pool) or list(cat.image_home), n=1, cutoff=0.6)
                if guess:
                    image_id = guess[0]
                    split, cls = self._home(image_id)
                    notes.append(f"Unknown image “{said['image']}”; showing the closest id, "
                                 f"{plain(image_id)}.")
                else:
                    image_id = None
                    notes.append(f"Unknown image “{said['image']}”; showing the first image of the class instead.")
            else:
                if (q.get("split") and home[0] != split) or (class_given and home[1] != cls):
                    notes.append(f"Image {said['image']} is a {home[0]} image of class {plain(home[1])}; "
                                 "split and class follow the image.")
                split, cls = home
                image_id = asked

        if cls not in cat.classes_in(split):
            fallback = cat.default_class(split)
            if class_given:
                where = "" if cls not in cat.classes else f" in the {split} split"
                notes.append(f"No class “{said['class']}”{where}; showing {plain(fallback)} "
                             f"(classes: {_names(cat.classes_in(split))}).")
            cls = fallback
        if (q.get("split") or class_given or q.get("image")) or image_id != self.image_id:
            self._set_location(split, cls, image_id)

        if "methods" in q and q["methods"] != "":
            keys, unknown = cat.parse_methods(q["methods"])
            if unknown:
                notes.append(f"Unknown method(s) {quoted(', '.join(unknown))}; known: "
                             f"{_names(cat.method_labels)}.")
            if not keys:
                keys = list(cat.default_methods)
            updates["methods"] = keys
        for key, (name, allowed, fallback, consequence) in _CHOICES.items():
            if not q.get(key):
                continue
            if q[key] in allowed:
                updates[key] = q[key]
            else:
                notes.append(f"Unknown {name} “{said[key]}”; {consequence} ({name}s: {', '.join(allowed)}).")
                updates[key] = fallback
        if updates:
            self.param.update(**updates)
        if notify and notes:
            self.notices = list(self.notices) + notes
        return notes


class UrlState(param.Parameterized):
    """Untyped mirror of :class:`DashboardState` that ``pn.state.location.sync`` keeps in the URL.

    Untyped on purpose: one value the mirror refused would make the whole sync fail;
    :meth:`DashboardState.apply_query` validates the URL's strings instead."""

    seed = param.Parameter(default=None)
    split = param.Parameter(default=None)
    klass = param.Parameter(default=None)
    image = param.Parameter(default=None)
    methods = param.Parameter(default=None)
    target = param.Parameter(default=None)
    tab = param.Parameter(default=None)
    score = param.Parameter(default=None)
    agreement = param.Parameter(default=None)
    mode = param.Parameter(default=None)

    QUERY = {"seed": "seed", "split": "split", "klass": "class", "image": "image", "methods": "methods",
             "target": "target", "tab": "tab", "score": "score", "agreement": "agreement", "mode": "mode"}

    def as_query(self) -> dict[str, str]:
        return {self.QUERY[p]: v for p, v in self.param.values().items()
                if p in self.QUERY and v is not None and v != ""}

    def set_query(self, query: Mapping[str, str]) -> None:
        inverse = {v: k for k, v in self.QUERY.items()}
        self.param.update(**{inverse[k]: v for k, v in query.items() if k in inverse})


class TextQueryLocation(Location):
    """Panel's location of a page, whose query values are strings, as in the URL."""

    @property
    def query_params(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.search.removeprefix("?")))


def page_location(doc: Any) -> Location:
    """The location (URL) of the server session of ``doc``, as ``pn.state.location`` gives it,
    but reading the query's values as the strings they are.

    Panel's own reading turns digit strings into numbers, and fails on some ("²" is a digit to
    ``str.isdigit`` but not to ``int``; 5,000 digits exceed Python's limit for ``int``): the page
    then never opens. It reads the query as the session starts and whenever the browser reports
    its address, so this location takes the place of Panel's for the session before anything
    asks for it."""
    if doc not in panel_state._locations:  # noqa: SLF001 - Panel keeps one location per document here
        panel_state._locations[doc] = TextQueryLocation.from_request(doc.session_context.request)
    return panel_state._locations[doc]  # noqa: SLF001


def bind_location(state: DashboardState, location: Any) -> UrlState:
    """Keep ``state`` and the page URL in step, both ways, through ``location.sync``.

    The link's values are read here as the strings they are (see :func:`page_location`).
    They are validated (bad ones produce notices and fall back), and the URL is rewritten to the valid state before Panel syncs with it, so a
    shared link always reopens a valid view.
    """
    state.open_link(dict(urllib.parse.parse_qsl(location.search.removeprefix("?"))))
    location.search = "?" + urllib.parse.urlencode(state.to_query())
    mirror = UrlState()
    location.sync(mirror, UrlState.QUERY)  # copies the URL's values, now valid, into the mirror
    busy = {"flag": False}

    def from_url(*_events: Any) -> None:
        if busy["flag"]:
            return
        busy["flag"] = True
        try:
            state.apply_query(mirror.as_query())
            mirror.set_query(state.to_query())
        finally:
            busy["flag"] = False

    def to_url(*_events: Any) -> None:
        if busy["flag"]:
            return
        busy["flag"] = True
        try:
            mirror.set_query(state.to_query())
        finally:
            busy["flag"] = False

    mirror.param.watch(from_url, list(UrlState.QUERY))
    state.param.watch(to_url, list(URL_KEYS))
    return mirror

"""Presentation mode: the page as the back row of a lecture hall needs it.

Text of the sidebar and the legends at 20 px, the winner and each TKO large, the
explanatory paragraphs (anything marked ``pe-explain``) folded away. Every widget and text
pane lives in a shadow root of its own, where a page-wide style cannot reach, so the mode's
style sheet is added to each of them (:func:`present`); a view calls it again after it has
made new panes.
"""

from __future__ import annotations

from typing import Any, Iterator

import panel as pn
from panel.layout.base import ListLike, Panel
from panel.viewable import Viewer

TEXT_PX = 20
PRESENTATION_CSS = f"""
:host {{ --font-size: {TEXT_PX}px; font-size: {TEXT_PX}px; }}
label, select, option, input, button, .bk-btn, .bk-input, .choices__item, .choices__input,
.bk-input-group {{ font-size: {TEXT_PX}px !important; }}
.pe-explain {{ display: none !important; }}
.pe-legend, .pe-legend b, .pe-method-card, .pe-verdict-sub, .pe-model-text, .pe-slow-text,
.pe-notice-text, .pe-scaling {{ font-size: {TEXT_PX}px !important; }}
.pe-verdict {{ font-size: 44px !important; }}
.pe-tko {{ font-size: 72px !important; }}
.pe-title-text {{ font-size: 28px !important; }}
.pe-title-text span {{ font-size: {TEXT_PX}px !important; }}
.pe-count-text {{ font-size: 24px !important; }}
.tabulator {{ font-size: {TEXT_PX}px !important; }}
"""
_STYLED = (pn.pane.HTML, pn.pane.Markdown, pn.widgets.Widget)


def _walk(obj: Any) -> Iterator[Any]:
    """``obj`` and everything inside it, through layouts and the views' own layouts."""
    if isinstance(obj, Viewer):
        yield from _walk(obj.__panel__())
        return
    yield obj
    if isinstance(obj, (Panel, ListLike)):  # a FlexBox is list-like without being a Panel
        for child in obj.objects:
            yield from _walk(child)


def present(roots: list[Any], on: bool) -> None:
    """Give every text pane and widget under ``roots`` the mode's style sheet, or take it away."""
    for obj in (o for root in roots for o in _walk(root)):
        if not isinstance(obj, _STYLED):
            continue
        sheets = [s for s in obj.stylesheets if s != PRESENTATION_CSS]
        wanted = sheets + [PRESENTATION_CSS] if on else sheets
        if len(wanted) != len(obj.stylesheets):
            obj.stylesheets = wanted

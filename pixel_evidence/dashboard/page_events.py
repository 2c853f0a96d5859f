"""What the browser knows and the server needs: the window's size and the arrow keys.

The panes' sizes follow the window (the server sets each figure's frame), so the page
reports its inner size on load and after every resize. In presentation mode ← and → step
through the images; a key pressed while typing into a field (a select, the methods box) is
left alone.
"""

from __future__ import annotations

import param
from panel.reactive import ReactiveHTML


class PageEvents(ReactiveHTML):
    """An invisible element that reports the window's size and counts arrow presses."""

    window_width = param.Integer(default=0, doc="window.innerWidth in CSS pixels (0 until the page reported)")
    window_height = param.Integer(default=0, doc="window.innerHeight in CSS pixels")
    arrows = param.Boolean(default=False, doc="Listen to ← and →")
    press = param.String(default="", doc="'prev:<n>' or 'next:<n>', n counting the presses of this page")

    _template = '<div id="probe" style="display:none"></div>'

    _scripts = {
        "render": """
state.n = 0;
state.report = () => { data.window_width = window.innerWidth; data.window_height = window.innerHeight; };
state.report();
state.resized = () => { clearTimeout(state.timer); state.timer = setTimeout(state.report, 150); };
state.key = (event) => {
  if (!data.arrows || (event.key !== 'ArrowLeft' && event.key !== 'ArrowRight')) return;
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const target = event.composedPath()[0];  // inside a widget's shadow root, not its host
  const tag = target && target.tagName ? target.tagName.toUpperCase() : '';
  if (['INPUT', 'SELECT', 'TEXTAREA'].includes(tag) || (target && target.isContentEditable)) return;
  state.n += 1;
  data.press = (event.key === 'ArrowLeft' ? 'prev:' : 'next:') + state.n;
  event.preventDefault();
};
window.addEventListener('resize', state.resized);
document.addEventListener('keydown', state.key);
""",
        "remove": """
window.removeEventListener('resize', state.resized);
document.removeEventListener('keydown', state.key);
""",
    }

    def __init__(self, **params):
        super().__init__(width=0, height=0, margin=0, sizing_mode="fixed", **params)

    @property
    def step(self) -> int:
        """-1 or +1 for the newest press, 0 before any."""
        return {"prev": -1, "next": 1}.get(self.press.split(":")[0], 0)

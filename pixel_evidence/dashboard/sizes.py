"""How big the per-image panes are for a window, so that the answer sits above the fold.

At 1366 × 768 (a common laptop, and many projectors) the title, the image row, the winner
with the ranking table and the first method's heatmap and top-K picture must all fit in the
first screen; on a wider window the maps grow. The sums below are the page's own: the
template's header and sidebar, the tab bar, and the heights of the rows above the first
method row (pixels, measured on the page with Chromium).
"""

from __future__ import annotations

from dataclasses import dataclass

SIDEBAR = 337          # sidebar (320) and its border and padding
MAIN_PADDING = 50      # the main area's padding and a scroll bar
ABOVE_MAIN = 120       # header and tab bar
TITLE = 40             # the line naming the image
PANE_CHROME = 35       # a pane's title and margins, beside its frame
RANKING = 190          # the winner line and a three-method ranking table
RANKING_PRESENTING = 265
METHOD_CARD = 350      # the numbers beside a method's pictures
COLOUR_BAR = 95        # a heatmap's colour bar and its label
PREDICTION = 230       # the prediction beside the image row
SLACK = 32             # room to spare under the first method row


@dataclass(frozen=True)
class PaneSizes:
    top: int      # image, ground truth and reconstruction
    method: int   # each method's heatmap and top-K picture
    ranking: int  # width of the winner line and the ranking table


DEFAULT = PaneSizes(top=126, method=190, ranking=679)  # for 1366 × 768 until the page reports its size


def pane_sizes(width: int, height: int, presenting: bool = False) -> PaneSizes:
    """Pane sizes (frame pixels) for a window of ``width`` × ``height`` CSS pixels.

    The height left above the fold for the two rows of pictures goes two fifths to the image
    row and the rest to the method rows; each is also bounded by the width."""
    if width <= 0 or height <= 0:
        return DEFAULT
    main = width - SIDEBAR - MAIN_PADDING
    ranking_h = RANKING_PRESENTING if presenting else RANKING
    budget = height - ABOVE_MAIN - TITLE - ranking_h - 2 * PANE_CHROME - SLACK
    top = _clamp(min((main - PREDICTION - COLOUR_BAR) / 3 - PANE_CHROME, 0.4 * budget), 110, 240)
    method = _clamp(min((main - METHOD_CARD - COLOUR_BAR) / 2 - PANE_CHROME, budget - top), 170, 560)
    return PaneSizes(top=top, method=method, ranking=_clamp(main - 300, 480, 760))


def _clamp(value: float, low: int, high: int) -> int:
    return int(max(low, min(high, value)))

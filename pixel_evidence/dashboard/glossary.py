"""The page's three key terms, explained where they appear: a word with a dotted underline
whose tooltip (the browser's own, on hover or long press) says what it means, so nobody has
to leave for the "How to read this" tab to read a number."""

from __future__ import annotations

from pixel_evidence.dashboard.markup import plain

TERMS = {
    "tko": ("TKO", "Top-K overlap: the share of the defect's K pixels that are among the map's K highest pixels "
                   "(1 = the map's top K is exactly the defect, 0 = it misses it entirely)."),
    "lift": ("lift", "Lift = TKO ÷ chance: how many times better than a random map (×1 = no better than chance)."),
    "chance": ("chance", "Chance = K/N, the TKO a random map scores on average: the defect's share of all pixels."),
}


def term(key: str, shown: str | None = None) -> str:
    """``shown`` (default: the term's name) as HTML with the term's explanation as its tooltip."""
    name, meaning = TERMS[key]
    return (f'<span class="pe-help" data-term="{key}" title="{plain(meaning)}" '
            f'style="text-decoration:underline dotted;cursor:help">{plain(shown or name)}</span>')


def header_tooltips() -> dict[str, str]:
    """Tooltips of the ranking table's column headers."""
    return {"TKO": TERMS["tko"][1], "Lift": TERMS["lift"][1], "Chance": TERMS["chance"][1]}

"""Text from files and links, made safe to put into the page's HTML and Markdown.

Image ids, class and folder names, seed metadata, method labels and error messages come from
files the user did not write (a downloaded archive, a colleague's folder) or from a pasted
link. Every one of them reaches the page through :func:`plain`, never as it is.
"""

from __future__ import annotations

# The characters of Markdown syntax that could make a name a link, an image, code or
# mathematics. Alerts (the error box, the summary's notes) are Markdown panes, so HTML
# escaping alone would still let a name such as "![x](http://elsewhere/x.png)" fetch an image;
# written as character references these are only text to Markdown (no link or image starts
# without "["), and HTML shows them unchanged. Emphasis characters are left alone: at worst a
# name shows in italics.
_MARKDOWN = "[]`$\\"
# html.escape's references, and the Markdown ones, in one pass: no reference is escaped twice
_AS_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;",
                          **{c: f"&#{ord(c)};" for c in _MARKDOWN}})


def plain(value: object) -> str:
    """``value`` as text for an HTML or a Markdown pane (or an HTML attribute): shown as typed,
    never read as markup, an image or a link whose text hides its target (Markdown's renderer
    may still link a bare address to itself)."""
    return str(value).translate(_AS_TEXT)

"""One image of a dataset, and the error every data reader raises."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

GOOD = "good"
# The share of a mask's highest value above which a pixel is defect (see images.defect_pixels)
DEFAULT_MASK_THRESHOLD = 0.5
# What a manifest without a mask_threshold column was made with: every value above 0
LEGACY_MASK_THRESHOLD = 0.0


class DataError(ValueError):
    """Input data is not usable; the message names the file and how to fix it."""


@dataclass(frozen=True)
class Sample:
    """One image of a category. Paths are relative to the category root; ``mask_path`` may
    name a folder of masks to unite. ``mask_threshold`` binarises the mask (see
    ``images.defect_pixels``)."""

    id: str
    path: str
    cls: str
    mask_path: str | None
    split: str = ""
    mask_threshold: float = DEFAULT_MASK_THRESHOLD

    @property
    def has_mask(self) -> bool:
        return self.mask_path is not None


def beside(folder: Path, near: str = "", shown: int = 5) -> str:
    """What ``folder`` holds, for a message about a file expected in it: the names most like
    ``near`` (the expected name) first, so that a misnamed file shows among the few named."""
    if not folder.is_dir():
        return f"there is no folder {folder}"
    names = sorted(p.name for p in folder.iterdir())
    if not names:
        return f"{folder} is empty"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    if near:  # the longest shared beginning first (0007 (copy).png for 0007), then the most alike
        names.sort(key=lambda name: (-len(os.path.commonprefix([near.lower(), name.lower()])),
                                     -difflib.SequenceMatcher(None, near, name).ratio()))
    return f"{folder} holds {', '.join(names[:shown])}{more}"

"""One image of a dataset, and the error every data reader raises."""

from __future__ import annotations

from dataclasses import dataclass

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

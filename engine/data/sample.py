"""One image of a dataset, and the error every data reader raises."""

from __future__ import annotations

from dataclasses import dataclass

GOOD = "good"


class DataError(ValueError):
    """Input data is not usable; the message names the file and how to fix it."""


@dataclass(frozen=True)
class Sample:
    """One image of a category. Paths are relative to the category root."""

    id: str
    path: str
    cls: str
    mask_path: str | None
    split: str = ""

    @property
    def has_mask(self) -> bool:
        return self.mask_path is not None

"""What every layout reader shares: listing image files, checking each image/mask pair, and
what happens to a bad file (a one-line ``DataError``, or with ``--skip-bad`` a report)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from .images import check_pair
from .sample import DataError, Sample

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")

Report = Callable[[str], None]


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


class BadInput:
    """Where a reader sends each problem it finds: raised at once, or, with ``skip_bad``,
    reported through ``report`` while the reader leaves the file out and goes on."""

    def __init__(self, skip_bad: bool = False, report: Report | None = None):
        self.skip_bad, self.report = skip_bad, report

    def __call__(self, err: DataError) -> None:
        if not self.skip_bad:
            raise err
        if self.report:
            self.report(f"skipped: {err}")

    def empty_folder(self, folder: Path) -> None:
        self(DataError(f"{folder} holds no images; add its images or remove the empty folder"))


def checked_samples(root: Path, candidates: Iterable[Sample], bad: BadInput) -> tuple[list[Sample], list[str]]:
    """The ``candidates`` whose image and mask decode and fit, and their sorted class names.

    Each bad pair goes to ``bad``; no usable image at all, or two images with one id, is a
    ``DataError`` whatever ``bad`` does.
    """
    samples: list[Sample] = []
    for sample in candidates:
        try:
            check_pair(root, sample)
        except DataError as err:
            bad(err)
        else:
            samples.append(sample)
    if not samples:
        raise DataError(f"{root}: no usable images; see the files reported above")
    check_unique(root, samples)
    return samples, sorted({s.cls for s in samples})


def check_unique(root: Path, samples: Iterable[Sample]) -> None:
    """Two files with one id (say ``a.png`` and ``a.jpg``, or a class folder named
    ``good-train``) would mix their scores."""
    seen: dict[str, str] = {}
    for s in samples:
        if s.id in seen:
            raise DataError(f"{root / s.path} and {root / seen[s.id]} would both be image {s.id!r}; "
                            "rename one of the files or class folders")
        seen[s.id] = s.path

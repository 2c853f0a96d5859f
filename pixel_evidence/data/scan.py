"""What every layout reader shares: listing image files, checking each image/mask pair, and
what happens to a bad file (a one-line ``DataError``, or with ``--skip-bad`` a report)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from pixel_evidence.data.images import MASK_SUFFIXES, check_pair
from pixel_evidence.data.sample import DataError, Sample, beside

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# How many grey masks a warning names before it counts the rest
NAMED_GREY_MASKS = 10

Report = Callable[[str], None]


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def class_folders(folder: Path) -> list[Path]:
    """The class folders under ``folder``, sorted; hidden ones (``.ipynb_checkpoints``) left out."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


class MaskLookup:
    """Finds masks under ``root`` by name, leniently: ``<stem>_mask`` or ``<stem>`` with any
    mask suffix (.png, .bmp, .jpg, .tif) in any case. Each folder is listed once per lookup
    object (one per scan), so a folder of thousands of masks is not listed per image."""

    def __init__(self, root: Path):
        self.root = root
        self._listings: dict[Path, list[Path]] = {}

    def _listing(self, folder: Path) -> list[Path]:
        if folder not in self._listings:
            self._listings[folder] = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        return self._listings[folder]

    def find(self, folder: Path, stem: str, image: Path) -> str:
        """The mask of ``image`` in ``folder``, path relative to the root. None found is a
        ``DataError`` naming the files that are in ``folder`` (a misnamed mask shows up
        there), two found is one naming both."""
        names = {f"{stem}_mask".lower(), stem.lower()}
        found = [p for p in self._listing(folder) if p.stem.lower() in names and p.suffix.lower() in MASK_SUFFIXES]
        if len(found) > 1:
            raise DataError(f"{image}: two masks, {found[0]} and {found[1]}; keep one of them")
        if not found:
            raise DataError(f"{image}: defect image without its mask, expected {folder / stem}_mask.png (or "
                            f"{stem}.png; .bmp, .jpg, .tif too); {beside(folder, stem)}; add the mask, or move the image "
                            "to the defect-free images")
        return found[0].relative_to(self.root).as_posix()


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

    def warn(self, message: str) -> None:
        """A problem that does not stop the reading, said through ``report`` when there is one."""
        if self.report:
            self.report(f"warning: {message}")

    def empty_folder(self, folder: Path) -> None:
        self(DataError(f"{folder} holds no images; add its images or remove the empty folder"))


def checked_samples(root: Path, candidates: Iterable[Sample], bad: BadInput) -> tuple[list[Sample], list[str]]:
    """The ``candidates`` whose image and mask decode and fit, and their sorted class names.

    Each bad pair goes to ``bad``; no usable image at all, or two images with one id, is a
    ``DataError`` whatever ``bad`` does.
    """
    samples: list[Sample] = []
    grey: list[Path] = []
    for sample in candidates:
        try:
            grey += check_pair(root, sample)
        except DataError as err:
            bad(err)
        else:
            samples.append(sample)
    if grey:
        more = f" and {len(grey) - NAMED_GREY_MASKS} more" if len(grey) > NAMED_GREY_MASKS else ""
        names = ", ".join(p.relative_to(root).as_posix() for p in grey[:NAMED_GREY_MASKS])
        bad.warn(f"{len(grey)} mask(s) under {root} hold more than two values (grey edges or JPEG noise): "
                 f"{names}{more}; each is binarised at its mask threshold (default 0.5: above half the mask's "
                 "highest value), recorded in the manifest; set another with --mask-threshold")
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

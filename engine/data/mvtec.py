"""Reading MVTec-AD-layout category folders.

Layout of a category root (the official one, and what the synthetic generator writes)::

    <root>/train/good/*.png
    <root>/test/<class>/*.png
    <root>/ground_truth/<class>/<stem>_mask.png     (defect classes only)

Every image gets one stable id from its place in that tree, ``<origin>-<class>-<stem>``
(e.g. ``test-crack-003``, ``train-good-017``), used in results, the dashboard and URLs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .images import check_pair
from .sample import GOOD, DataError, Sample

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def scan_category(root: Path, *, skip_bad: bool = False,
                  report: Callable[[str], None] | None = None) -> tuple[list[Sample], list[str]]:
    """List every image of an MVTec-layout category and check it.

    Returns ``(samples, classes)``; classes are the names of the class folders that hold
    images, sorted, ``good`` included. Each bad file or empty class folder raises
    ``DataError`` naming it, unless ``skip_bad`` is set: it is then left out and ``report``
    is called with the same message.
    """
    root = Path(root)
    if not (root / "train" / GOOD).is_dir() or not (root / "test").is_dir():
        raise DataError(
            f"{root} is not an MVTec AD category folder: expected {root}/train/good and "
            f"{root}/test/<class>; point --data at a category such as data/hazelnut")
    folders = [("train", GOOD, root / "train" / GOOD)]
    folders += [("test", p.name, p) for p in sorted((root / "test").iterdir()) if p.is_dir()]

    samples: list[Sample] = []

    def skip_or_raise(err: DataError) -> None:
        if not skip_bad:
            raise err
        if report:
            report(f"skipped: {err}")

    for origin, cls, folder in folders:
        files = _image_files(folder)
        if not files:
            skip_or_raise(DataError(f"{folder} holds no images; add its images or remove the empty folder"))
        for path in files:
            sample = Sample(id=f"{origin}-{cls}-{path.stem}", path=path.relative_to(root).as_posix(), cls=cls,
                            mask_path=None if cls == GOOD else f"ground_truth/{cls}/{path.stem}_mask.png")
            try:
                check_pair(root, sample)
            except DataError as err:
                skip_or_raise(err)
            else:
                samples.append(sample)
    if not samples:
        raise DataError(f"{root}: no usable images; see the files reported above")
    return samples, sorted({s.cls for s in samples})

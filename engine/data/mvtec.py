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

from PIL import Image

from .sample import GOOD, DataError, Sample

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _check_readable(path: Path) -> tuple[int, int]:
    """Return (width, height); raise DataError if the file cannot be decoded."""
    try:
        with Image.open(path) as im:
            size = im.size
            im.load()
    except Exception as exc:
        raise DataError(f"{path}: unreadable or truncated image ({exc}); replace or remove the file") from None
    return size


def scan_category(root: Path, *, skip_bad: bool = False,
                  report: Callable[[str], None] | None = None) -> tuple[list[Sample], list[str]]:
    """List every image of an MVTec-layout category and check it.

    Returns ``(samples, classes)``; classes are the class folder names, sorted, ``good``
    included. Each bad file raises ``DataError`` naming it, unless ``skip_bad`` is set: the
    file is then left out and ``report`` is called with the same message.
    """
    root = Path(root)
    if not (root / "train" / GOOD).is_dir() or not (root / "test").is_dir():
        raise DataError(
            f"{root} is not an MVTec AD category folder: expected {root}/train/good and "
            f"{root}/test/<class>; point --data at a category such as data/hazelnut")
    classes = sorted({GOOD} | {p.name for p in (root / "test").iterdir() if p.is_dir()})
    folders = [("train", GOOD, root / "train" / GOOD)]
    folders += [("test", c, root / "test" / c) for c in classes if (root / "test" / c).is_dir()]

    samples: list[Sample] = []
    for origin, cls, folder in folders:
        files = _image_files(folder)
        if not files:
            raise DataError(f"{folder} holds no images; add its images or remove the empty folder")
        for path in files:
            try:
                samples.append(_checked_sample(root, origin, cls, path))
            except DataError as err:
                if not skip_bad:
                    raise
                if report:
                    report(f"skipped: {err}")
    return samples, classes


def _checked_sample(root: Path, origin: str, cls: str, path: Path) -> Sample:
    size = _check_readable(path)
    mask_rel = None
    if cls != GOOD:
        mask = root / "ground_truth" / cls / f"{path.stem}_mask.png"
        if not mask.is_file():
            raise DataError(f"{path}: defect image without its mask; expected {mask}")
        mask_size = _check_readable(mask)
        if mask_size != size:
            raise DataError(f"{mask}: mask is {mask_size[0]}x{mask_size[1]} but its image "
                            f"{path.name} is {size[0]}x{size[1]}; masks must match their image")
        mask_rel = mask.relative_to(root).as_posix()
    return Sample(id=f"{origin}-{cls}-{path.stem}", path=path.relative_to(root).as_posix(),
                  cls=cls, mask_path=mask_rel)

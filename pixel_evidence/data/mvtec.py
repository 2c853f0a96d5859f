"""Reading MVTec-AD-layout category folders.

Layout of a category root (the official one, and what the synthetic generator writes)::

    <root>/train/good/*.png
    <root>/test/<class>/*.png
    <root>/ground_truth/<class>/<stem>_mask.png     (defect classes only; <stem>.png, .bmp,
                                                     .jpg or .tif are read too)

Every image gets one stable id from its place in that tree, used in results, the dashboard
and URLs: ``<class>-<stem>`` for ``test/<class>/<stem>``, ``<class>-train-<stem>`` for
``train/<class>/<stem>`` (e.g. ``crack-003``, ``good-train-017``). Our own split re-divides
the images, so an id must not name a split: the earlier ids (``test-good-000``) read as a
contradiction beside "train split". :func:`current_image_id` maps those (old links).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from pixel_evidence.data.sample import GOOD, DataError, Sample
from pixel_evidence.data.scan import BadInput, MaskLookup, Report, checked_samples, class_folders, image_files


def image_id(origin: str, cls: str, stem: str) -> str:
    """The id of ``<origin>/<cls>/<stem>.*`` (origin: the MVTec folder, ``train`` or ``test``)."""
    return f"{cls}-{stem}" if origin == "test" else f"{cls}-{origin}-{stem}"


def current_image_id(old: str) -> str | None:
    """The id that replaced ``old``, an id of the earlier scheme ``<origin>-<class>-<stem>``
    (``test-crack-003`` -> ``crack-003``, ``train-good-017`` -> ``good-train-017``); ``None``
    when ``old`` is not of that scheme. Only ``good`` has train images, so no parsing guesses."""
    for prefix, origin in (("test-", "test"), (f"train-{GOOD}-", "train")):
        if old.startswith(prefix) and len(old) > len(prefix):
            rest = old[len(prefix):]
            return rest if origin == "test" else image_id(origin, GOOD, rest)
    return None


def looks_like_mvtec(root: Path) -> bool:
    """Whether ``root`` holds MVTec's ``train/good`` and ``test`` folders."""
    return (root / "train" / GOOD).is_dir() and (root / "test").is_dir()


def scan_category(root: Path, *, skip_bad: bool = False,
                  report: Report | None = None) -> tuple[list[Sample], list[str]]:
    """List every image of an MVTec-layout category and check it.

    Returns ``(samples, classes)``; classes are the names of the class folders that hold
    images, sorted, ``good`` included. Each bad file or empty class folder raises
    ``DataError`` naming it, unless ``skip_bad`` is set: it is then left out and ``report``
    is called with the same message. Masks are looked up leniently (see ``scan.MaskLookup``).
    """
    root = Path(root)
    if not looks_like_mvtec(root):
        raise DataError(
            f"{root} is not an MVTec AD category folder: expected {root}/train/good and "
            f"{root}/test/<class>; point --data at a category such as data/hazelnut")
    folders = [ImageFolder("train", GOOD, root / "train" / GOOD)]
    folders += [ImageFolder("test", p.name, p) for p in class_folders(root / "test")]
    masks = MaskLookup(root)
    return read_tree(root, folders,
                     lambda folder, path: masks.find(root / "ground_truth" / folder.cls, path.stem, path),
                     BadInput(skip_bad, report))


@dataclass(frozen=True)
class ImageFolder:
    """A folder of images of one class, and the origin its ids carry (see :func:`image_id`)."""

    origin: str
    cls: str
    path: Path


MaskOf = Callable[[ImageFolder, Path], str]  # (folder, image) -> mask path under root, or DataError


def read_tree(root: Path, folders: Iterable[ImageFolder], mask_of: MaskOf, bad: BadInput
              ) -> tuple[list[Sample], list[str]]:
    """Every image of ``folders`` (each non-``good`` one with the mask ``mask_of`` finds),
    checked: the reader of the MVTec-like layouts."""

    def candidates() -> Iterator[Sample]:
        for folder in folders:
            files = image_files(folder.path)
            if not files:
                bad.empty_folder(folder.path)
            for path in files:
                try:
                    mask = None if folder.cls == GOOD else mask_of(folder, path)
                except DataError as err:
                    bad(err)
                    continue
                yield Sample(image_id(folder.origin, folder.cls, path.stem), path.relative_to(root).as_posix(),
                             folder.cls, mask)

    return checked_samples(root, candidates(), bad)

"""Reading class-folder layouts: one folder of images per class, with or without masks.

Mask-free (layout ``folders``, e.g. a CIFAR-style set; every class is just a label)::

    <root>/<class>/*.png

Images and masks (layout ``masks``, the shape most real defect sets and users' own data
come in)::

    <root>/images/<class>/<stem>.png
    <root>/masks/<class>/<stem>.png        (MVTec's <stem>_mask.png is read too)

In the ``masks`` layout every image of a class other than ``good`` needs its mask, the
same size as the image; ``good`` images have none. Either layout may carry a split::

    <root>/split.csv                       columns path,split; path as under <root>,
                                           e.g. images/crack/001.png; split train or test

which then lists every image; without it the split is the stratified one, as for MVTec.
Image ids are ``<class>-<stem>`` (``crack-001``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Container, Iterator

from .sample import GOOD, DataError, Sample
from .scan import BadInput, Report, checked_samples, image_files

SPLIT_FILE = "split.csv"
SPLIT_COLUMNS = ("path", "split")


def class_folders(folder: Path) -> list[Path]:
    """The class folders under ``folder``, sorted; hidden ones (``.ipynb_checkpoints``) left out."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def looks_like_folders(root: Path) -> bool:
    """Whether some class folder directly under ``root`` holds images."""
    return root.is_dir() and any(image_files(p) for p in class_folders(root))


def looks_like_masks(root: Path) -> bool:
    """Whether ``root`` holds the ``images`` and ``masks`` folders."""
    return (root / "images").is_dir() and (root / "masks").is_dir()


def scan_folders(root: Path, *, skip_bad: bool = False, report: Report | None = None
                 ) -> tuple[list[Sample], list[str]]:
    """Every image of a mask-free class-folder tree, checked; ``(samples, classes)``."""
    root = Path(root)
    if not looks_like_folders(root):
        raise DataError(f"{root} is not a folder of class folders: expected {root}/<class>/*.png")
    return _scan(root, root, masked=False, bad=BadInput(skip_bad, report))


def scan_masks(root: Path, *, skip_bad: bool = False, report: Report | None = None
               ) -> tuple[list[Sample], list[str]]:
    """Every image of an images + masks tree, checked; ``(samples, classes)``."""
    root = Path(root)
    if not looks_like_masks(root):
        raise DataError(f"{root} is not an images + masks folder: expected {root}/images/<class>/*.png and "
                        f"{root}/masks/<class>/<stem>.png")
    return _scan(root, root / "images", masked=True, bad=BadInput(skip_bad, report))


def _scan(root: Path, images: Path, *, masked: bool, bad: BadInput) -> tuple[list[Sample], list[str]]:
    files: dict[str, tuple[str, Path]] = {}  # path under root -> (class, file)
    for folder in class_folders(images):
        found = image_files(folder)
        if not found:
            bad.empty_folder(folder)
        files.update({path.relative_to(root).as_posix(): (folder.name, path) for path in found})
    splits = read_split_file(root, files) if (root / SPLIT_FILE).is_file() else {}

    def candidates() -> Iterator[Sample]:
        for rel, (cls, path) in files.items():
            if splits and rel not in splits:
                bad(DataError(f"{path}: not listed in {root / SPLIT_FILE}; add a row '{rel},train' (or test) "
                              "or remove the image"))
                continue
            try:
                mask = _mask_path(root, cls, path) if masked and cls != GOOD else None
            except DataError as err:
                bad(err)
                continue
            yield Sample(f"{cls}-{path.stem}", rel, cls, mask, splits.get(rel, ""))

    return checked_samples(root, candidates(), bad)


def _mask_path(root: Path, cls: str, image: Path) -> str:
    """``masks/<cls>/<stem>.png`` or ``masks/<cls>/<stem>_mask.png``, whichever exists."""
    names = [f"masks/{cls}/{image.stem}.png", f"masks/{cls}/{image.stem}_mask.png"]
    present = [n for n in names if (root / n).is_file()]
    if len(present) == 2:
        raise DataError(f"{image}: two masks, {root / names[0]} and {root / names[1]}; keep one of them")
    if not present:
        raise DataError(f"{image}: defect image without its mask, {root / names[0]} is missing "
                        f"({image.stem}_mask.png is read too); add the mask, or move the image to "
                        f"images/{GOOD} if it has no defect")
    return present[0]


def read_split_file(root: Path, listed: Container[str]) -> dict[str, str]:
    """``{path: split}`` from ``<root>/split.csv``; every row must name an image of ``listed``
    (paths relative to root) and say ``train`` or ``test``."""
    path = root / SPLIT_FILE
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != SPLIT_COLUMNS:
            raise DataError(f"{path}: the first line must be the columns {','.join(SPLIT_COLUMNS)}, "
                            f"found {','.join(reader.fieldnames or ()) or 'nothing'}")
        splits: dict[str, str] = {}
        for row in reader:
            where = f"{path} line {reader.line_num}"
            rel, split = (row["path"] or "").strip(), (row["split"] or "").strip()
            if split not in ("train", "test"):
                raise DataError(f"{where}: split must be train or test, found {split!r}")
            if rel not in listed:
                raise DataError(f"{where}: {rel!r} is not an image under {root}; fix the path "
                                "(relative to the data folder, e.g. images/crack/001.png) or remove the row")
            if rel in splits:
                raise DataError(f"{where}: {rel} is listed twice; keep one row")
            splits[rel] = split
    return splits

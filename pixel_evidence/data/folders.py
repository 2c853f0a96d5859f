"""Reading class-folder layouts: one folder of images per class, with or without masks.

Mask-free (layout ``folders``, e.g. a CIFAR-style set; every class is just a label)::

    <root>/<class>/*.png

Images and masks (layout ``masks``, the shape most real defect sets and users' own data
come in)::

    <root>/images/<class>/<stem>.png
    <root>/masks/<class>/<stem>.png        (MVTec's <stem>_mask.png is read too)

Class folders beside one mask folder (layout ``mask-folder``: the "folder" format of
anomaly-detection tools, a normal folder, abnormal folders and a mask folder whose files
match the abnormal images by name)::

    <root>/good/*.png                      (or normal/, ok/: read as class good)
    <root>/<class>/<stem>.png              (bad/, crack/, ...)
    <root>/masks/<stem>.png                (or masks/<class>/<stem>.png; the folder may be
                                           named mask, masks, ground_truth, gt, label(s))

In the mask layouts every image of a class other than ``good`` needs its mask, the same
size as the image (looked up leniently: ``<stem>`` or ``<stem>_mask``, .png, .bmp, .jpg or
.tif); ``good`` images have none. ``folders`` and ``masks`` may carry a split::

    <root>/split.csv                       columns path,split; path as under <root>,
                                           e.g. images/crack/001.png; split train or test

which then lists every image; without it the split is the stratified one, as for MVTec.
Image ids are ``<class>-<stem>`` (``crack-001``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Container, Iterator

from pixel_evidence.data.sample import GOOD, DataError, Sample
from pixel_evidence.data.scan import BadInput, MaskLookup, Report, checked_samples, class_folders, image_files

SPLIT_FILE = "split.csv"
SPLIT_COLUMNS = ("path", "split")
# Folder names that hold masks, never a class of images; and those of defect-free images
MASK_FOLDER_NAMES = ("mask", "masks", "ground_truth", "gt", "label", "labels")
NORMAL_FOLDER_NAMES = (GOOD, "normal", "ok")


def looks_like_folders(root: Path) -> bool:
    """Whether some class folder directly under ``root`` holds images, none is a mask folder
    (that would be read as a class of images) and none holds folders but no images (a deeper
    tree, such as MVTec AD 2's test_public/, in a layout not recognised)."""
    folders = class_folders(root) if root.is_dir() else []
    return (any(image_files(p) for p in folders) and _mask_folder(root) is None
            and not any(class_folders(p) and not image_files(p) for p in folders))


def _mask_folder(root: Path) -> Path | None:
    return next((p for p in class_folders(root) if p.name.lower() in MASK_FOLDER_NAMES), None)


def _normal_folder(root: Path) -> Path | None:
    return next((p for p in class_folders(root) if p.name.lower() in NORMAL_FOLDER_NAMES), None)


def looks_like_mask_folder(root: Path) -> bool:
    """Whether ``root`` holds a normal folder, a mask folder and another image folder."""
    return (root.is_dir() and _mask_folder(root) is not None and _normal_folder(root) is not None
            and len([p for p in class_folders(root) if image_files(p)]) >= 2)


def scan_mask_folder(root: Path, *, skip_bad: bool = False, report: Report | None = None
                     ) -> tuple[list[Sample], list[str]]:
    """Every image of a class-folders + mask-folder tree, checked; ``(samples, classes)``."""
    root = Path(root)
    if not looks_like_mask_folder(root):
        raise DataError(f"{root} is not a folder of class folders with a mask folder: expected {root}/good/, "
                        f"{root}/<defect class>/ and {root}/masks/ holding the defect images' masks by name")
    masks, normal = _mask_folder(root), _normal_folder(root)
    bad, lookup = BadInput(skip_bad, report), MaskLookup(root)
    used: dict[str, Path] = {}  # mask -> the image it was given to

    def candidates() -> Iterator[Sample]:
        for folder in class_folders(root):
            if folder == masks:
                continue
            cls = GOOD if folder == normal else folder.name
            files = image_files(folder)
            if not files:
                bad.empty_folder(folder)
            for path in files:
                try:
                    mask = None if cls == GOOD else _flat_or_class_mask(lookup, masks, cls, path, used)
                except DataError as err:
                    bad(err)
                    continue
                yield Sample(f"{cls}-{path.stem}", path.relative_to(root).as_posix(), cls, mask)

    return checked_samples(root, candidates(), bad)


def _flat_or_class_mask(lookup: MaskLookup, masks: Path, cls: str, image: Path, used: dict[str, Path]) -> str:
    """The mask of ``image`` in ``masks/<cls>/`` when that folder exists, else in ``masks/``;
    one flat mask matching images of two classes is a ``DataError``, not a silent pairing."""
    mask = lookup.find(masks / cls if (masks / cls).is_dir() else masks, image.stem, image)
    if used.setdefault(mask, image) != image:
        raise DataError(f"{lookup.root / mask} matches both {used[mask]} and {image}; put each class's masks in a "
                        f"folder of its own, {masks}/<class>/")
    return mask


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
    lookup = MaskLookup(root)
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
                mask = lookup.find(root / "masks" / cls, path.stem, path) if masked and cls != GOOD else None
            except DataError as err:
                bad(err)
                continue
            yield Sample(f"{cls}-{path.stem}", rel, cls, mask, splits.get(rel, ""))

    return checked_samples(root, candidates(), bad)


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

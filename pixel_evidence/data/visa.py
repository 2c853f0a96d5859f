"""Reading one object of VisA (Visual Anomaly, Amazon's industrial defect set).

The VisA download holds twelve objects and one list of all their images::

    <visa>/split_csv/1cls.csv                       object,split,label,image,mask
    <visa>/<object>/Data/Images/Normal/*.JPG
    <visa>/<object>/Data/Images/Anomaly/*.JPG
    <visa>/<object>/Data/Masks/Anomaly/<stem>.png

``--data`` points at one object (``<visa>/candle``), as it points at one MVTec category.
The object's rows of ``1cls.csv`` list its images and masks when that file is there; else
the two image folders are read, each Anomaly image with the mask of its stem.

Classes: VisA records no defect type, only normal or anomaly, so the classes are ``good``
(the name the whole project gives defect-free images: no mask, K = 0, never ranked) and
``anomaly``. Ids are ``good-0836``, ``anomaly-000``. VisA's masks hold small label numbers,
not 0/255, so its masks' threshold is 0: every value above 0 is defect (see
:func:`.images.defect_pixels`).

The csv's own split is not used: ``1cls`` is a one-class split that puts every anomaly in
test, so a classifier would never see one in training (MVTec's split has the same problem,
and the study re-split it the same way).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from pixel_evidence.data.sample import GOOD, DataError, Sample
from pixel_evidence.data.scan import BadInput, Report, checked_samples, image_files

ANOMALY = "anomaly"
SPLIT_CSV = Path("split_csv") / "1cls.csv"
CSV_COLUMNS = ("object", "split", "label", "image", "mask")
# VisA's folder and csv label of each class
FOLDERS = {GOOD: "Normal", ANOMALY: "Anomaly"}
LABELS = {"normal": GOOD, "anomaly": ANOMALY}
# Label masks (1, 2, ... per defect): half the highest label would drop the defects labelled 1
LABEL_MASK_THRESHOLD = 0.0


def looks_like_visa(root: Path) -> bool:
    """Whether ``root`` is one VisA object folder (it holds ``Data/Images``)."""
    return (root / "Data" / "Images").is_dir()


def looks_like_visa_download(root: Path) -> bool:
    """The whole download (``split_csv`` beside the objects) rather than one object."""
    return (root / SPLIT_CSV).is_file()


def scan_visa(root: Path, *, skip_bad: bool = False, report: Report | None = None
              ) -> tuple[list[Sample], list[str]]:
    """Every image of one VisA object, checked; ``(samples, classes)``."""
    root = Path(root)
    if not looks_like_visa(root):
        raise DataError(f"{root} is not a VisA object folder: expected {root}/Data/Images/Normal and "
                        f"{root}/Data/Images/Anomaly; point --data at one object, such as <visa>/candle")
    bad = BadInput(skip_bad, report)
    listing = root.parent / SPLIT_CSV
    candidates = _from_csv(root, listing) if listing.is_file() else _from_folders(root, bad)
    return checked_samples(root, candidates, bad)


def _from_folders(root: Path, bad: BadInput) -> Iterator[Sample]:
    for cls, name in FOLDERS.items():
        folder = root / "Data" / "Images" / name
        if not folder.is_dir():  # an object of one kind only: the other class is absent, not bad
            continue
        files = image_files(folder)
        if not files:
            bad.empty_folder(folder)
        for path in files:
            mask = f"Data/Masks/{name}/{path.stem}.png" if cls == ANOMALY else None
            yield Sample(f"{cls}-{path.stem}", path.relative_to(root).as_posix(), cls, mask,
                         mask_threshold=LABEL_MASK_THRESHOLD)


def _from_csv(root: Path, listing: Path) -> list[Sample]:
    """The object's rows of ``1cls.csv``, with paths made relative to the object folder."""
    prefix = f"{root.name}/"
    samples = []
    with open(listing, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise DataError(f"{listing}: not VisA's split list, missing columns {missing}; restore it from the "
                            "download, or delete it to read the image folders instead")
        for row in reader:
            if row["object"] != root.name:
                continue
            where = f"{listing} line {reader.line_num}"
            cls = LABELS.get(row["label"])
            if cls is None:
                raise DataError(f"{where}: label must be normal or anomaly, found {row['label']!r}")
            image, mask = row["image"], row["mask"] or None
            if cls == ANOMALY and mask is None:
                raise DataError(f"{where}: anomaly image {image} has no mask; add its mask path")
            for path in (image, mask):
                if path and not path.startswith(prefix):
                    raise DataError(f"{where}: {path} is not under the object folder {root.name}/")
            rel = image[len(prefix):]
            samples.append(Sample(f"{cls}-{Path(rel).stem}", rel, cls,
                                  mask[len(prefix):] if cls == ANOMALY and mask else None,
                                  mask_threshold=LABEL_MASK_THRESHOLD))
    if not samples:
        raise DataError(f"{listing} lists no images of object {root.name!r}; point --data at a folder named "
                        "like one of the csv's objects (e.g. candle)")
    return samples

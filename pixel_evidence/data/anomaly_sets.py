"""Reading the published anomaly-inspection data sets with pixel masks, each as it is
downloaded (``<c>`` a category, ``--data`` points at one)::

    mvtec2    MVTec AD 2     <c>/train/good/, <c>/validation/good/, <c>/test_public/{good,bad}/,
                             <c>/test_public/ground_truth/bad/<stem>_mask.png
                             (test_private* hold no masks and are not read)
    loco      MVTec LOCO AD  <c>/{train,validation}/good/, <c>/test/<class>/NNN.png,
                             <c>/ground_truth/<class>/NNN/000.png, 001.png, ... (united)
    autovi    AutoVI         <c>/{train,test}/good/, <c>/test/<defect>/, <c>/ground_truth/<defect>/<stem>/0000.png
    btech     BTech (BTAD)   NN/train/ok/, NN/test/{ok,ko}/ (.bmp or .png), NN/ground_truth/ko/<stem>.png
    bmad      BMAD           <c>/train/good/img/, <c>/{valid,test}/{good,Ungood}/img/, .../Ungood/label/<stem>.png
    kolektor  Kolektor SDD   kosNN/PartN.jpg with kosNN/PartN_label.bmp (an all-zero label: defect-free)
    realiad   Real-IAD       realiad_<res>/<c>/ with realiad_jsons/<c>.json listing train and test images
                             (image_path, mask_path, anomaly_class OK or a defect)

Ids follow MVTec's scheme (``mvtec.image_id``): ``<class>-<stem>`` for test images,
``<class>-<origin>-<stem>`` for the others (``good-validation-017``). Defect-free images are
class ``good`` whatever the set calls them (ok, OK). As for VisA, a set's own split is not
used: it puts every defect in test, so a classifier would never train on one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from pixel_evidence.data.images import MASK_SUFFIXES
from pixel_evidence.data.mvtec import ImageFolder, read_tree
from pixel_evidence.data.sample import GOOD, DataError, Sample, beside
from pixel_evidence.data.scan import BadInput, MaskLookup, Report, checked_samples, class_folders, image_files

DEFECT = "defect"


def _dirs(root: Path, *parts: str) -> bool:
    return all((root / part).is_dir() for part in parts)


def _check(root: Path, looks_like, name: str, tree: str) -> None:
    if not looks_like(root):
        raise DataError(f"{root} is not in the {name} layout: expected {tree}")


# MVTec AD 2 ----------------------------------------------------------------------------

def looks_like_mvtec2(root: Path) -> bool:
    return _dirs(root, f"train/{GOOD}", "test_public")


def scan_mvtec2(root: Path, *, skip_bad: bool = False, report: Report | None = None):
    root = Path(root)
    _check(root, looks_like_mvtec2, "mvtec2", "train/good/ and test_public/{good,bad}/ with test_public/ground_truth/")
    test = root / "test_public"
    folders = [ImageFolder(origin, GOOD, root / origin / GOOD) for origin in ("train", "validation")
               if (root / origin / GOOD).is_dir()]
    folders += [ImageFolder("test", p.name, p) for p in class_folders(test) if p.name != "ground_truth"]
    masks = MaskLookup(root)
    return read_tree(root, folders, lambda f, image: masks.find(test / "ground_truth" / f.cls, image.stem, image),
                     BadInput(skip_bad, report))


# MVTec LOCO AD and AutoVI: a folder of masks per image --------------------------------

def _has_mask_folders(root: Path) -> bool:
    gt = root / "ground_truth"
    return gt.is_dir() and any(p.is_dir() for c in class_folders(gt) for p in c.iterdir())


def looks_like_loco(root: Path) -> bool:
    return _dirs(root, f"train/{GOOD}", f"validation/{GOOD}", "test") and _has_mask_folders(root)


def looks_like_autovi(root: Path) -> bool:
    return _dirs(root, f"train/{GOOD}", "test") and _has_mask_folders(root)


def _mask_folder(root: Path, folder: Path, image: Path) -> str:
    """``folder/<stem>/``, which must hold at least one mask file: all of them are united."""
    masks = folder / image.stem
    if not (masks.is_dir() and any(p.suffix.lower() in MASK_SUFFIXES for p in masks.iterdir())):
        raise DataError(f"{image}: defect image without its masks, expected the folder {masks} holding them "
                        f"(000.png, ...); {beside(masks) if masks.is_dir() else beside(folder, image.stem)}; add the masks, or move "
                        "the image to the defect-free images")
    return masks.relative_to(root).as_posix()


def _scan_mask_folders(root: Path, origins: tuple[str, ...], skip_bad: bool, report: Report | None):
    folders = [ImageFolder(origin, GOOD, root / origin / GOOD) for origin in origins]
    folders += [ImageFolder("test", p.name, p) for p in class_folders(root / "test")]
    return read_tree(root, folders, lambda f, image: _mask_folder(root, root / "ground_truth" / f.cls, image),
                     BadInput(skip_bad, report))


def scan_loco(root: Path, *, skip_bad: bool = False, report: Report | None = None):
    root = Path(root)
    _check(root, looks_like_loco, "loco", "{train,validation}/good/, test/<class>/, ground_truth/<class>/<stem>/")
    return _scan_mask_folders(root, ("train", "validation"), skip_bad, report)


def scan_autovi(root: Path, *, skip_bad: bool = False, report: Report | None = None):
    root = Path(root)
    _check(root, looks_like_autovi, "autovi", "train/good/, test/<defect>/, ground_truth/<defect>/<stem>/")
    return _scan_mask_folders(root, ("train",), skip_bad, report)


# BTech ---------------------------------------------------------------------------------

BTECH_CLASSES = {"ok": GOOD, "ko": "ko"}


def looks_like_btech(root: Path) -> bool:
    return _dirs(root, "train/ok", "test")


def scan_btech(root: Path, *, skip_bad: bool = False, report: Report | None = None):
    root = Path(root)
    _check(root, looks_like_btech, "btech", "train/ok/, test/{ok,ko}/, ground_truth/ko/<stem>.png")
    folders = [ImageFolder("train", GOOD, root / "train" / "ok")]
    folders += [ImageFolder("test", BTECH_CLASSES.get(p.name, p.name), p) for p in class_folders(root / "test")]
    masks = MaskLookup(root)
    return read_tree(root, folders, lambda f, image: masks.find(root / "ground_truth" / image.parent.name, image.stem,
                                                                image), BadInput(skip_bad, report))


# BMAD ----------------------------------------------------------------------------------

def looks_like_bmad(root: Path) -> bool:
    return _dirs(root, f"train/{GOOD}") and any(root.glob("*/*/img"))


def scan_bmad(root: Path, *, skip_bad: bool = False, report: Report | None = None):
    root = Path(root)
    _check(root, looks_like_bmad, "bmad", "train/good/img/, {valid,test}/{good,Ungood}/img/ and .../Ungood/label/")
    folders = [ImageFolder(origin, p.name, p / "img") for origin in ("train", "valid", "test")
               if (root / origin).is_dir() for p in class_folders(root / origin)]
    masks = MaskLookup(root)
    return read_tree(root, folders, lambda f, image: masks.find(image.parent.parent / "label", image.stem, image),
                     BadInput(skip_bad, report))


# Kolektor SDD --------------------------------------------------------------------------

LABEL_SUFFIX = "_label"


def looks_like_kolektor(root: Path) -> bool:
    return root.is_dir() and any(p.stem.endswith(LABEL_SUFFIX) for p in root.glob("*/*.*"))


def scan_kolektor(root: Path, *, skip_bad: bool = False, report: Report | None = None):
    """Every part of every ``kosNN`` folder; the class comes from its label: ``defect``
    when the label marks any pixel, ``good`` (no mask) when it is all zero."""
    from pixel_evidence.data.images import defect_pixels, mask_files, opened

    root = Path(root)
    _check(root, looks_like_kolektor, "kolektor", "kosNN/PartN.jpg with kosNN/PartN_label.bmp")
    bad, masks = BadInput(skip_bad, report), MaskLookup(root)

    def candidates() -> Iterator[Sample]:
        for folder in class_folders(root):
            for image in image_files(folder):
                if image.stem.endswith(LABEL_SUFFIX):
                    continue
                try:
                    label = masks.find(folder, image.stem + LABEL_SUFFIX, image)
                    path = mask_files(root, label)[0]
                    marked = defect_pixels(opened(path, "mask")).any()
                except DataError as err:
                    bad(err)
                    continue
                cls = DEFECT if marked else GOOD
                yield Sample(f"{cls}-{folder.name}-{image.stem}", image.relative_to(root).as_posix(), cls,
                             label if marked else None)

    return checked_samples(root, candidates(), bad)


# Real-IAD ------------------------------------------------------------------------------

REALIAD_NORMAL = "OK"


def realiad_listing(root: Path) -> Path | None:
    """``realiad_jsons/<c>.json`` beside ``realiad_<res>/`` (or one level deeper, as unpacked)."""
    base = Path(root).resolve().parent.parent
    for listing in (base / "realiad_jsons" / f"{root.name}.json",
                    base / "realiad_jsons" / "realiad_jsons" / f"{root.name}.json"):
        if listing.is_file():
            return listing
    return None


def looks_like_realiad(root: Path) -> bool:
    return Path(root).is_dir() and realiad_listing(Path(root)) is not None


def scan_realiad(root: Path, *, skip_bad: bool = False, report: Report | None = None):
    root = Path(root)
    listing = realiad_listing(root)
    if listing is None:
        raise DataError(f"{root} is not a Real-IAD category: expected its list "
                        f"{root.parent.parent}/realiad_jsons/{root.name}.json beside {root.parent.name}/")
    bad = BadInput(skip_bad, report)
    try:
        entries = json.loads(listing.read_text())
        rows = [(part, i, entry) for part in ("train", "test") for i, entry in enumerate(entries.get(part, []))]
    except (ValueError, AttributeError, TypeError) as exc:
        raise DataError(f"{listing}: not a Real-IAD list ({exc}); restore it from the download") from None

    def under_root(path: str) -> str:
        prefix = f"{root.name}/"
        return path[len(prefix):] if path.startswith(prefix) else path

    def candidates() -> Iterator[Sample]:
        seen: set[str] = set()
        for part, i, entry in rows:
            where = f"{listing} {part}[{i}]"
            try:
                image, kind, mask = entry["image_path"], entry["anomaly_class"], entry.get("mask_path")
            except (KeyError, TypeError):
                bad(DataError(f"{where}: an entry needs image_path and anomaly_class; fix or remove it"))
                continue
            rel = under_root(image)
            if rel in seen:  # listed in both train and test
                continue
            seen.add(rel)
            cls = GOOD if kind == REALIAD_NORMAL else kind
            if cls != GOOD and not mask:
                bad(DataError(f"{where}: defect image {image} ({kind}) has no mask_path; add it or remove the entry"))
                continue
            yield Sample(f"{cls}-{Path(rel).stem}", rel, cls, under_root(mask) if cls != GOOD else None)

    return checked_samples(root, candidates(), bad)

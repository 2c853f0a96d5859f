"""The data layouts a folder can have, recognising which one it is, and reading it.

Every reader returns the same ``Sample`` records (ids unique, paths relative to the data
folder), so the manifest, training, the engine and the dashboard need not know the layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pixel_evidence.data.anomaly_sets import (looks_like_autovi, looks_like_bmad, looks_like_btech, looks_like_kolektor,
                                              looks_like_loco, looks_like_mvtec2, looks_like_realiad, scan_autovi,
                                              scan_bmad, scan_btech, scan_kolektor, scan_loco, scan_mvtec2,
                                              scan_realiad)
from pixel_evidence.data.folders import (looks_like_folders, looks_like_mask_folder, looks_like_masks, scan_folders,
                                         scan_mask_folder, scan_masks)
from pixel_evidence.data.mvtec import looks_like_mvtec, scan_category
from pixel_evidence.data.sample import DataError, Sample
from pixel_evidence.data.scan import Report
from pixel_evidence.data.visa import looks_like_visa, looks_like_visa_download, scan_visa

Reader = Callable[..., tuple[list[Sample], list[str]]]


@dataclass(frozen=True)
class Layout:
    """One way of arranging images (and masks) in a folder."""

    name: str                           # the --layout word
    tree: str                           # what the folder holds, for messages
    looks_like: Callable[[Path], bool]  # recognition, by folder and file names only
    read: Reader                        # (root, *, skip_bad, report) -> (samples, classes)
    marks: tuple[str, ...]              # paths (globs) under the root typical of it, for the nearest match

    def marks_found(self, root: Path) -> list[str]:
        return [mark for mark in self.marks
                if (next(root.glob(mark), None) if "*" in mark else (root / mark).exists())]


# In the order they are tried: the more specific folder names first (MVTec's relatives before
# MVTec), the mask-free one last (any folder of class folders looks like it).
LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (
    Layout("mvtec2", "MVTec AD 2: train/good/, validation/good/, test_public/{good,bad}/, "
           "test_public/ground_truth/bad/<stem>_mask.png", looks_like_mvtec2, scan_mvtec2,
           ("train/good", "validation/good", "test_public/bad", "test_public/ground_truth")),
    Layout("loco", "MVTec LOCO AD: {train,validation}/good/, test/<class>/, ground_truth/<class>/<stem>/000.png",
           looks_like_loco, scan_loco, ("train/good", "validation/good", "test/*", "ground_truth/*/*/")),
    Layout("autovi", "AutoVI: train/good/, test/<defect>/, ground_truth/<defect>/<stem>/0000.png",
           looks_like_autovi, scan_autovi, ("train/good", "test/*", "ground_truth/*/*/")),
    Layout("bmad", "BMAD: train/good/img/, {valid,test}/{good,Ungood}/img/, {valid,test}/Ungood/label/",
           looks_like_bmad, scan_bmad, ("train/good", "test/good/img", "test/Ungood/img", "test/Ungood/label")),
    Layout("btech", "BTech: train/ok/, test/{ok,ko}/, ground_truth/ko/<stem>.png", looks_like_btech, scan_btech,
           ("train/ok", "test/ok", "test/ko", "ground_truth/ko")),
    Layout("mvtec", "MVTec AD, MPDD, VAD: train/good/, test/<class>/, ground_truth/<class>/<stem>_mask.png",
           looks_like_mvtec, scan_category, ("train/good", "test/*", "ground_truth/*")),
    Layout("visa", "VisA, one object: Data/Images/{Normal,Anomaly}/, Data/Masks/Anomaly/", looks_like_visa,
           scan_visa, ("Data/Images/Normal", "Data/Images/Anomaly", "Data/Masks/Anomaly")),
    Layout("kolektor", "Kolektor SDD: kosNN/PartN.jpg with kosNN/PartN_label.bmp", looks_like_kolektor,
           scan_kolektor, ("*/*_label.*",)),
    Layout("realiad", "Real-IAD, one category: realiad_<res>/<c>/{OK,NG}/ with realiad_jsons/<c>.json",
           looks_like_realiad, scan_realiad, ("OK", "NG", "../../realiad_jsons")),
    Layout("masks", "images/<class>/, masks/<class>/<stem>.png", looks_like_masks, scan_masks, ("images/*", "masks")),
    Layout("mask-folder", "good/, <class>/, masks/<stem>.png (the tools' folder format)", looks_like_mask_folder,
           scan_mask_folder, ("good", "masks", "*/*.png")),
    Layout("folders", "<class>/*.png, no masks", looks_like_folders, scan_folders, ()),
)}


def layout_of(root: Path, name: str | None = None) -> Layout:
    """The layout of ``root``: the one called ``name``, which ``root`` must look like, or
    when ``name`` is None the first that ``root`` looks like.

    A folder of no known layout is a ``DataError`` that lists the layouts and ``--layout``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; point --data at the data folder")
    if name is not None:
        layout = LAYOUTS.get(name)
        if layout is None:
            raise DataError(f"unknown layout {name!r}; choose from {', '.join(LAYOUTS)}")
        if not layout.looks_like(root):
            raise DataError(f"{root} is not in the {name} layout ({layout.tree}); point --data at such a "
                            "folder or leave --layout out to have it recognised")
        return layout
    if looks_like_visa_download(root):
        raise DataError(f"{root} is the whole VisA download; point --data at one object, such as {root}/candle")
    for layout in LAYOUTS.values():
        if layout.looks_like(root):
            return layout
    raise DataError(unreadable(root))


def unreadable(root: Path) -> str:
    """One line for a folder of no known layout: the layouts read, and the nearest match
    with what it lacks."""
    names = ", ".join(LAYOUTS)
    line = f"{root}: not a data layout this program reads ({names}; see the README's \"Your own data\")"
    nearest = nearest_layout(root)
    if nearest is not None:
        found = nearest.marks_found(root)
        missing = [mark for mark in nearest.marks if mark not in found]
        line += (f"; nearest: {nearest.name} ({nearest.tree}), which would need {', '.join(missing) or 'more'} "
                 f"beside {', '.join(found)}")
    return line + "; arrange the folder like one of them, or name its layout with --layout"


def nearest_layout(root: Path) -> Layout | None:
    """The layout with the most of its marks under ``root``, then the largest share of them
    (the first of a tie); None when no layout has any."""
    scores = [((len(found), len(found) / len(layout.marks)), layout) for layout in LAYOUTS.values() if layout.marks
              for found in [layout.marks_found(root)]]
    best = max(score for score, _ in scores)
    return next(layout for score, layout in scores if score == best) if best[0] else None


def scan_data(root: Path, layout: str | None = None, *, skip_bad: bool = False,
              report: Report | None = None) -> tuple[list[Sample], list[str]]:
    """Every usable image of ``root`` read in its layout (recognised unless ``layout`` names
    it): ``(samples, classes)``. Bad files raise or, with ``skip_bad``, go to ``report``."""
    return layout_of(root, layout).read(Path(root), skip_bad=skip_bad, report=report)

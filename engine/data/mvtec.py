"""Reading MVTec-AD-layout category folders.

Layout of a category root (the official one, and what the synthetic generator writes)::

    <root>/train/good/*.png
    <root>/test/<class>/*.png
    <root>/ground_truth/<class>/<stem>_mask.png     (defect classes only)

Every image gets one stable id from its place in that tree, used in results, the dashboard
and URLs: ``<class>-<stem>`` for ``test/<class>/<stem>``, ``<class>-train-<stem>`` for
``train/<class>/<stem>`` (e.g. ``crack-003``, ``good-train-017``). Our own split re-divides
the images, so an id must not name a split: the earlier ids (``test-good-000``) read as a
contradiction beside "train split". :func:`current_image_id` maps those (old links).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .sample import GOOD, DataError, Sample
from .scan import BadInput, Report, checked_samples, image_files


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
    is called with the same message.
    """
    root = Path(root)
    if not looks_like_mvtec(root):
        raise DataError(
            f"{root} is not an MVTec AD category folder: expected {root}/train/good and "
            f"{root}/test/<class>; point --data at a category such as data/hazelnut")
    folders = [("train", GOOD, root / "train" / GOOD)]
    folders += [("test", p.name, p) for p in sorted((root / "test").iterdir()) if p.is_dir()]
    bad = BadInput(skip_bad, report)

    def candidates() -> Iterator[Sample]:
        for origin, cls, folder in folders:
            files = image_files(folder)
            if not files:
                bad.empty_folder(folder)
            for path in files:
                yield Sample(id=image_id(origin, cls, path.stem), path=path.relative_to(root).as_posix(), cls=cls,
                             mask_path=None if cls == GOOD else f"ground_truth/{cls}/{path.stem}_mask.png")

    return checked_samples(root, candidates(), bad)

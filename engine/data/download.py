"""Fetch one MVTec AD category archive and unpack it into the MVTec layout.

The result of :func:`download_category` is a folder laid out the way MVTec
publishes it::

    <data_dir>/<category>/train/good/*.png
    <data_dir>/<category>/test/<defect>/*.png
    <data_dir>/<category>/ground_truth/<defect>/*_mask.png

The archive is fetched (resumably, with retries and an optional checksum) by
:func:`engine.data.fetch.fetch` into ``<data_dir>/.downloads/``, unpacked
safely by :func:`engine.data.archive.unpacked` into a hidden scratch folder
inside ``data_dir``, and only then is the category folder renamed into place,
so an interrupted run never leaves half a category.  This module holds what is
MVTec-specific: URLs, category names, the layout and the command line.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import urllib.parse
from pathlib import Path
from typing import Iterator

from .archive import ArchiveError, UnsafeArchiveError, unpacked
from .fetch import ChecksumError, DownloadError, NetworkError, fetch, normalise_sha256

__all__ = [
    "MVTEC_CATEGORIES",
    "OFFICIAL_URL_TEMPLATE",
    "FULL_DATASET_URL",
    "KNOWN_SHA256",
    "DEFAULT_DATA_DIR",
    "DownloadError",
    "ChecksumError",
    "UnsafeArchiveError",
    "official_url",
    "download_category",
    "is_complete_category",
    "add_download_arguments",
    "run_download",
]

#: The 15 MVTec AD categories (5 textures, 10 objects), alphabetical.
MVTEC_CATEGORIES: tuple[str, ...] = (
    "bottle",
    "cable",
    "capsule",
    "carpet",
    "grid",
    "hazelnut",
    "leather",
    "metal_nut",
    "pill",
    "screw",
    "tile",
    "toothbrush",
    "transistor",
    "wood",
    "zipper",
)

#: Shape of the official per-category links on MVTec's file host (mydrive.ch).
#: ``share`` is the share id plus its access key, ``file_id`` the per-file
#: ``<number>-<timestamp>`` pair.  Use :func:`official_url` to fill it in.
OFFICIAL_URL_TEMPLATE = "https://www.mydrive.ch/shares/{share}/download/{file_id}/{category}.tar.xz"

_MAIN_SHARE = "38536/3830184030e49fe74747669442f0f282"
# The pill archive lives in a different share from the other fourteen.
_PILL_SHARE = "43421/11a215a5749fcfb75e331ddd5f8e43ee"

# (share, file id) per category, as linked from MVTec's download page and used
# by many public anomaly-detection projects.
_OFFICIAL_FILES: dict[str, tuple[str, str]] = {
    "bottle": (_MAIN_SHARE, "420937370-1629951468"),
    "cable": (_MAIN_SHARE, "420937413-1629951498"),
    "capsule": (_MAIN_SHARE, "420937454-1629951595"),
    "carpet": (_MAIN_SHARE, "420937484-1629951672"),
    "grid": (_MAIN_SHARE, "420937487-1629951814"),
    "hazelnut": (_MAIN_SHARE, "420937545-1629951845"),
    "leather": (_MAIN_SHARE, "420937607-1629951964"),
    "metal_nut": (_MAIN_SHARE, "420937637-1629952063"),
    "pill": (_PILL_SHARE, "420938129-1629953099"),
    "screw": (_MAIN_SHARE, "420938130-1629953152"),
    "tile": (_MAIN_SHARE, "420938133-1629953189"),
    "toothbrush": (_MAIN_SHARE, "420938134-1629953256"),
    "transistor": (_MAIN_SHARE, "420938166-1629953277"),
    "wood": (_MAIN_SHARE, "420938383-1629953354"),
    "zipper": (_MAIN_SHARE, "420938385-1629953449"),
}

#: The whole data set in one archive (about 4.9 GB).
FULL_DATASET_URL = OFFICIAL_URL_TEMPLATE.format(
    share=_MAIN_SHARE, file_id="420938113-1629952094", category="mvtec_anomaly_detection"
)

#: SHA-256 digests of published archives, keyed by archive file name.  Only the
#: full-data-set digest is published (anomalib pins it); no per-category
#: digests are known, so category downloads are verified only when the caller
#: passes ``sha256=``.
KNOWN_SHA256: dict[str, str] = {
    "mvtec_anomaly_detection.tar.xz": "cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d",
}

DEFAULT_DATA_DIR = Path("data")
_DOWNLOADS = ".downloads"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def official_url(category: str) -> str:
    """Return the official MVTec download URL of ``<category>.tar.xz``.

    Raises ``ValueError`` for a name that is not one of :data:`MVTEC_CATEGORIES`.
    """
    try:
        share, file_id = _OFFICIAL_FILES[category]
    except KeyError:
        raise ValueError(
            f"unknown MVTec AD category {category!r}; expected one of: {', '.join(MVTEC_CATEGORIES)}"
        ) from None
    return OFFICIAL_URL_TEMPLATE.format(share=share, file_id=file_id, category=category)


def is_complete_category(folder: Path) -> bool:
    """True when ``folder`` has both a ``train/`` and a ``test/`` sub-folder."""
    return (folder / "train").is_dir() and (folder / "test").is_dir()


def download_category(
    category: str,
    data_dir: Path,
    *,
    url: str | None = None,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download and unpack one MVTec AD category; return ``<data_dir>/<category>``.

    Args:
        category: Category name, e.g. ``"hazelnut"``.  Must be one of
            :data:`MVTEC_CATEGORIES` unless ``url`` is given.
        data_dir: Folder that receives ``<category>/`` (created if missing).
            Partial downloads live in ``<data_dir>/.downloads/``.
        url: Archive URL.  Default: :func:`official_url` of ``category``.
        sha256: Expected SHA-256 hex digest of the archive.  Default: the entry
            for the archive's file name in :data:`KNOWN_SHA256`, if any; with
            neither, the archive is not verified.
        retries: How many times a transient failure (reset, truncated body,
            time-out, HTTP 5xx) is retried, each retry resuming.  Default 3.
        timeout: Socket time-out in seconds for connecting and for each read.
            Default 30.
        progress: Show a tqdm byte progress bar on stderr.  Default True.

    Returns:
        The absolute path ``<data_dir>/<category>``.  If it already has
        ``train/`` and ``test/`` it is returned at once, without any network
        access.

    Raises:
        DownloadError: no network, HTTP error, retries used up, damaged
            archive, or the archive lacks the category.  The message is one line.
        ChecksumError: (a ``DownloadError``) digest mismatch; the downloaded
            file has been deleted.
        UnsafeArchiveError: the archive contains a dangerous member; nothing
            was extracted.
        ValueError: bad category name or malformed ``sha256``.
    """
    _check_category_name(category)
    if url is None:
        url = official_url(category)
    expected = normalise_sha256(sha256)
    if retries < 0:
        raise ValueError("retries must be >= 0")

    data_dir = Path(data_dir).expanduser().absolute()
    target = data_dir / category
    if is_complete_category(target):
        return target
    archive_name = _archive_name(url, category)

    if target.exists():
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        else:
            raise DownloadError(
                f"{target} exists but has no train/ and test/ folders; move it away or delete it, then run again"
            )

    archive = data_dir / _DOWNLOADS / archive_name
    try:
        fetch(url, archive, sha256=expected or KNOWN_SHA256.get(archive_name), retries=retries, timeout=timeout,
              progress=progress)
    except NetworkError as exc:
        raise DownloadError(
            f"{exc}; download {archive_name} by hand and extract it so that {target / 'train' / 'good'} exists"
        ) from exc
    _unpack_category(archive, data_dir, category, url)
    return target


def _unpack_category(archive: Path, data_dir: Path, category: str, url: str) -> None:
    """Move ``category`` (and, from a whole-data-set archive, the other missing categories) into ``data_dir``.

    The archive is deleted once unpacked, and also when it is damaged or unsafe
    (fetching it again is the fix); it is kept when it lacks the category.
    """
    try:
        with unpacked(archive, data_dir) as scratch:
            found = _find_category_root(scratch, category)
            if found is None:
                raise DownloadError(
                    f"{archive.name} from {url} does not contain a {category}/ folder with train/ and test/; "
                    f"the archive was kept at {archive}"
                )
            _move_into_place(found, data_dir / category)
            # An archive of the whole data set also brings the other categories:
            # keep the complete ones that are not there yet.
            if found != scratch:
                for other in MVTEC_CATEGORIES:
                    candidate = found.parent / other
                    if other != category and is_complete_category(candidate) and not (data_dir / other).exists():
                        _move_into_place(candidate, data_dir / other)
    except UnsafeArchiveError:
        archive.unlink(missing_ok=True)
        raise
    except ArchiveError as exc:
        archive.unlink(missing_ok=True)
        raise DownloadError(f"{exc}; it was downloaded from {url} and has been deleted") from exc
    archive.unlink(missing_ok=True)


def _check_category_name(category: str) -> None:
    if not isinstance(category, str) or not _SAFE_NAME.match(category) or category in (".", ".."):
        raise ValueError(f"invalid category name {category!r}")


def _archive_name(url: str, category: str) -> str:
    """File name to store the download under: the URL's last path segment."""
    segment = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    if segment and _SAFE_NAME.match(segment):
        return segment
    return f"{category}.tar.xz"


def _iter_dirs(root: Path, depth: int) -> Iterator[Path]:
    if depth < 0:
        return
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return
    for child in children:
        yield child
        yield from _iter_dirs(child, depth - 1)


def _find_category_root(extracted: Path, category: str) -> Path | None:
    """Locate the category folder inside a freshly unpacked archive.

    Handles the official layout (``<category>/train``), archives of the whole
    data set (``[mvtec_anomaly_detection/]<category>/train``) and flat
    archives whose top level is ``train/`` and ``test/`` directly.
    """
    direct = extracted / category
    if is_complete_category(direct):
        return direct
    for candidate in _iter_dirs(extracted, 3):
        if candidate.name == category and is_complete_category(candidate):
            return candidate
    if is_complete_category(extracted):
        return extracted
    return None


def _move_into_place(source: Path, target: Path) -> None:
    try:
        os.replace(source, target)
    except OSError:
        if is_complete_category(target):  # someone else finished first
            return
        raise


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def add_download_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``pixel-evidence data download`` to ``parser``."""
    parser.add_argument(
        "category",
        metavar="CATEGORY",
        help=f"MVTec AD category to fetch, one of: {', '.join(MVTEC_CATEGORIES)} "
        "(any folder name is accepted together with --url)",
    )
    parser.add_argument("--url", default=None, help="archive URL (default: the official MVTec link)")
    parser.add_argument(
        "--sha256",
        metavar="HEX",
        default=None,
        help="expected SHA-256 of the archive; the download is rejected if it differs",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="folder that receives CATEGORY/ (default: ./data)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        metavar="N",
        help="retries after a transient network error, each resuming the download (default: 3)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="network time-out per connect/read (default: 30)",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def run_download(args: argparse.Namespace) -> int:
    """Run ``pixel-evidence data download`` with parsed ``args``; return the exit code.

    0 on success (the category path is printed to stdout); 2 on a download,
    checksum, archive or argument problem (one line on stderr).
    """
    try:
        path = download_category(
            args.category,
            Path(getattr(args, "data_dir", DEFAULT_DATA_DIR)),
            url=getattr(args, "url", None),
            sha256=getattr(args, "sha256", None),
            retries=getattr(args, "retries", 3),
            timeout=getattr(args, "timeout", 30.0),
            progress=not getattr(args, "no_progress", False),
        )
    except (DownloadError, UnsafeArchiveError, ValueError) as exc:
        print(" ".join(str(exc).split()), file=sys.stderr)  # one line, whatever raised it
        return 2
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m engine.data.download CATEGORY ...``."""
    parser = argparse.ArgumentParser(prog="python -m engine.data.download", description="Fetch one MVTec AD category.")
    add_download_arguments(parser)
    return run_download(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

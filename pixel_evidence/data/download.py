"""Put one MVTec AD category in place, from an archive downloaded by hand or fetched from a link.

The result is a folder laid out the way MVTec publishes it::

    <data_dir>/<category>/train/good/*.png
    <data_dir>/<category>/test/<defect>/*.png
    <data_dir>/<category>/ground_truth/<defect>/*_mask.png

:func:`install_category` takes a ``.tar.xz`` the user downloaded from MVTec's downloads page:
the category's own archive or the full data set.  :func:`download_category` first fetches one
(resumably, with retries) into ``<data_dir>/.downloads/`` with :func:`pixel_evidence.data.fetch.fetch`,
from ``--url`` or from the latest known link in :mod:`pixel_evidence.data.mvtec_sources`.

Either way the archive is read once (:func:`pixel_evidence.data.archive.extract_matching`): only the
category asked for is written, into a scratch folder beside ``<data_dir>/<category>``, and it
is renamed into place only after the whole archive has been read and its SHA-256 checked, so a
failed or interrupted run leaves nothing half-written.  This module holds the MVTec-specific
steps and the command line.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import urllib.parse
from pathlib import Path, PurePosixPath

from pixel_evidence.data import mvtec_sources as sources
from pixel_evidence.data.archive import ArchiveError, ArchiveScan, UnsafeArchiveError, extract_matching
from pixel_evidence.data.fetch import DownloadError, NetworkError, fetch
from pixel_evidence.files import scratch_folder

__all__ = [
    "DEFAULT_DATA_DIR",
    "DownloadError",
    "ChecksumError",
    "UnsafeArchiveError",
    "default_url",
    "install_category",
    "download_category",
    "is_complete_category",
    "add_download_arguments",
    "run_download",
]

DEFAULT_DATA_DIR = Path("data")
_DOWNLOADS = ".downloads"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class ChecksumError(DownloadError):
    """The archive does not have the expected SHA-256 digest."""


def default_url(category: str, *, full: bool = False) -> str:
    """The latest known link of ``<category>.tar.xz``, or with ``full`` of the whole data set.

    Raises ``ValueError`` for a name that is not one of the MVTec AD categories.
    """
    if category not in sources.CATEGORY_URLS:
        raise ValueError(f"unknown MVTec AD category {category!r}; expected one of: "
                         f"{', '.join(sources.MVTEC_CATEGORIES)} (any folder name works with --url or --archive)")
    return sources.FULL_ARCHIVE_URL if full else sources.CATEGORY_URLS[category]


def is_complete_category(folder: Path) -> bool:
    """True when ``folder`` has both a ``train/`` and a ``test/`` sub-folder."""
    return (folder / "train").is_dir() and (folder / "test").is_dir()


def install_category(category: str, data_dir: Path, archive: Path, *, sha256: str | None = None,
                     progress: bool = True) -> Path:
    """Unpack ``category`` from a local ``archive`` into ``<data_dir>/<category>``; return that path.

    Args:
        category: Category name, e.g. ``"hazelnut"``; any safe folder name is accepted.
        data_dir: Folder that receives ``<category>/`` (created if missing).
        archive: The category's own ``.tar.xz`` or the full data set's; only ``category`` is
            written, whether it sits at the archive's top or under ``mvtec_anomaly_detection/``.
        sha256: Expected SHA-256 of ``archive``.  Default: the published digest when the archive
            is the full data set, no check for a category's own archive (none are published).
        progress: Show a tqdm bar of the archive's bytes on stderr.

    Returns:
        The absolute path ``<data_dir>/<category>``, at once if it already has ``train/`` and ``test/``.

    Raises:
        DownloadError: not a file, damaged, lacking the category, or (:class:`ChecksumError`) a
            digest mismatch.  The message is one line and says what to do.
        UnsafeArchiveError: the category holds a dangerous member; nothing was put in place.
        ValueError: bad category name or malformed ``sha256``.
    """
    target = _target(category, data_dir)
    expected = _normalise_sha256(sha256)
    if is_complete_category(target):
        return target
    archive = Path(archive).expanduser()
    if not archive.is_file():
        raise DownloadError(f"{archive} is not a file; give the path of the .tar.xz downloaded from "
                            f"{sources.DOWNLOADS_PAGE}")
    _clear_way(target)
    try:
        _unpack(archive, target, expected, progress)
    except (ArchiveError, ChecksumError) as exc:
        raise _with_advice(exc, f"download it again from {sources.DOWNLOADS_PAGE}") from exc
    return target


def download_category(
    category: str,
    data_dir: Path,
    *,
    url: str | None = None,
    full: bool = False,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Fetch an archive holding ``category`` and unpack the category into ``<data_dir>/<category>``.

    The archive goes to ``<data_dir>/.downloads/`` and is deleted once unpacked or found
    unusable, except the full data set, which is kept there so that other categories can be
    taken from it (``--archive`` or ``--full``) without fetching 4.9 GB again.

    Args:
        category: Category name, e.g. ``"hazelnut"``; any safe folder name is accepted with ``url``.
        data_dir: Folder that receives ``<category>/`` (created if missing).
        url: Archive link, e.g. a per-visitor link from MVTec's downloads page.  Default:
            :func:`default_url` of ``category`` and ``full``.
        full: Without ``url``, fetch the full data set instead of the category's own archive.
        sha256: Expected SHA-256 of the archive, as for :func:`install_category`.
        retries: How many times a transient failure (reset, truncated body, time-out, HTTP 5xx)
            is retried, each retry resuming.
        timeout: Socket time-out in seconds for connecting and for each read.
        progress: Show tqdm progress bars on stderr.

    Returns:
        The absolute path ``<data_dir>/<category>``, at once and without network access if it
        already has ``train/`` and ``test/``.

    Raises:
        DownloadError: the link failed (HTTP error, a web page instead of the archive, no
            network, retries used up) or its archive is damaged, lacks the category or fails the
            checksum.  The one-line message names MVTec's downloads page and the
            ``--archive`` command to run after downloading by hand.
        UnsafeArchiveError: the category holds a dangerous member; nothing was put in place.
        ValueError: bad or unknown category name, malformed ``sha256``, negative ``retries``.
    """
    target = _target(category, data_dir)
    expected = _normalise_sha256(sha256)
    if retries < 0:
        raise ValueError("retries must be >= 0")
    if is_complete_category(target):
        return target
    url = url or default_url(category, full=full)
    _clear_way(target)
    archive = target.parent / _DOWNLOADS / _archive_name(url, category)
    by_hand = _by_hand(category, data_dir)
    try:
        fetch(url, archive, retries=retries, timeout=timeout, progress=progress)
    except NetworkError as exc:  # the .part file is kept for the next attempt
        raise _with_advice(exc, by_hand) from exc
    try:
        is_full = _unpack(archive, target, expected, progress)
    except UnsafeArchiveError:
        archive.unlink(missing_ok=True)
        raise
    except (ArchiveError, DownloadError) as exc:
        archive.unlink(missing_ok=True)  # fetching it again, or by hand, is the fix
        raise _with_advice(exc, f"the file from {url} was deleted; {by_hand}") from exc
    if not is_full:
        archive.unlink()
    return target


def _unpack(archive: Path, target: Path, expected: str | None, progress: bool) -> bool:
    """Move ``target.name`` from ``archive`` to ``target`` in one pass; True if it is the full data set.

    Raises as :func:`install_category`, without the advice on what to do.
    """
    category = target.name
    with scratch_folder(target.parent, f"{category}.extracting") as scratch:
        scan = extract_matching(archive, scratch, lambda name: _category_of(name) == category, progress=progress)
        is_full = _is_full_dataset(scan)
        _check_digest(archive, scan, expected or (sources.FULL_ARCHIVE_SHA256 if is_full else None))
        found = next((folder for folder in (scratch / category, scratch / sources.FULL_ARCHIVE_ROOT / category)
                      if is_complete_category(folder)), None)
        if found is None:
            raise DownloadError(
                f"{archive} has no {category}/ folder with train/ and test/ (at its top or under "
                f"{sources.FULL_ARCHIVE_ROOT}/); give {category}.tar.xz or the full {sources.FULL_ARCHIVE_NAME}")
        try:
            os.replace(found, target)
        except OSError:
            if not is_complete_category(target):  # else a concurrent run finished first
                raise
    return is_full


def _category_of(member: str) -> str | None:
    """The category folder an archive member belongs to, in either nesting the full archive comes in."""
    parts = PurePosixPath(member).parts
    if parts[:1] == (sources.FULL_ARCHIVE_ROOT,):
        parts = parts[1:]
    return parts[0] if parts else None


def _is_full_dataset(scan: ArchiveScan) -> bool:
    """True when the archive holds more than one MVTec AD category.

    The full data set is recognised by what it holds, not by its name or size: browsers and
    per-visitor links rename files (``mvtec_anomaly_detection (1).tar.xz``), no exact size is
    published beside the digest, and a category's own archive never holds a second category.
    The listing comes from the pass that hashes and unpacks the file, so recognising it costs
    nothing.  An archive someone built from a few categories is checked too: pass its own
    digest as ``sha256``.
    """
    return len({_category_of(name) for name in scan.names} & set(sources.MVTEC_CATEGORIES)) > 1


def _check_digest(archive: Path, scan: ArchiveScan, expected: str | None) -> None:
    if expected is not None and scan.sha256 != expected:
        raise ChecksumError(f"checksum mismatch for {archive}: expected SHA-256 {expected}, found {scan.sha256}; "
                            "the file is incomplete or altered")


def _normalise_sha256(value: str | None) -> str | None:
    """``value`` as 64 lower-case hex digits (``None`` stays ``None``); ValueError if it is not a digest."""
    if value is None:
        return None
    cleaned = value.strip().lower()
    if not _SHA256_HEX.match(cleaned):
        raise ValueError(f"not a SHA-256 hex digest (64 hex characters): {value!r}")
    return cleaned


def _target(category: str, data_dir: Path) -> Path:
    """``<data_dir>/<category>`` as an absolute path; ValueError for a name that is not a plain folder name."""
    if not isinstance(category, str) or not _SAFE_NAME.match(category):
        raise ValueError(f"invalid category name {category!r}; use a plain folder name such as hazelnut")
    return Path(data_dir).expanduser().absolute() / category


def _clear_way(target: Path) -> None:
    """Remove an empty ``target`` folder; refuse to touch one with content."""
    if not target.exists():
        return
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
        return
    raise DownloadError(f"{target} exists but has no train/ and test/ folders; move it away or delete it, then run again")


def _archive_name(url: str, category: str) -> str:
    """File name to store the download under: the URL's last path segment."""
    segment = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    return segment if _SAFE_NAME.match(segment) else f"{category}.tar.xz"


def _with_advice(exc: ArchiveError | DownloadError, advice: str) -> DownloadError:
    """``exc``'s line followed by ``advice``, as a DownloadError of the same kind (a ChecksumError stays one)."""
    kind = type(exc) if isinstance(exc, DownloadError) else DownloadError
    return kind(f"{exc}; {advice}")


def _by_hand(category: str, data_dir: Path) -> str:
    """Advice for when a link fails: where to download by hand, and the command to run then."""
    command = shlex.join(["pixel-evidence", "data", "download", category, "--data-dir", str(data_dir),
                          "--archive", "PATH"])
    return (f"download {category}.tar.xz or the full {sources.FULL_ARCHIVE_NAME} by hand from "
            f"{sources.DOWNLOADS_PAGE}, then run: {command}")


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def add_download_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``pixel-evidence data download`` to ``parser``."""
    parser.add_argument(
        "category",
        metavar="CATEGORY",
        help=f"MVTec AD category, one of: {', '.join(sources.MVTEC_CATEGORIES)} "
        "(any folder name is accepted with --url or --archive)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--archive",
        type=Path,
        metavar="PATH",
        default=None,
        help=f"a .tar.xz downloaded by hand from {sources.DOWNLOADS_PAGE}: CATEGORY's own or the full "
        "data set (only CATEGORY is unpacked)",
    )
    source.add_argument("--url", default=None,
                        help="archive link, e.g. the one MVTec's downloads page hands out "
                        "(default: the latest known link of CATEGORY's archive)")
    source.add_argument("--full", action="store_true",
                        help="fetch the full data set (4.9 GB) from its latest known link instead; it is kept in "
                        "DATA_DIR/.downloads for the other categories")
    parser.add_argument("--sha256", metavar="HEX", default=None,
                        help="expected SHA-256 of the archive (default: the published one for the full data set)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="folder that receives CATEGORY/ (default: ./data)")
    parser.add_argument("--retries", type=int, default=3, metavar="N",
                        help="retries after a transient network error, each resuming the download (default: 3)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="network time-out per connect/read (default: 30)")
    parser.add_argument("--no-progress", action="store_true", help="do not show progress bars")


def run_download(args: argparse.Namespace) -> int:
    """Run ``pixel-evidence data download`` with parsed ``args``; return the exit code.

    0 on success (the category path is printed to stdout); 2 on a download, checksum, archive,
    file system or argument problem (one line on stderr).
    """
    progress = not args.no_progress
    try:
        if args.archive is not None:
            path = install_category(args.category, args.data_dir, args.archive, sha256=args.sha256,
                                    progress=progress)
        else:
            path = download_category(args.category, args.data_dir, url=args.url, full=args.full,
                                     sha256=args.sha256, retries=args.retries, timeout=args.timeout,
                                     progress=progress)
    except (DownloadError, UnsafeArchiveError, ValueError, OSError) as exc:  # OSError: e.g. a full disk
        print(" ".join(str(exc).split()), file=sys.stderr)  # one line, whatever raised it
        return 2
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m pixel_evidence.data.download CATEGORY ...``."""
    parser = argparse.ArgumentParser(prog="python -m pixel_evidence.data.download",
                                     description="Put one MVTec AD category in place.")
    add_download_arguments(parser)
    return run_download(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

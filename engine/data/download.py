"""Fetch one MVTec AD category archive and unpack it safely.

The result of :func:`download_category` is a folder laid out the way MVTec
publishes it::

    <data_dir>/<category>/train/good/*.png
    <data_dir>/<category>/test/<defect>/*.png
    <data_dir>/<category>/ground_truth/<defect>/*_mask.png

How it works:

* The archive is streamed to ``<data_dir>/.downloads/<archive>.part``.  A part
  file left over from an earlier attempt is continued with an HTTP
  ``Range: bytes=N-`` request; a server that answers ``200`` instead of ``206``
  makes the download start again from byte zero.
* Transient failures (connection reset, truncated body, time-out, HTTP 5xx) are
  retried with a short, growing pause, each retry continuing where the last one
  stopped.  Failures that mean "no network" (name resolution, connection
  refused, unreachable host) end the attempt at once with a one-line
  :class:`DownloadError` that tells the user how to fetch the file by hand.
* The finished file is checked against a SHA-256 digest when one is given or
  known, then renamed to its final name with :func:`os.replace`.
* :func:`safe_extract` vets every member before writing anything, unpacks into a
  hidden scratch folder inside ``data_dir`` and only then is the category folder
  renamed into place, so an interrupted run never leaves half a category.

Only the standard library and :mod:`tqdm` are used.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import lzma
import os
import re
import shutil
import socket
import stat
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Iterator

from tqdm import tqdm

__all__ = [
    "MVTEC_CATEGORIES",
    "OFFICIAL_URL_TEMPLATE",
    "FULL_DATASET_URL",
    "KNOWN_SHA256",
    "DEFAULT_DATA_DIR",
    "RETRY_BACKOFF",
    "DownloadError",
    "ChecksumError",
    "UnsafeArchiveError",
    "official_url",
    "download_category",
    "safe_extract",
    "is_complete_category",
    "add_download_arguments",
    "run_download",
]

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

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
FULL_DATASET_URL = (
    "https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f282/"
    "download/420938113-1629952094/mvtec_anomaly_detection.tar.xz"
)

#: SHA-256 digests of published archives, keyed by archive file name.  Only the
#: full-data-set digest is published (anomalib pins it); no per-category
#: digests are known, so category downloads are verified only when the caller
#: passes ``sha256=``.
KNOWN_SHA256: dict[str, str] = {
    "mvtec_anomaly_detection.tar.xz": "cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d",
}

DEFAULT_DATA_DIR = Path("data")

#: Pause before retry ``k`` (1-based) is ``RETRY_BACKOFF * 2 ** (k - 1)``
#: seconds, capped at 10 s.  Tests set it to 0.
RETRY_BACKOFF = 0.5

_CHUNK = 256 * 1024
_USER_AGENT = "pixel-evidence-downloader/0.1 (+python-urllib)"
_DOWNLOADS = ".downloads"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".tbz")


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class DownloadError(RuntimeError):
    """The archive could not be fetched, verified or unpacked.

    ``str(error)`` is always a single line meant to be shown to the user.
    """


class ChecksumError(DownloadError):
    """The downloaded file does not have the expected SHA-256 digest."""


class UnsafeArchiveError(RuntimeError):
    """An archive member would escape the destination or is not a plain file/folder."""

    def __init__(self, archive: Path | str, member: str, reason: str) -> None:
        self.archive = str(archive)
        self.member = member
        self.reason = reason
        super().__init__(f"refusing to extract {self.archive}: member {member!r} {reason}")


class _Transient(Exception):
    """Internal: a failure worth retrying (the part file is kept)."""


class _Offline(Exception):
    """Internal: a failure that retrying will not fix."""


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


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


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _normalise_sha256(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = value.strip().lower()
    if not _SHA256_HEX.match(cleaned):
        raise ValueError(f"not a SHA-256 hex digest (64 hex characters): {value!r}")
    return cleaned


def _archive_name(url: str, category: str) -> str:
    """File name to store the download under: the URL's last path segment."""
    segment = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    if segment and _SAFE_NAME.match(segment):
        return segment
    return f"{category}.tar.xz"


def _backoff(attempt: int) -> None:
    delay = min(RETRY_BACKOFF * (2 ** (attempt - 1)), 10.0)
    if delay > 0:
        time.sleep(delay)


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``"bytes 10-99/100"`` -> ``(10, 100)``; ``"bytes */100"`` -> ``(None, 100)``."""
    if not value:
        return None, None
    match = re.match(r"^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", value, re.IGNORECASE)
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _describe_reason(exc: BaseException) -> str:
    """Short human text for a network exception."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, socket.gaierror):
            return f"cannot resolve host: {reason.strerror or reason}"
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return "timed out"
        if isinstance(reason, OSError) and reason.strerror:
            return reason.strerror
        return str(reason)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _classify(exc: BaseException) -> type[Exception]:
    """Map a raised exception to ``_Transient`` or ``_Offline``."""
    if isinstance(exc, urllib.error.HTTPError):
        return _Transient if 500 <= exc.code < 600 or exc.code in (408, 429) else _Offline
    if isinstance(exc, http.client.InvalidURL):
        return _Offline
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError, ConnectionResetError, ConnectionAbortedError)):
            return _Transient
        if isinstance(reason, http.client.RemoteDisconnected):
            return _Transient
        return _Offline  # DNS failure, refused, unreachable, bad scheme ...
    if isinstance(exc, (socket.timeout, TimeoutError, ConnectionError, http.client.HTTPException)):
        return _Transient
    if isinstance(exc, OSError):
        return _Transient
    return _Offline


# --------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------


def _fetch_once(opener: urllib.request.OpenerDirector, url: str, part: Path, timeout: float, progress: bool) -> None:
    """One HTTP request that appends to (or restarts) ``part``.

    Returns normally only when the part file holds the complete body.
    Raises ``_Transient`` / ``_Offline`` (wrapping the cause) otherwise.
    """
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")

    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            # Range not satisfiable: either we already have everything, or the
            # part file is longer than the remote file.
            _, total = _parse_content_range(exc.headers.get("Content-Range") if exc.headers else None)
            if total is not None and total == offset:
                return
            part.unlink(missing_ok=True)
            raise _Transient("server rejected the resume offset; starting over") from exc
        raise _classify(exc)(_describe_reason(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - classified below
        raise _classify(exc)(_describe_reason(exc)) from exc

    with response:
        status = getattr(response, "status", None) or response.getcode()
        content_type = (response.headers.get("Content-Type") or "").lower()
        if content_type.startswith("text/html"):
            raise _Offline("server sent an HTML page instead of the archive (link expired or needs a browser)")

        if status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Transient(f"server resumed at byte {start} instead of {offset}; starting over")
            if total is None:
                length = response.headers.get("Content-Length")
                total = offset + int(length) if length and length.isdigit() else None
            mode = "ab"
        elif status == 200:
            offset = 0  # server ignored Range (or none was sent): rewrite from scratch
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        else:
            raise _Offline(f"unexpected HTTP status {status}")

        bar = tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name[: -len(".part")] if part.name.endswith(".part") else part.name,
            disable=not progress,
            leave=True,
        )
        try:
            with open(part, mode) as fh:
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except Exception as exc:  # noqa: BLE001 - classified below
                        raise _classify(exc)(_describe_reason(exc)) from exc
                    if not chunk:
                        break
                    fh.write(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()

    size = part.stat().st_size
    if total is not None:
        if size < total:
            raise _Transient(f"connection closed after {size} of {total} bytes")
        if size > total:
            part.unlink(missing_ok=True)
            raise _Transient(f"received {size} bytes but expected {total}; starting over")


def _download_file(
    url: str,
    part: Path,
    *,
    retries: int,
    timeout: float,
    progress: bool,
) -> None:
    """Fill ``part`` with the full body of ``url``, retrying transient errors."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https"):
        raise _Offline(f"unsupported URL scheme {parsed.scheme!r}; use http or https")

    # A fresh opener every call so proxy settings in the environment are read now.
    opener = urllib.request.build_opener()
    failures = 0
    while True:
        try:
            _fetch_once(opener, url, part, timeout, progress)
            return
        except _Transient as exc:
            failures += 1
            if failures > retries:
                attempts = failures
                raise _Offline(f"{exc}; gave up after {attempts} attempt{'s' if attempts != 1 else ''}") from exc
            _backoff(failures)


def _download_error(url: str, reason: str, archive_name: str, data_dir: Path, category: str) -> DownloadError:
    target = data_dir / category / "train" / "good"
    return DownloadError(
        _one_line(
            f"could not download {url} ({reason}); download {archive_name} by hand "
            f"and extract it so that {target} exists"
        )
    )


def _check_category_name(category: str) -> None:
    if not isinstance(category, str) or not _SAFE_NAME.match(category) or category in (".", ".."):
        raise ValueError(f"invalid category name {category!r}")


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
    expected = _normalise_sha256(sha256)
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

    if expected is None:
        expected = KNOWN_SHA256.get(archive_name)

    downloads = data_dir / _DOWNLOADS
    downloads.mkdir(parents=True, exist_ok=True)
    archive = downloads / archive_name
    part = downloads / (archive_name + ".part")

    # A finished archive from an earlier run whose extraction did not complete.
    if archive.exists() and expected is not None and _sha256_of(archive) != expected:
        archive.unlink()

    if not archive.exists():
        try:
            _download_file(url, part, retries=retries, timeout=timeout, progress=progress)
        except (_Offline, _Transient) as exc:
            raise _download_error(url, str(exc), archive_name, data_dir, category) from exc

        if expected is not None:
            actual = _sha256_of(part)
            if actual != expected:
                part.unlink(missing_ok=True)
                raise ChecksumError(
                    f"checksum mismatch for {url}: expected sha256 {expected}, got {actual}; "
                    "the download was deleted, run again to fetch it anew"
                )
        os.replace(part, archive)

    _extract_category(archive, data_dir, category, url)
    return target


def _extract_category(archive: Path, data_dir: Path, category: str, url: str) -> None:
    target = data_dir / category
    scratch = Path(tempfile.mkdtemp(prefix=f".{category}.extracting-", dir=data_dir))
    try:
        try:
            safe_extract(archive, scratch)
        except UnsafeArchiveError:
            archive.unlink(missing_ok=True)
            raise
        except (tarfile.TarError, zipfile.BadZipFile, lzma.LZMAError, EOFError, zlib.error, ValueError) as exc:
            archive.unlink(missing_ok=True)
            raise DownloadError(
                _one_line(
                    f"{archive.name} from {url} is damaged or not a supported archive ({exc}); "
                    "it was deleted, run again to fetch it anew"
                )
            ) from exc

        found = _find_category_root(scratch, category)
        if found is None:
            raise DownloadError(
                f"{archive.name} from {url} does not contain a {category}/ folder with train/ and test/; "
                f"the archive was kept at {archive}"
            )
        _move_into_place(found, target)
        # An archive of the whole data set also brings the other categories:
        # keep the complete ones that are not there yet.
        if found != scratch:
            for other in MVTEC_CATEGORIES:
                candidate = found.parent / other
                if other != category and is_complete_category(candidate) and not (data_dir / other).exists():
                    _move_into_place(candidate, data_dir / other)
        archive.unlink(missing_ok=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------
# Safe extraction
# --------------------------------------------------------------------------


def _check_member_name(archive: Path, name: str) -> PurePosixPath:
    """Return the member's relative path, or raise UnsafeArchiveError."""
    if not name or "\x00" in name:
        raise UnsafeArchiveError(archive, name, "has an empty or NUL-containing name")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchiveError(archive, name, "has an absolute path")
    parts = [p for p in re.split(r"[\\/]+", name) if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(archive, name, "has a '..' path component")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _archive_kind(archive: Path) -> str:
    lower = archive.name.lower()
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith(_TAR_SUFFIXES):
        return "tar"
    if zipfile.is_zipfile(archive):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    raise ValueError(f"{archive.name} is not a .tar, .tar.gz, .tar.xz, .tar.bz2 or .zip archive")


def _inside(archive: Path, root: Path, rel: PurePosixPath) -> Path:
    """Absolute path for ``rel`` under ``root``, double-checked to stay inside."""
    path = root.joinpath(*rel.parts) if rel.parts != (".",) else root
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise UnsafeArchiveError(archive, str(rel), f"would be written outside {root}")
    return path


def _write_stream(stream, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    with open(path, "wb") as out:
        shutil.copyfileobj(stream, out, _CHUNK)


def safe_extract(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` into ``dest`` after vetting every member.

    Supports ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.xz``/``.txz``,
    ``.tar.bz2`` and ``.zip`` (other names are sniffed by content).  All
    members are checked before anything is written; any member that has an
    absolute path, a ``..`` component, or is a symlink, hard link, device,
    FIFO or other special file raises :class:`UnsafeArchiveError` naming it,
    and ``dest`` is then left untouched (not even created).

    Only regular files and folders are written; owners, permissions bits and
    special modes from the archive are ignored (files get the default mode),
    modification times are kept.
    """
    archive = Path(archive)
    dest = Path(dest)
    kind = _archive_kind(archive)
    if kind == "zip":
        _extract_zip(archive, dest)
    else:
        _extract_tar(archive, dest)


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        plan: list[tuple[tarfile.TarInfo, PurePosixPath]] = []
        for member in members:
            rel = _check_member_name(archive, member.name)
            if member.issym():
                raise UnsafeArchiveError(archive, member.name, f"is a symbolic link (to {member.linkname!r})")
            if member.islnk():
                raise UnsafeArchiveError(archive, member.name, f"is a hard link (to {member.linkname!r})")
            if member.ischr() or member.isblk():
                raise UnsafeArchiveError(archive, member.name, "is a device file")
            if member.isfifo():
                raise UnsafeArchiveError(archive, member.name, "is a FIFO")
            if not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(archive, member.name, f"has unsupported type {member.type!r}")
            plan.append((member, rel))

        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for member, rel in plan:
            path = _inside(archive, root, rel)
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            stream = tar.extractfile(member)
            if stream is None:  # pragma: no cover - isfile() members always have data
                raise UnsafeArchiveError(archive, member.name, "has no readable data")
            with stream:
                _write_stream(stream, path)
            try:
                os.utime(path, (member.mtime, member.mtime))
            except (OSError, OverflowError, ValueError):
                pass


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        for info in zf.infolist():
            rel = _check_member_name(archive, info.filename)
            mode = info.external_attr >> 16
            if mode:
                if stat.S_ISLNK(mode):
                    raise UnsafeArchiveError(archive, info.filename, "is a symbolic link")
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                    raise UnsafeArchiveError(archive, info.filename, "is a device file")
                if stat.S_ISFIFO(mode):
                    raise UnsafeArchiveError(archive, info.filename, "is a FIFO")
                if stat.S_ISSOCK(mode):
                    raise UnsafeArchiveError(archive, info.filename, "is a socket")
            plan.append((info, rel))

        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for info, rel in plan:
            path = _inside(archive, root, rel)
            if info.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            with zf.open(info) as stream:
                _write_stream(stream, path)
            try:
                stamp = time.mktime(info.date_time + (0, 0, -1))
                os.utime(path, (stamp, stamp))
            except (OSError, OverflowError, ValueError):
                pass


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
        print(_one_line(exc), file=sys.stderr)
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

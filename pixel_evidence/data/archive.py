"""Read a tar archive once, start to end: hash its bytes and unpack the members asked for, safely.

Safety rests on tarfile's ``data`` extraction filter (PEP 706, Python 3.11.4+),
which refuses members that would land outside the destination (``..``
components, links whose target escapes, absolute link targets), device files,
FIFOs and other special files, and drops ownership, setuid/setgid/sticky bits
and group/other write bits.  :func:`vetted_member` wraps it and also refuses
what the filter lets through but an MVTec archive never holds: absolute member
names (the filter silently makes them relative) and links of any kind (the
filter allows those that stay inside).

:func:`extract_matching` reads the archive as a stream (tarfile's ``r|*``), so
the full 4.9 GB data set is never unpacked as a whole: members outside the
wanted ones are decompressed and skipped, and every byte of the file passes
through SHA-256 on the way, so checking a digest costs no second read.  Members
are vetted one at a time as they arrive; the caller extracts into a scratch
folder (:func:`pixel_evidence.files.scratch_folder`) and renames the result out only
after the whole archive has been read and its digest checked, which keeps the
all-or-nothing promise.

Only tar archives are supported (MVTec AD ships ``.tar.xz``); a ``.zip`` is
refused with :class:`ArchiveError`.
"""

from __future__ import annotations

import functools
import hashlib
import lzma
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from tqdm import tqdm

__all__ = ["ArchiveError", "UnsafeArchiveError", "ArchiveScan", "vetted_member", "extract_matching"]

_TAR_KINDS = ".tar, .tar.gz, .tar.xz or .tar.bz2"
_CHUNK = 1024 * 1024

# What tarfile and the decompressors raise for a truncated or corrupt stream.
_DAMAGED = (tarfile.TarError, lzma.LZMAError, EOFError, zlib.error, ValueError)


class ArchiveError(ValueError):
    """The file cannot be unpacked: it is damaged, or not a tar archive.  The message is one line."""


class UnsafeArchiveError(RuntimeError):
    """An archive member would escape the destination or is not a plain file/folder."""

    def __init__(self, archive: Path | str, member: str, reason: str) -> None:
        self.archive = str(archive)
        self.member = member
        self.reason = reason
        super().__init__(f"refusing to extract {self.archive}: member {member!r} {reason}")


def vetted_member(archive: Path, member: tarfile.TarInfo, dest: str | os.PathLike) -> tarfile.TarInfo:
    """Return ``member`` as tarfile's ``data`` filter rewrites it for extraction into ``dest``.

    Bind ``archive`` (used in error messages) with :func:`functools.partial` to get a
    tarfile ``filter=`` callable.  Raises :class:`UnsafeArchiveError` naming the member.
    """
    if member.name.startswith(("/", os.sep)):
        raise UnsafeArchiveError(archive, member.name, "has an absolute path")
    if member.issym():
        raise UnsafeArchiveError(archive, member.name, f"is a symbolic link (to {member.linkname!r})")
    if member.islnk():
        raise UnsafeArchiveError(archive, member.name, f"is a hard link (to {member.linkname!r})")
    try:
        return tarfile.data_filter(member, dest)
    except tarfile.FilterError as exc:
        raise UnsafeArchiveError(archive, member.name, f"fails tarfile's 'data' filter ({exc})") from exc


@dataclass(frozen=True)
class ArchiveScan:
    """What one pass over an archive saw."""

    sha256: str  #: hex digest of the archive file's bytes, as stored (compressed)
    names: tuple[str, ...]  #: every member's name, in archive order


class _HashingReader:
    """Read-only view of a binary file that hashes every byte read through it and advances a progress bar."""

    def __init__(self, raw: BinaryIO, bar: tqdm) -> None:
        self._raw = raw
        self._bar = bar
        self._digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all the rest for -1), hashing and counting them."""
        data = self._raw.read(size)
        self._digest.update(data)
        self._bar.update(len(data))
        return data

    def drain(self) -> None:
        """Read what is left: tarfile stops at the end-of-archive marker, the digest covers the whole file."""
        while self.read(_CHUNK):
            pass

    def hexdigest(self) -> str:
        """SHA-256 of the bytes read so far."""
        return self._digest.hexdigest()


def extract_matching(archive: Path, dest: Path, wanted: Callable[[str], bool], *,
                     progress: bool = False) -> ArchiveScan:
    """Read the tar ``archive`` once; write each member whose name ``wanted`` accepts into ``dest``.

    ``dest`` must exist; extract into a scratch folder and move the result out once the returned
    digest has been checked.  Every extracted member is vetted by :func:`vetted_member` before it
    is written; members not wanted are never written, so they are not vetted.  Only regular files
    and folders are written; ownership and special mode bits are dropped, modification times kept.

    Args:
        archive: A ``.tar``, ``.tar.gz``, ``.tar.xz`` or ``.tar.bz2`` file.
        dest: Existing folder the wanted members are written into, at their archive paths.
        wanted: Decides from a member's name whether to extract it.
        progress: Show a tqdm bar of the bytes read on stderr.

    Raises:
        UnsafeArchiveError: a wanted member is unsafe (what was written before it stays in ``dest``).
        ArchiveError: a ``.zip``, a web page, or a damaged file or one that is not a tar archive.
    """
    archive = Path(archive)
    if archive.suffix.lower() == ".zip":
        raise ArchiveError(f"{archive} is a zip archive; only {_TAR_KINDS} are supported, use the .tar.xz MVTec ships")
    check = functools.partial(vetted_member, archive)
    names: list[str] = []
    with open(archive, "rb") as raw, tqdm(total=os.fstat(raw.fileno()).st_size, unit="B", unit_scale=True,
                                          unit_divisor=1024, desc=archive.name, disable=not progress) as bar:
        reader = _HashingReader(raw, bar)
        try:
            with tarfile.open(fileobj=reader, mode="r|*", bufsize=_CHUNK) as tar:
                for member in tar:
                    names.append(member.name)
                    if wanted(member.name):
                        tar.extract(member, dest, filter=check)
        except _DAMAGED as exc:
            raise ArchiveError(_unreadable(archive, exc)) from exc
        reader.drain()
    return ArchiveScan(reader.hexdigest(), tuple(names))


def _unreadable(archive: Path, exc: BaseException) -> str:
    """One line saying why ``archive`` cannot be read; a saved web page is named as such."""
    with open(archive, "rb") as fh:
        head = fh.read(512).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return f"{archive} is a web page (HTML), not a {_TAR_KINDS} archive"
    return " ".join(f"{archive} is damaged or not a {_TAR_KINDS} archive ({exc})".split())

"""Vet and unpack a tar archive so that nothing lands outside the destination.

Safety rests on tarfile's ``data`` extraction filter (PEP 706, Python 3.11.4+),
which refuses members that would land outside the destination (``..``
components, links whose target escapes, absolute link targets), device files,
FIFOs and other special files, and drops ownership, setuid/setgid/sticky bits
and group/other write bits.  :func:`vetted_member` wraps it and also refuses
what the filter lets through but an MVTec archive never holds: absolute member
names (the filter silently makes them relative) and links of any kind (the
filter allows those that stay inside).

:func:`vetted_member` has the signature of a tarfile extraction filter, so it
can vet members one at a time while they are read from a stream (``r|xz``);
:func:`unpacked` gives such a stream a private scratch folder from which the
caller moves only what it wants, which keeps the all-or-nothing promise
without a second pass over the archive.

Only tar archives are supported (MVTec AD ships ``.tar.xz``); a ``.zip`` is
refused with :class:`ArchiveError`.
"""

from __future__ import annotations

import functools
import lzma
import os
import shutil
import tarfile
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["ArchiveError", "UnsafeArchiveError", "vetted_member", "safe_extract", "unpacked"]

_TAR_KINDS = ".tar, .tar.gz, .tar.xz or .tar.bz2"

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


def safe_extract(archive: Path, dest: Path) -> None:
    """Unpack the tar ``archive`` (``.tar``, ``.tar.gz``, ``.tar.xz``, ``.tar.bz2``) into ``dest``.

    Every member is vetted by :func:`vetted_member` before anything is written:
    on the first bad one :class:`UnsafeArchiveError` names it and ``dest`` is
    left untouched (not even created).  Only regular files and folders are
    written; ownership and special mode bits are dropped, modification times kept.

    Raises:
        UnsafeArchiveError: a member is unsafe.
        ArchiveError: a ``.zip``, or a damaged file or one that is not a tar archive.
    """
    archive, dest = Path(archive), Path(dest)
    if archive.suffix.lower() == ".zip":
        raise ArchiveError(f"{archive} is a zip archive; only {_TAR_KINDS} are supported, use the .tar.xz MVTec ships")
    check = functools.partial(vetted_member, archive)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                check(member, str(dest))
            dest.mkdir(parents=True, exist_ok=True)
            tar.extractall(dest, members=members, filter=check)
    except _DAMAGED as exc:
        raise ArchiveError(
            " ".join(f"{archive} is damaged or not a {_TAR_KINDS} archive ({exc}); fetch it again".split())
        ) from exc


@contextmanager
def unpacked(archive: Path, beside: Path) -> Iterator[Path]:
    """Unpack ``archive`` with :func:`safe_extract` into a new hidden folder in ``beside``; yield that folder.

    The folder is removed on exit, so move what you keep out of it (``os.replace``
    works: it is on the same file system as ``beside``).  Raises as :func:`safe_extract`.
    """
    scratch = Path(tempfile.mkdtemp(prefix=f".{Path(archive).name}.extracting-", dir=beside))
    try:
        safe_extract(archive, scratch)
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

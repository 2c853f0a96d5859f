"""Atomic file writes and file hashes: nothing half-written is ever left behind."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# Temp files and scratch folders are named ``.<target>.<host>.<pid>.<random>.tmp``, so a later
# run can tell a killed writer's leftovers from a live writer's file. Names without host and
# pid were written by earlier versions.
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
_RANDOM = r"[a-z0-9_]{8}"  # what tempfile adds
_TEMP_NAME = re.compile(rf"\.(?P<target>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.{_RANDOM}\.tmp")
_OLD_TEMP_NAME = re.compile(rf"\.(?P<target>.+)\.{_RANDOM}\.tmp")
# A write takes seconds at most; a temp file this old belongs to a writer that was killed,
# whatever its name says (a pid can be reused, a writer on another host cannot be asked).
STALE_TEMP_S = 3600


def _temp_prefix(target_name: str) -> str:
    return f".{target_name}.{_HOST}.{os.getpid()}."


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path.name), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_csv(path: Path, frame) -> None:
    """Write a pandas DataFrame as CSV (no index, "\\n" line ends) to ``path``, atomically."""
    atomic_write_text(path, frame.to_csv(index=False, lineterminator="\n"))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@contextmanager
def scratch_folder(beside: Path, label: str) -> Iterator[Path]:
    """Yield a new hidden folder in ``beside``, removed with whatever is still in it on exit.

    Build a result in it, then ``os.replace`` the finished folder out: the scratch folder is on
    the same file system as ``beside``, so that rename is atomic and a failure before it leaves
    nothing half-written behind.
    """
    beside = Path(beside)
    beside.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=_temp_prefix(label), suffix=".tmp", dir=beside))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _running_here(pid: int) -> bool | None:
    """Whether process ``pid`` runs on this machine; None where that cannot be asked safely
    (on Windows ``os.kill`` would end the process)."""
    if os.name == "nt":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _is_stale(path: Path, now: float) -> bool:
    match = _TEMP_NAME.fullmatch(path.name)
    if match is None and _OLD_TEMP_NAME.fullmatch(path.name) is None:
        return False  # not a name this project writes
    try:
        age = now - path.lstat().st_mtime
    except FileNotFoundError:  # its writer renamed or removed it meanwhile
        return False
    if age > STALE_TEMP_S:
        return True
    return (match is not None and match["host"] == _HOST and int(match["pid"]) != os.getpid()
            and _running_here(int(match["pid"])) is False)


def stale_temp_files(folder: Path) -> list[Path]:
    """Temp files and scratch folders in ``folder`` (not below it) left by atomic writes whose
    writer is gone: its process no longer runs on this machine, or the file is over an hour
    old. A live writer's file, of this run or of another run on the same folder, is kept."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now = time.time()
    return sorted(p for p in folder.glob(".*.tmp") if _is_stale(p, now))


def remove_stale_temp_files(*folders: Path) -> list[Path]:
    """Remove :func:`stale_temp_files` of each folder (what a killed run left); the paths removed."""
    removed = []
    for path in (p for folder in folders for p in stale_temp_files(folder)):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed

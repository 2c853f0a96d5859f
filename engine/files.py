"""Atomic file writes and file hashes: nothing half-written is ever left behind."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
    scratch = Path(tempfile.mkdtemp(prefix=f".{label}.", suffix=".tmp", dir=beside))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

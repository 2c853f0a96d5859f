"""Caches used by the explanation engine.

``ByteLRU``: thread-safe LRU bounded by the bytes of the numpy arrays it holds.
``SingleFlight``: concurrent callers asking for the same key share one computation.
``DiskCache``: optional ``.npz`` store keyed by a digest; a corrupt file is a miss.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Hashable

import numpy as np

from pixel_evidence.files import atomic_write_bytes


def nbytes(value: Any) -> int:
    """Approximate size of cached values: numpy arrays count fully, containers and dataclasses recurse."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values()) + 64
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value) + 64
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(nbytes(getattr(value, f.name)) for f in dataclasses.fields(value)) + 64
    return 64


class ByteLRU:
    """Least-recently-used mapping holding at most ``max_mb`` megabytes."""

    def __init__(self, max_mb: float):
        self.max_bytes = int(max_mb * 1024 * 1024)
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return default
            self._data.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, value: Any) -> None:
        size = nbytes(value)
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return  # larger than the whole budget: never cached
            self._data[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._data.popitem(last=False)
                self._bytes -= dropped


class SingleFlight:
    """Run ``fn`` once per key at a time; other callers of the same key wait for its result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[Hashable, tuple[threading.Event, list]] = {}

    def run(self, key: Hashable, fn: Callable[[], Any]) -> Any:
        with self._lock:
            entry = self._pending.get(key)
            leader = entry is None
            if leader:
                entry = (threading.Event(), [])
                self._pending[key] = entry
        event, box = entry
        if not leader:
            event.wait()
            ok, value = box[0]
            if ok:
                return value
            raise value
        try:
            value = fn()
            box.append((True, value))
            return value
        except BaseException as exc:
            box.append((False, exc))
            raise
        finally:
            with self._lock:
                del self._pending[key]
            event.set()


def digest(*parts: Any) -> str:
    """Stable sha256 of JSON-serialisable parts (dict keys sorted)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class DiskCache:
    """Arrays stored as ``<root>/<digest[:2]>/<digest>.npz``, written atomically."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def has(self, key: str) -> bool:
        return self._path(key).is_file()

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except Exception:
            path.unlink(missing_ok=True)  # corrupt or truncated: recompute
            return None

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(self._path(key), buf.getvalue())

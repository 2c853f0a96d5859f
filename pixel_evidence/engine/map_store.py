"""Where computed results live: a byte-bounded memory LRU, an optional disk cache for
maps, and single-flight so that concurrent requests for the same thing share one computation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np

from pixel_evidence.engine.cache import ByteLRU, DiskCache, SingleFlight, digest

MapValue = dict[str, np.ndarray]  # {"map": (H, W) float32, extra: ()}


@dataclass(frozen=True)
class MapKey:
    """Names one method's map of one image: everything the map depends on.

    ``params`` is the digest of the method's settings, ``weights`` the checkpoint's hash
    (so a retrained model never reads an older model's maps from disk), joined by the
    Grad-CAM layer when the metadata names one (``ModelPool.maps_key``).
    """

    seed: int
    image_id: str
    method: str
    params: str
    target: int
    weights: str
    image_size: int

    @property
    def memory(self) -> tuple:
        return ("map", self.seed, self.image_id, self.method, self.params, self.target)

    @property
    def disk(self) -> str:
        return digest(self.weights, self.image_id, self.image_size, self.method, self.params, self.target)


class MapStore:
    """Memory (``cache_mb``) and, with ``disk_dir``, disk storage of the engine's results."""

    def __init__(self, cache_mb: float, disk_dir: Path | None = None):
        self._memory = ByteLRU(cache_mb)
        self._disk = DiskCache(disk_dir) if disk_dir else None
        self._flight = SingleFlight()

    @property
    def size_bytes(self) -> int:
        return self._memory.size_bytes

    def clear_memory(self) -> None:
        """Forget everything held in memory (the disk cache stays)."""
        self._memory = ByteLRU(self._memory.max_bytes / (1024 * 1024))

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value of ``key`` from memory, else ``compute()`` run once for all concurrent callers."""
        hit = self._memory.get(key)
        if hit is not None:
            return hit

        def fill():
            again = self._memory.get(key)
            if again is not None:
                return again
            value = compute()
            self._memory.put(key, value)
            return value

        return self._flight.run(key, fill)

    def put_map(self, key: MapKey, value: MapValue) -> None:
        if self._disk:
            self._disk.put(key.disk, value)
        self._memory.put(key.memory, value)

    def on_disk(self, keys: Sequence[MapKey]) -> bool:
        """Whether the disk holds any of ``keys`` (e.g. one method's map for any target)."""
        return bool(self._disk) and any(self._disk.has(k.disk) for k in keys)

    def maps(self, keys: Mapping[str, MapKey],
             compute: Callable[[list[str]], Mapping[str, MapValue]]) -> dict[str, MapValue]:
        """The map of every method in ``keys``: from memory, else disk, else ``compute(methods)``
        called once with all the missing methods (so that they can share passes)."""
        found = {m: v for m, k in keys.items() if (v := self._memory.get(k.memory)) is not None}
        missing = [m for m in keys if m not in found]
        if missing:
            flight = ("maps",) + tuple(keys[m].memory for m in missing)
            found.update(self._flight.run(flight, lambda: self._fill({m: keys[m] for m in missing}, compute)))
        return {m: found[m] for m in keys}

    def _fill(self, keys: Mapping[str, MapKey],
              compute: Callable[[list[str]], Mapping[str, MapValue]]) -> dict[str, MapValue]:
        got: dict[str, MapValue] = {}
        for m, k in keys.items():  # another request may have filled some meanwhile
            value = self._memory.get(k.memory)
            if value is None and self._disk:
                value = self._disk.get(k.disk)
                if value is not None and "map" in value:
                    self._memory.put(k.memory, value)
                else:
                    value = None
            if value is not None:
                got[m] = value
        todo = [m for m in keys if m not in got]
        if todo:
            for m, value in compute(todo).items():
                self.put_map(keys[m], value)
                got[m] = value
        return got

"""What every session of a server process shares: the worker threads that compute answers
off the server's threads, and caches of answers that are the same for every session.

The host module holds the one :class:`ProcessShared` of the process
(:data:`pixel_evidence.dashboard.host.SHARED`) and stops its threads' queued work when the
server ends.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Hashable, TypeVar

if TYPE_CHECKING:  # read on first use: pandas and pyarrow stay out of the server's start
    from pixel_evidence.results import Results, StoreTables

T = TypeVar("T")


class RecentAnswers:
    """The last ``size`` answers by key, computed once each while they stay (least recently used goes)."""

    def __init__(self, size: int):
        self._items: OrderedDict[Hashable, object] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The answer of ``key``: the kept one, else ``compute()`` (outside the lock) kept from now on."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]  # type: ignore[return-value]
        answer = compute()
        with self._lock:
            self._items[key] = answer
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return answer


def _results_stamp(directory: Path) -> tuple:
    """Each result file's modification time and size (None, None when it is missing)."""
    from pixel_evidence.results import RESULT_FILES

    out = []
    for name in RESULT_FILES:
        try:
            st = (directory / name).stat()
            out.append((name, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((name, None, None))
    return tuple(out)


class FolderCache:
    """What was read from each folder, read again only when the folder's stamp has changed."""

    def __init__(self) -> None:
        self._items: dict[Path, tuple[object, object]] = {}
        self._lock = threading.Lock()

    def get(self, directory: Path, stamp: Callable[[Path], Hashable], read: Callable[[Path], T]) -> T:
        """``read(directory)``, or the value read before if ``stamp(directory)`` is unchanged since."""
        directory = Path(directory)
        now = stamp(directory)
        with self._lock:
            hit = self._items.get(directory)
            if hit is not None and hit[0] == now:
                return hit[1]  # type: ignore[return-value]
        value = read(directory)
        with self._lock:
            self._items[directory] = (now, value)
        return value


class ProcessShared:
    """The thread pools and caches of one server process."""

    def __init__(self) -> None:
        # threads that wait for the engine (which serialises model calls) for the per-image store
        self.explain = ThreadPoolExecutor(max_workers=8, thread_name_prefix="explain")
        # the analysis sections' and the Units tab's, so that an image never waits behind a randomization check
        self.analyse = ThreadPoolExecutor(max_workers=4, thread_name_prefix="analyse")
        # the agreement of recent explanations (a few hundred bytes each): going back to an image, a
        # common move in a demo, shows its matrix without ranking every map again
        self.agreement = RecentAnswers(512)
        # evaluation results and sweep tables, per folder
        self._results = FolderCache()
        self._sweeps = FolderCache()

    def evaluation_results(self, directory: Path) -> Results:
        """``load_results`` of ``directory``, read again only when one of its files has changed."""
        from pixel_evidence.results import load_results

        return self._results.get(directory, _results_stamp, load_results)

    def sweep_tables(self, directory: Path) -> StoreTables:
        """``read_store`` of ``directory``, read again only when a task has landed since."""
        from pixel_evidence.results import read_store, store_stamp

        return self._sweeps.get(directory, store_stamp, read_store)

    def close(self) -> None:
        """Drop the queued work and let the running work end on its own; returns at once."""
        for pool in (self.explain, self.analyse):
            pool.shutdown(wait=False, cancel_futures=True)

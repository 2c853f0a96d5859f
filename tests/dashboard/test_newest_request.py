"""The newest request wins: work superseded while it waits for a thread is never run, and
only the newest request's answer counts as current."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from pixel_evidence.dashboard.newest import Newest


def test_work_superseded_while_waiting_for_a_thread_is_skipped():
    pool = ThreadPoolExecutor(max_workers=1)
    gate, ran = threading.Event(), []
    try:
        requests = Newest(pool)
        pool.submit(gate.wait)  # the only thread is busy: the requests below wait for it
        first = requests.ask()
        older = requests.submit(first, lambda: ran.append("first") or "first")
        second = requests.ask()
        newer = requests.submit(second, lambda: ran.append("second") or "second")
        assert not requests.is_newest(first) and requests.is_newest(second)
        gate.set()
        assert older.result(5) is None and newer.result(5) == "second"
        assert ran == ["second"]
    finally:
        gate.set()
        pool.shutdown()


def test_dropped_and_ended_requests_are_not_current():
    pool = ThreadPoolExecutor(max_workers=1)
    alive = [True]
    try:
        requests = Newest(pool, live=lambda: alive[0])
        number = requests.ask()
        assert asyncio.run(requests.wait(number, lambda x: x * 2, 21)) == 42
        requests.drop()
        assert not requests.is_newest(number)
        number = requests.ask()
        alive[0] = False  # the session ended: nothing more is computed for it
        assert not requests.is_newest(number) and requests.submit(number, lambda: "late").result(5) is None
    finally:
        pool.shutdown()

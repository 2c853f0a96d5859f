"""Running a planned sweep on a Dask cluster: submit the unfinished tasks, follow them, report.

The default cluster is a ``LocalCluster`` of single-threaded worker processes, one per core
(``local_cluster``); ``--scheduler`` connects to one that already runs. Tasks that ask for CUDA
carry ``resources={"GPU": 1}``, so the scheduler sends them to workers started with that
resource. When a worker dies mid-task the scheduler runs the task again elsewhere; its files
replace themselves (see ``store``), so no row is written twice.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from dask.distributed import Client, LocalCluster, as_completed
from tqdm.auto import tqdm

from pixel_evidence.significance_tables import write_store_significance
from pixel_evidence.sweep.plan import Task
from pixel_evidence.sweep.spec import SweepSpec
from pixel_evidence.sweep.store import is_finished, prune, stale_store_temp_files
from pixel_evidence.sweep.worker import TaskResult, run_task


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@contextmanager
def open_client(scheduler: str | None = None, workers: int | None = None,
                dashboard_address: str | None = ":8787", gpu: bool = False) -> Iterator[Client]:
    """A client of the cluster at ``scheduler``, or of a new local one with ``workers``
    single-threaded processes (default: one per core) that ends with the block; with ``gpu``
    each local worker offers one GPU, which CUDA tasks ask for (share one device: use 1 worker)."""
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    cluster = LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1, processes=True,
                           dashboard_address=dashboard_address, resources={"GPU": 1} if gpu else None)
    client = Client(cluster)
    try:
        yield client
    except BaseException:
        stop_local_cluster(client, cluster)
        raise
    client.close()
    cluster.close()


STOP_SECONDS = 5  # how long an interrupted sweep waits for its local workers before killing them


def stop_local_cluster(client: Client, cluster: LocalCluster, seconds: float = STOP_SECONDS) -> None:
    """Close an interrupted sweep's client and local cluster within about ``seconds`` each,
    then kill any worker process still alive: a worker deep in a task (a long forward pass
    holds the GIL) may not answer a polite close, and Ctrl-C must not wait for the task."""
    pids = [nanny.process.pid for nanny in cluster.workers.values() if getattr(nanny, "process", None)]
    for close in (client.close, cluster.close):
        try:
            close(timeout=seconds)
        except Exception:  # noqa: BLE001 - tearing down after an interrupt: the kill below is the bound
            pass
    for pid in pids:
        if pid is not None:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def dashboard_link(client: Client) -> str | None:
    try:
        return client.dashboard_link
    except (AttributeError, KeyError, ValueError):
        return None


@dataclass
class SweepReport:
    planned: int
    skipped: int                                       # finished before this run
    done: list[TaskResult] = field(default_factory=list)
    task_errors: list[tuple[str, str]] = field(default_factory=list)  # (task label, error) of tasks that failed
    pruned: int = 0
    significance: list[Path] = field(default_factory=list)  # the significance tables written at the end
    significance_notes: list[str] = field(default_factory=list)  # what they leave out, and why

    @property
    def failures(self) -> list[tuple[str, str, str]]:
        """(task label, image id, error) of every image that could not be read."""
        return [(r.label, i, e) for r in self.done for i, e in r.failures]

    @property
    def complete(self) -> bool:
        return not self.task_errors and not self.failures


def submit(client: Client, tasks: Sequence[Task], spec: SweepSpec) -> list:
    resources = {"GPU": 1} if spec.wants_gpu else None
    # the key names the task, so a second submit of the same task joins the first one
    return [client.submit(run_task, t, spec, key=f"sweep-{t.key}", pure=False, resources=resources,
                          retries=0) for t in tasks]


def run_sweep(client: Client, tasks: Sequence[Task], spec: SweepSpec, *, progress: bool = True,
              on_result: Callable[[TaskResult], None] | None = None) -> SweepReport:
    """Run every unfinished task of ``tasks``; on Ctrl-C cancel the rest (finished files stay).

    A task that raises is recorded with its error and the run goes on; images it could not
    read are in its result's failures. After a run without errors, row files of earlier runs
    in the same partitions that these tasks replace are removed (``store.prune``). Then each
    category's significance tables are written from the store's rows
    (:func:`pixel_evidence.significance_tables.write_store_significance`), also after a run
    with errors, over the seeds that have every method.
    """
    for tmp in stale_store_temp_files(spec.out):
        tmp.unlink(missing_ok=True)
    todo = [t for t in tasks if not is_finished(spec.out, t)]
    report = SweepReport(planned=len(tasks), skipped=len(tasks) - len(todo))
    labels = {f"sweep-{t.key}": t.label for t in todo}
    futures = submit(client, todo, spec)
    try:
        with tqdm(total=len(tasks), initial=report.skipped, desc="sweep", unit="task", disable=not progress) as bar:
            for future in as_completed(futures):
                if future.status == "error":
                    report.task_errors.append((labels[future.key], repr(future.exception())))
                else:
                    result = future.result()
                    report.done.append(result)
                    if on_result:
                        on_result(result)
                # forgotten by the cluster: a worker lost later no longer makes it run the task again
                future.release()
                bar.update(1)
    except BaseException:
        # with a bound: an interrupt that landed inside a call to the cluster can leave the
        # next call waiting on its event loop for good
        canceller = threading.Thread(target=client.cancel, args=(futures,), kwargs={"force": True}, daemon=True)
        canceller.start()
        canceller.join(STOP_SECONDS)
        raise
    if not report.task_errors:
        report.pruned = prune(spec.out, tasks)
    # here on the driver, so a cluster's sweep writes them too; over the seeds that have every method
    report.significance, report.significance_notes = write_store_significance(
        spec.out, sorted({t.category.name for t in tasks}))
    return report

"""What a Dask worker runs for one task: explain its images, score them, write their rows.

Each worker process keeps one ``ExplanationEngine`` per category (and settings) across
tasks, so a model is loaded once per process, not once per task. Torch gets one thread:
the cluster runs one single-threaded worker per core, and more threads would fight over them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import torch

from pixel_evidence.engine.cache import digest
from pixel_evidence.engine.explain import ExplanationEngine
from pixel_evidence.evaluate import unit_rows
from pixel_evidence.imported_maps import ImportedMaps
from pixel_evidence.sweep.plan import Task
from pixel_evidence.sweep.spec import SweepSpec
from pixel_evidence.sweep.store import is_finished, row_file, write_task

# Set to a folder, each task first writes <folder>/<key>.<pid>.started there and waits for
# <folder>/release: lets the tests kill a worker while it holds a task (never set otherwise).
HOLD_ENV = "PIXEL_EVIDENCE_SWEEP_HOLD"
HOLD_CAP_S = 300.0

_engines: dict[str, ExplanationEngine] = {}


@dataclass(frozen=True)
class TaskResult:
    key: str
    label: str
    rows: int
    failures: tuple[tuple[str, str], ...]  # (image id, error)


def engine_for(task: Task, spec: SweepSpec) -> ExplanationEngine:
    """This process's engine for the task's category, made on first use."""
    c = task.category
    # maps imported since this process made its engine must not be served as the earlier ones
    imported = {m: p.stat().st_mtime_ns for m, p in ImportedMaps.stored(c.models).items()}
    key = digest(str(c.data), str(c.models), str(c.manifest_path), spec.device, spec.method_params, imported)
    if key not in _engines:
        torch.set_num_threads(1)
        _engines[key] = ExplanationEngine(c.data, c.models, manifest=c.manifest_path, device=spec.device,
                                          cache_mb=16, method_params=spec.method_params)
    engine = _engines[key]
    found = engine.pool.meta.get(task.seed, {}).get("weights_sha256")
    if found != task.checkpoint_sha256:
        raise ValueError(f"{c.models}/seed_{task.seed}.pt changed since the sweep was planned; plan it again")
    return engine


def _hold_for_tests(key: str) -> None:
    folder = os.environ.get(HOLD_ENV)
    if not folder:
        return
    (Path(folder) / f"{key}.{os.getpid()}.started").touch()
    deadline = time.monotonic() + HOLD_CAP_S
    while not (Path(folder) / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


# What an unreadable or inconsistent image raises (DataError is a ValueError).
BAD_INPUT = (ValueError, OSError)


def task_rows(engine: ExplanationEngine, task: Task, spec: SweepSpec) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """The task's rows; when its batch fails on bad input, image by image, keeping the errors."""
    def rows(ids) -> pd.DataFrame:
        table, _ = unit_rows(engine, task.seed, task.split, task.methods, target=spec.target,
                             batch_size=spec.batch_size, progress=False, extra_metrics=spec.metrics,
                             maps_for_good=spec.maps_for_good, image_ids=ids)
        return table

    try:
        return rows(task.image_ids), []
    except BAD_INPUT:
        pass
    parts, failures = [], []
    for image_id in task.image_ids:
        try:
            parts.append(rows([image_id]))
        except BAD_INPUT as err:
            failures.append((image_id, str(err)))
    return (pd.concat(parts, ignore_index=True) if parts else rows([])), failures


def run_task(task: Task, spec: SweepSpec) -> TaskResult:
    """Compute and write one task (the function the scheduler runs); a task whose files are
    already in the store (the scheduler ran it again after losing the worker that held its
    result) is read back instead of computed."""
    if is_finished(spec.out, task):
        rows = sum(pq.ParquetFile(row_file(spec.out, task, m)).metadata.num_rows for m in task.methods)
        return TaskResult(task.key, task.label, rows, ())
    _hold_for_tests(task.key)
    engine = engine_for(task, spec)
    table, failures = task_rows(engine, task, spec)
    write_task(spec.out, task, table, failures, spec.metrics)
    return TaskResult(task.key, task.label, len(table), tuple(failures))

"""Writing tasks into the Parquet store (layout: ``pixel_evidence.results.sweep_store``).

A task writes one file per method, named by its key, each whole and renamed into place
(``files.atomic_write_bytes``): a killed or interrupted task leaves no partial file, and a
task run twice (a retry after a worker died, a rerun) replaces its files instead of adding
rows. A task is finished when every method's file exists and it recorded no failure: a task
whose images could not all be read runs again next time, so a fixed image gets its rows.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pixel_evidence.files import atomic_write_bytes, stale_temp_files
from pixel_evidence.results.sweep_store import FAILURE_SCHEMA, FAILURES_DIR, ROWS_DIR, partition_dir, row_schema
from pixel_evidence.sweep.plan import Task


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def row_file(store: Path, task: Task, method: str) -> Path:
    return partition_dir(store, task.category.name, task.seed, task.split, method) / f"{task.key}.parquet"


def failure_file(store: Path, task: Task) -> Path:
    return Path(store) / FAILURES_DIR / f"{task.key}.parquet"


def is_finished(store: Path, task: Task) -> bool:
    return all(row_file(store, task, m).is_file() for m in task.methods) and not failure_file(store, task).exists()


def write_task(store: Path, task: Task, rows: pd.DataFrame, failures: Sequence[tuple[str, str]],
               extra_metrics: Sequence[str]) -> None:
    """``rows`` (the main table's columns for the task's images and methods) into one file per
    method; ``failures`` ((image id, error) pairs) into the failures table, or its old entry removed."""
    schema = row_schema(extra_metrics)
    rows = rows.assign(checkpoint_sha256=task.checkpoint_sha256, settings_sha256=task.settings_sha256,
                       task_key=task.key)
    if failures:
        table = pa.Table.from_pylist([{"category": task.category.name, "seed": task.seed, "split": task.split,
                                       "methods": " ".join(task.methods), "image_id": image_id, "error": error,
                                       "task_key": task.key} for image_id, error in failures], schema=FAILURE_SCHEMA)
        atomic_write_bytes(failure_file(store, task), _parquet_bytes(table))
    for m in task.methods:
        part = rows[rows["method"] == m][schema.names]
        atomic_write_bytes(row_file(store, task, m),
                           _parquet_bytes(pa.Table.from_pandas(part, schema=schema, preserve_index=False)))
    if not failures:  # last: the task counts as finished only once every file is in place
        failure_file(store, task).unlink(missing_ok=True)


def prune(store: Path, tasks: Iterable[Task]) -> int:
    """Remove row files in the partitions of ``tasks`` that no task of them wrote (left by a
    run with other settings, weights or chunks, whose rows these tasks replace); the number removed."""
    keep: dict[Path, set[str]] = {}
    for t in tasks:
        for m in t.methods:
            keep.setdefault(row_file(store, t, m).parent, set()).add(f"{t.key}.parquet")
    removed = 0
    for folder, names in keep.items():
        for path in folder.glob("*.parquet"):
            if path.name not in names:
                path.unlink()
                removed += 1
    return removed


def stale_store_temp_files(store: Path) -> list[Path]:
    """Temp files of writes that a killed process never finished, anywhere in the store's row
    and failure folders (see ``files.stale_temp_files``; never read, safe to delete)."""
    folders = [d for top in (ROWS_DIR, FAILURES_DIR) for d in [Path(store) / top, *(Path(store) / top).rglob("*")]
               if d.is_dir()]
    return [p for d in folders for p in stale_temp_files(d)]

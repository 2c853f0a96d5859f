"""Section ``sweep``: the sweep on local Dask clusters, and a simulated plan at full scale.

- throughput: images/s of a sweep of the cheap methods over the test split with 1 and with 2
  worker processes (one run each, after each worker has loaded the engine and the model);
- overhead: the scheduler's round trip per task (no-op tasks) plus the Parquet write of one
  task's files, against the work of one task (target: under 5 %);
- plan: 15 categories x 10 seeds x the benchmark's 12 measured methods, scheduled longest
  task first onto 1, 8 and 64 workers with the measured overhead per task.
"""

from __future__ import annotations

import heapq
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from dask.distributed import Client, LocalCluster

from pixel_evidence.sweep.costs import PREDICTION_SECONDS, method_costs
from pixel_evidence.sweep.plan import Task, method_groups, plan
from pixel_evidence.sweep.run import run_sweep
from pixel_evidence.sweep.spec import DEFAULT_CHUNK, Category, SweepSpec
from pixel_evidence.sweep.store import write_task
from pixel_evidence.sweep.worker import engine_for, task_rows

from .config import BenchConfig

CHEAP = ("gradcam", "saliency")
NOOP_TASKS = 200
# MVTec AD: 5354 images in 15 categories, 1258 of them defects with masks; re-split 80/20 per
# class, a category's test split averages 71 images, 17 of them with masks (the ones that get maps).
MVTEC_CATEGORIES, MVTEC_TEST_IMAGES, MVTEC_TEST_MASKED = 15, 71, 17


def _noop(i: int) -> int:
    return i


def _cluster(workers: int) -> tuple[LocalCluster, Client]:
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return cluster, Client(cluster)


def _warm_worker(task: Task, spec: SweepSpec) -> None:
    """Load the engine and the task's model in this worker, as a long sweep's first task has."""
    engine_for(task, spec).pool.network(task.seed)


def _throughput(spec: SweepSpec, workers: int, scratch: Path) -> dict[str, Any]:
    cluster, client = _cluster(workers)
    try:
        run_spec = replace(spec, out=scratch / f"store_{workers}")
        tasks = plan(run_spec)
        # steady state: process start, imports and the model load happen once per worker in a
        # sweep of thousands of tasks, so they stay out of the timed run
        client.run(_warm_worker, tasks[0], run_spec)
        t0 = time.perf_counter()
        report = run_sweep(client, tasks, run_spec, progress=False)
        seconds = time.perf_counter() - t0
        noop = _scheduler_round_trip(client) if workers == 1 else None
    finally:
        client.close()
        cluster.close()
    images = sum(len(t.image_ids) for t in tasks)
    return {"workers": workers, "tasks": len(tasks), "images": images, "seconds": seconds,
            "images_per_s": images / seconds, "complete": report.complete, "noop_round_trip_s": noop}


def _scheduler_round_trip(client: Client) -> float:
    """Seconds per task of ``NOOP_TASKS`` no-op tasks submitted together (the scheduler's share)."""
    client.gather(client.map(_noop, range(10), pure=False))  # warm-up
    t0 = time.perf_counter()
    client.gather(client.map(_noop, range(NOOP_TASKS), pure=False))
    return (time.perf_counter() - t0) / NOOP_TASKS


def _write_seconds(task: Task, spec: SweepSpec, rows: pd.DataFrame, scratch: Path) -> float:
    """Median seconds to write one task's files (one per method), atomically."""
    times = []
    for i in range(5):
        t0 = time.perf_counter()
        write_task(scratch / f"write_{i}", task, rows, [], spec.metrics)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def simulate_plan(overhead_s: float, workers: tuple[int, ...] = (1, 8, 64), seeds: int = 10,
                  chunk: int = DEFAULT_CHUNK) -> dict[str, Any]:
    """Wall hours of the full MVTec sweep per number of workers: every task's cost from the
    benchmark's per-method seconds plus ``overhead_s``, longest first onto the least busy worker."""
    costs = method_costs(ig_refined=True)  # IG as the sweep computes it by default
    methods = [m for m in costs.seconds if m not in ("sidu", "cam")]  # the twelve methods the plan prices
    durations = []
    for _ in range(MVTEC_CATEGORIES * seeds):
        for group in method_groups(methods, costs.seconds):
            for start in range(0, MVTEC_TEST_IMAGES, chunk):
                n = min(chunk, MVTEC_TEST_IMAGES - start)
                masked = round(n * MVTEC_TEST_MASKED / MVTEC_TEST_IMAGES)
                durations.append(masked * sum(costs.seconds[m] for m in group) + n * PREDICTION_SECONDS + overhead_s)
    durations.sort(reverse=True)
    out = {"tasks": len(durations), "methods": methods, "cpu_hours": sum(durations) / 3600, "wall_hours": {}}
    for n in workers:
        loads = [0.0] * n
        heapq.heapify(loads)
        for d in durations:
            heapq.heappush(loads, heapq.heappop(loads) + d)
        out["wall_hours"][str(n)] = max(loads) / 3600
    return out


def bench_sweep(engine, seed: int, cfg: BenchConfig) -> dict[str, Any]:
    category = Category("bench", Path(engine.catalogue.data_root), Path(engine.pool.models_dir))
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        scratch = Path(tmp)
        spec = SweepSpec(categories=(category,), out=scratch / "store", seeds=(seed,), splits=("test",),
                         methods=CHEAP, chunk=cfg.sweep_chunk, device="cpu")
        runs = [_throughput(spec, n, scratch) for n in (1, 2)]
        task = plan(spec)[0]
        rows, _ = task_rows(engine, task, spec)
        write_s = _write_seconds(task, spec, rows, scratch)
    one = runs[0]
    work_per_task = one["seconds"] / one["tasks"]
    overhead = one["noop_round_trip_s"] + write_s
    return {"chunk": cfg.sweep_chunk, "methods": list(CHEAP), "runs": runs,
            "ratio_2_to_1_workers": runs[1]["images_per_s"] / runs[0]["images_per_s"],
            "overhead": {"scheduler_s_per_task": one["noop_round_trip_s"], "write_s_per_task": write_s,
                         "work_s_per_task": work_per_task, "share": overhead / work_per_task},
            "plan": simulate_plan(overhead)}


def markdown_lines(section: dict[str, Any]) -> list[str]:
    if not section or section.get("skipped"):
        return []
    o, p = section["overhead"], section["plan"]
    lines = ["## Sweep on local Dask clusters", "",
             f"Methods {', '.join(section['methods'])}, test split, {section['chunk']} images per task.", "",
             "| workers | tasks | images | seconds | images/s |", "|---|---|---|---|---|"]
    lines += [f"| {r['workers']} | {r['tasks']} | {r['images']} | {r['seconds']:.1f} | {r['images_per_s']:.2f} |"
              for r in section["runs"]]
    lines += ["", f"2 workers / 1 worker: {section['ratio_2_to_1_workers']:.2f}x.", "",
              f"Overhead per task: scheduler {1000 * o['scheduler_s_per_task']:.1f} ms + Parquet write "
              f"{1000 * o['write_s_per_task']:.1f} ms against {o['work_s_per_task']:.2f} s of work: "
              f"{100 * o['share']:.1f} % (target < 5 %).", "",
              f"Simulated plan, 15 categories x 10 seeds x {len(p['methods'])} methods (test split): {p['tasks']} "
              f"tasks, {p['cpu_hours']:.1f} CPU hours; wall hours "
              + ", ".join(f"{n} workers {h:.2f}" for n, h in p["wall_hours"].items()) + ".", ""]
    return lines

"""The sweep on a 2-worker LocalCluster of processes, on the tiny models of conftest.

One cluster serves the module (each start costs seconds). Every test compares the store
with a reference computed another way: ``evaluate`` in this process, or an uninterrupted sweep.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from dask.distributed import Client, LocalCluster

from engine.evaluate import evaluate
from engine.results import TABLE_COLUMNS
from engine.results.sweep_store import read_store
from engine.sweep.plan import plan
from engine.sweep.run import run_sweep
from engine.sweep.spec import Category, SweepSpec
from engine.sweep.worker import HOLD_ENV
from tests.waiting import wait_until

METHODS = ("gradcam", "saliency", "ig")
KEY = ["seed", "split", "image_id", "method"]


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      worker_dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


def set_env(name: str, value: str | None) -> None:
    """Set (or with None, remove) an environment variable in the process that runs this."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def make_spec(tiny_run, out: Path, **kw) -> SweepSpec:
    root, models, *_ = tiny_run
    base = SweepSpec(categories=(Category("cat", Path(root), Path(models)),), out=out, splits=("test",),
                     methods=METHODS, chunk=4, batch_size=4, device="cpu", method_params={"ig": {"n_steps": 4}})
    return replace(base, **kw)


def table_of(store: Path) -> pd.DataFrame:
    return read_store(store).category("cat")[list(TABLE_COLUMNS)].sort_values(KEY).reset_index(drop=True)


def files_of(store: Path) -> list[Path]:
    return sorted((store / "rows").rglob("*.parquet"))


@pytest.fixture(scope="module")
def reference(tiny_run, client, tmp_path_factory):
    """One uninterrupted sweep's table, the yardstick of the fault tests."""
    out = tmp_path_factory.mktemp("reference") / "store"
    spec = make_spec(tiny_run, out)
    report = run_sweep(client, plan(spec), spec, progress=False)
    assert report.complete and report.skipped == 0
    return table_of(out)


def test_plan_groups_cheap_methods_and_chunks_images(tiny_run, tmp_path):
    spec = make_spec(tiny_run, tmp_path / "store")
    tasks = plan(spec)
    # cheap Grad-CAM + Saliency share tasks, IG (0.55 s per image) has its own; 2 seeds
    assert {t.methods for t in tasks} == {("ig",), ("gradcam", "saliency")}
    for seed in (7, 8):
        for group in (("ig",), ("gradcam", "saliency")):
            mine = [t for t in tasks if t.seed == seed and t.methods == group]
            ids = [i for t in mine for i in t.image_ids]
            assert len(ids) == len(set(ids)) and all(len(t.image_ids) <= 4 for t in mine)
    assert len({t.key for t in tasks}) == len(tasks)
    # the key depends on the inputs: other IG settings, other IG keys; Grad-CAM's stay
    other = {t.methods: t.key for t in plan(replace(spec, method_params={"ig": {"n_steps": 5}}))}
    same = {t.methods: t.key for t in tasks}
    assert other[("ig",)] != same[("ig",)] and other[("gradcam", "saliency")] == same[("gradcam", "saliency")]


def test_sweep_rows_equal_evaluate_rows(tiny_run, engine, reference, tmp_path):
    evaluate(engine, tmp_path / "ev", splits=["test"], methods=METHODS, progress=False)
    expected = pd.read_csv(tmp_path / "ev" / "tko_table.csv")[list(TABLE_COLUMNS)].sort_values(KEY)
    expected = expected.reset_index(drop=True)
    assert len(reference) == len(expected) > 0
    pd.testing.assert_frame_equal(reference[KEY + ["class", "predicted", "correct", "target", "k", "n"]],
                                  expected[KEY + ["class", "predicted", "correct", "target", "k", "n"]],
                                  check_dtype=False)
    # maps of a chunk of 4 images and of evaluate's batches of 8 come from differently sized
    # batched convolutions, whose float32 sums may differ in the last bits; a score is a
    # ratio of pixel counts, so such a change moves it by at most one tied pixel's credit
    # (1/K, K >= 16 here) and only where a pixel sits at the top-K cut-off
    scores = ["tko", "chance", "lift", "iou", "rank", "win_share"]
    close = np.isclose(reference[scores].to_numpy(float), expected[scores].to_numpy(float), atol=1e-6,
                       equal_nan=True)
    assert close.mean() > 0.99, reference[~close.all(1)].join(expected[scores], rsuffix="_evaluate")


def test_rerun_skips_finished_tasks_and_adds_no_rows(tiny_run, client, reference, tmp_path):
    spec = make_spec(tiny_run, tmp_path / "store")
    first = run_sweep(client, plan(spec), spec, progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in files_of(spec.out)}
    again = run_sweep(client, plan(spec), spec, progress=False)
    assert again.skipped == again.planned == first.planned and not again.done
    assert {p: p.stat().st_mtime_ns for p in files_of(spec.out)} == stamps
    table = table_of(spec.out)
    assert not table.duplicated(KEY).any()
    pd.testing.assert_frame_equal(table, reference)


def test_worker_killed_mid_task_gives_the_same_table(tiny_run, client, reference, tmp_path):
    hold = tmp_path / "hold"
    hold.mkdir()
    spec = make_spec(tiny_run, tmp_path / "store")
    client.run(set_env, HOLD_ENV, str(hold))
    try:
        outcome = {}
        runner = threading.Thread(target=lambda: outcome.setdefault("report", run_sweep(
            client, plan(spec), spec, progress=False)))
        runner.start()
        started = wait_until(lambda: sorted(hold.glob("*.started")), timeout=120)
        pid = int(started[0].name.split(".")[1])
        os.kill(pid, signal.SIGKILL)
        (hold / "release").touch()
        runner.join(timeout=300)
        assert not runner.is_alive()
    finally:
        client.run(set_env, HOLD_ENV, None)
    assert outcome["report"].complete
    table = table_of(spec.out)
    assert not table.duplicated(KEY).any()
    pd.testing.assert_frame_equal(table, reference)

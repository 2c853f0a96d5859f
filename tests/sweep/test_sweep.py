"""The sweep on a 2-worker LocalCluster of processes, on the tiny models of conftest.

One cluster serves the module (each start costs seconds). Every test compares the store
with a reference computed another way: ``evaluate`` in this process, or an uninterrupted sweep.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from dask.distributed import Client, LocalCluster

from pixel_evidence.cli import main
from pixel_evidence.dashboard.summary.categories import COST
from pixel_evidence.data import read_manifest
from pixel_evidence.evaluate import evaluate
from pixel_evidence.results import TABLE_COLUMNS
from pixel_evidence.results.sweep_store import read_store
from pixel_evidence.significance_tables import (SIGNIFICANCE_SUBDIR, SIGNIFICANCE_TABLES, read_significance,
                                                results_significance_dir, store_significance_dir)
from pixel_evidence.sweep.costs import method_costs
from pixel_evidence.sweep.plan import plan
from pixel_evidence.sweep.run import run_sweep
from pixel_evidence.sweep.spec import Category, SweepSpec
from pixel_evidence.sweep.worker import HOLD_ENV
from tests.significance_checks import assert_ranked_as_pandas
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
def reference_store(tiny_run, client, tmp_path_factory) -> Path:
    """One uninterrupted sweep's store, the yardstick of the fault tests."""
    out = tmp_path_factory.mktemp("reference") / "store"
    spec = make_spec(tiny_run, out)
    report = run_sweep(client, plan(spec), spec, progress=False)
    assert report.complete and report.skipped == 0
    return out


@pytest.fixture(scope="module")
def reference(reference_store):
    return table_of(reference_store)


@pytest.fixture(scope="module")
def evaluated(engine, tmp_path_factory) -> Path:
    """``evaluate`` of the same methods and split in this process."""
    out = tmp_path_factory.mktemp("evaluated")
    evaluate(engine, out, splits=["test"], methods=METHODS, progress=False)
    return out


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


def test_sweep_rows_equal_evaluate_rows(reference, evaluated):
    expected = pd.read_csv(evaluated / "tko_table.csv")[list(TABLE_COLUMNS)].sort_values(KEY)
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


def test_unreadable_image_is_recorded_and_the_rest_completes(tiny_run, client, reference, tmp_path):
    import shutil

    root, models, *_ = tiny_run
    data = tmp_path / "cat"
    shutil.copytree(root, data)
    spec = make_spec(tiny_run, tmp_path / "store", categories=(Category("cat", data, Path(models)),))
    tasks = plan(spec)
    broken = next(i for t in tasks if t.methods == ("ig",) for i in t.image_ids if "crack" in i)
    sample = next(s for s in read_manifest(Path(models) / "manifest.csv") if s.id == broken)
    (data / sample.path).write_bytes(b"not a png")
    report = run_sweep(client, tasks, spec, progress=False)
    assert not report.task_errors
    assert {(i, "unreadable" in e) for _, i, e in report.failures} == {(broken, True)}
    stored = read_store(spec.out)
    assert set(stored.failures["image_id"]) == {broken} and len(stored.failures) == 4  # 2 seeds x 2 method groups
    table = table_of(spec.out)
    assert broken not in set(table["image_id"])
    # every other image has its rows, equal to the clean run's (ranks aside: the broken image has none)
    others = reference[reference["image_id"] != broken].reset_index(drop=True)
    pd.testing.assert_frame_equal(table.drop(columns=["rank", "win_share"]), others.drop(columns=["rank", "win_share"]))
    # the tasks with a failure are not finished: a rerun after the fix completes the table
    shutil.copy(Path(root) / sample.path, data / sample.path)
    again = run_sweep(client, tasks, spec, progress=False)
    assert again.complete and len(again.done) == 4
    pd.testing.assert_frame_equal(table_of(spec.out), reference)
    assert read_store(spec.out).failures.empty


def test_interrupt_leaves_only_complete_files(tiny_run, client, reference, tmp_path):
    spec = make_spec(tiny_run, tmp_path / "store")
    tasks = plan(spec)

    def interrupt(result) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(client, tasks, spec, progress=False, on_result=interrupt)
    # tasks still running on the workers finish or are dropped; wait until nothing runs
    wait_until(lambda: not any(client.processing().values()), timeout=120)
    files = files_of(spec.out)
    assert 0 < len(files) < sum(len(t.methods) for t in tasks)
    for path in files:  # each file whole, with exactly the clean run's rows of its task
        rows = pq.read_table(path).to_pandas()
        method = path.parent.name.removeprefix("method=")
        seed = int(path.parent.parent.parent.name.removeprefix("seed="))
        clean = reference[(reference["method"] == method) & (reference["seed"] == seed)
                          & reference["image_id"].isin(rows["image_id"])]
        assert len(rows) == len(clean) > 0
        np.testing.assert_array_equal(rows.sort_values("image_id")["tko"].to_numpy(),
                                      clean.sort_values("image_id")["tko"].to_numpy())
    # a cancelled task's thread may still be writing: its temp file is hidden, which the reader skips
    assert all(p.name.startswith(".") for p in spec.out.rglob("*.tmp"))
    partial = table_of(spec.out)
    assert len(partial) == len(partial.merge(reference, on=KEY + ["tko"])) > 0
    report = run_sweep(client, tasks, spec, progress=False)
    assert report.complete and report.skipped > 0
    pd.testing.assert_frame_equal(table_of(spec.out), reference)


def test_training_over_seeds_as_tasks_matches_training_here(client, tmp_path):
    import torch

    from pixel_evidence.data import prepare_manifest
    from pixel_evidence.models.checkpoint import scan_seeds
    from pixel_evidence.models.train import TrainConfig, train_seeds
    from pixel_evidence.sweep.training import dask_map
    from tests.conftest import make_mvtec_tree

    root = make_mvtec_tree(tmp_path / "cat", n_train_good=4, n_test={"good": 2, "crack": 3, "hole": 3}, size=32)
    cfg = TrainConfig(seeds=[3, 4], epochs=1, batch_size=8, image_size=32, backbone="efficientnet_lite0",
                      channels_last=False, device="cpu")
    manifest = tmp_path / "manifest.csv"
    prepare_manifest(root, manifest)
    on_cluster = train_seeds(cfg, root, manifest, tmp_path / "dask", map_seeds=dask_map(client, threads=1))
    assert [m["seed"] for m in on_cluster] == [3, 4]
    finished, problems = scan_seeds(tmp_path / "dask")
    assert sorted(finished) == [3, 4] and not problems
    # the same seed trained in this process with one thread gives the same weights, bit for bit
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = train_seeds(replace(cfg, seeds=[3]), root, manifest, tmp_path / "here")
    finally:
        torch.set_num_threads(threads)
    assert here[0]["weights_sha256"] == on_cluster[0]["weights_sha256"] != on_cluster[1]["weights_sha256"]

    def nothing_to_train(train, seeds):
        assert not seeds, f"seeds {list(seeds)} trained again"
        return []

    again = train_seeds(cfg, root, manifest, tmp_path / "dask", map_seeds=nothing_to_train)
    assert [m["weights_sha256"] for m in again] == [m["weights_sha256"] for m in on_cluster]


def test_summary_tab_shows_the_store_beside_evaluate(dash, reference_store, evaluated):
    """The across-categories table: win rates from the store equal evaluate's summary."""
    store = dash.results
    store.sweep_directory = reference_store
    store.load()
    dash.state.tab = "summary"
    section = dash.summary.categories
    assert section._category.options == ["cat"]
    (_, chosen), (_, across) = store.tables["categories"]
    summary = json.loads((evaluated / "summary.json").read_text())
    expected = {store.label(r["method"]): f"{r['mean']:.3f} ± {r['std']:.3f}"
                for r in summary["win_rates_across_seeds"] if r["class"] == "overall" and r["split"] == "test"}
    assert dict(zip(chosen["Method"], chosen["win rate (mean ± std over seeds)"])) == expected
    assert dict(zip(across["Method"], across["cat"])) == expected
    assert not store.sweep.ig_refined  # this store's IG is the fixed rule: priced as such
    costs = method_costs().seconds
    assert dict(zip(chosen["Method"], chosen[COST])) == {store.label(m): round(costs[m], 3) for m in METHODS}


def test_evaluate_exports_the_store_as_a_single_runs_tables(engine, reference_store, evaluated, tmp_path):
    from pixel_evidence.evaluate import export_from_store

    export_from_store(engine, reference_store, "cat", tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for name in ("tko_table.csv", "win_rates.csv"):
        got, want = pd.read_csv(tmp_path / name), pd.read_csv(evaluated / name)
        assert list(got.columns) == list(want.columns) and len(got) == len(want)
    want = json.loads((evaluated / "summary.json").read_text())
    assert summary["win_rates_across_seeds"] == want["win_rates_across_seeds"]
    # the same rows, so the same significance tables as the sweep wrote into its store
    exported = read_significance(results_significance_dir(tmp_path))
    for name, table in read_significance(store_significance_dir(reference_store, "cat")).items():
        pd.testing.assert_frame_equal(exported[name], table)
    with pytest.raises(ValueError, match="no rows of category 'dog'"):
        export_from_store(engine, reference_store, "dog", tmp_path)


def test_the_sweep_writes_significance_tables_and_the_command_rewrites_them(reference_store, tmp_path, capsys):
    copy = shutil.copytree(reference_store, tmp_path / "store")
    shutil.rmtree(copy / SIGNIFICANCE_SUBDIR)
    assert main(["significance", "--store", str(copy)]) == 0
    out = capsys.readouterr().out
    assert_ranked_as_pandas(read_store(reference_store).category("cat"), store_significance_dir(reference_store, "cat"),
                            [line for line in out.splitlines() if line.startswith("significance: cat: ")])
    for table in SIGNIFICANCE_TABLES.values():
        path = store_significance_dir(copy, "cat") / table.file
        assert f"wrote {path}" in out
        assert path.read_bytes() == (store_significance_dir(reference_store, "cat") / table.file).read_bytes()


def test_sweep_file_and_its_mistakes(tmp_path):
    from pixel_evidence.sweep.spec import read_spec

    path = tmp_path / "sweep.toml"
    path.write_text('seeds = "42-44"\nmethods = "all"\nsplits = ["test", "train"]\n'
                    '[method_params.ig]\nn_steps = 8\n'
                    '[[category]]\nname = "hazelnut"\ndata = "d/hazelnut"\nmodels = "m/hazelnut"\n')
    spec = read_spec(path, chunk=8)
    assert spec.seeds == (42, 43, 44) and len(spec.methods) == 14 and spec.splits == ("test", "train")
    assert spec.categories[0].data == tmp_path / "d" / "hazelnut" and spec.chunk == 8
    assert spec.out == tmp_path / "m" / "hazelnut" / "results" / "sweep"
    assert spec.method_params == {"ig": {"n_steps": 8}}
    path.write_text('sedes = [1]\n[[category]]\ndata = "d"\nmodels = "m"\n')
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['sedes'\]"):
        read_spec(path)
    path.write_text('metrics = ["sanity"]\n[[category]]\ndata = "d"\nmodels = "m"\n')
    with pytest.raises(ValueError, match="pixel-evidence evaluate --metrics"):
        read_spec(path)
    path.write_text('[[category]]\nname = "a/b"\ndata = "d"\nmodels = "m"\n')
    with pytest.raises(ValueError, match=r"category names \['a/b'\]"):
        read_spec(path)


def test_the_sweep_computes_ig_as_evaluate_does_unless_told(tmp_path):
    """Flags only: evaluate's tolerance scheme; the fixed rule on request; a sweep file's own
    IG settings are kept; and the shipped models' store goes under runs/."""
    import argparse

    from pixel_evidence.choices import EVALUATE_IG_TOLERANCE, IG_MAX_STEPS
    from pixel_evidence.run_folders import RUNS
    from pixel_evidence.sweep.command import add_sweep_arguments, spec_from_args

    parser = argparse.ArgumentParser()
    add_sweep_arguments(parser)
    data, models = tmp_path / "d", tmp_path / "m"

    def spec(*argv):
        return spec_from_args(parser.parse_args(["--data", str(data), "--models", str(models), *argv]))

    assert spec().method_params["ig"] == {"tolerance": EVALUATE_IG_TOLERANCE, "max_steps": IG_MAX_STEPS}
    assert spec("--ig-tolerance", "0", "--ig-steps", "7").method_params["ig"] == {"n_steps": 7}
    assert spec("--ig-tolerance", "0.02", "--ig-max-steps", "64").method_params["ig"] == {"tolerance": 0.02,
                                                                                          "max_steps": 64}
    path = tmp_path / "sweep.toml"
    path.write_text('[method_params.ig]\nn_steps = 8\n[[category]]\nname = "a"\ndata = "d"\nmodels = "m"\n')
    assert spec_from_args(parser.parse_args(["--spec", str(path)])).method_params["ig"] == {"n_steps": 8}
    shipped = spec_from_args(parser.parse_args(["--seeds", "42"]))
    assert shipped.out == RUNS / "results" / "sweep"


def test_a_store_reads_files_written_before_a_column_existed(tmp_path):
    """Files of an older run lack the newer columns: they read as empty, and the newer files
    keep theirs, whichever file the reader meets first."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pixel_evidence.results import IG_COLUMNS, read_store
    from pixel_evidence.results.sweep_store import row_schema

    def write(method: str, image_id: str, drop: tuple[str, ...]) -> None:
        schema = row_schema()
        values = {f.name: [0.5] if pa.types.is_floating(f.type) else [1] if pa.types.is_integer(f.type) else
                  [True] if pa.types.is_boolean(f.type) else [image_id if f.name == "image_id" else "x"]
                  for f in schema if f.name not in drop}
        folder = tmp_path / "rows" / "category=a" / "seed=1" / "split=test" / f"method={method}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table(values, schema=pa.schema([f for f in schema if f.name not in drop])),
                       folder / "task.parquet")

    write("gradcam", "old-000", drop=IG_COLUMNS)  # "gradcam" sorts first: met before the newer file
    write("ig", "old-000", drop=())
    table = read_store(tmp_path).tko.set_index("method")
    assert table.loc["gradcam", list(IG_COLUMNS)].isna().all()
    assert (table.loc["ig", list(IG_COLUMNS)] == 0.5).all()


def _write_rows(store, seed: int, method: str, tkos: dict[str, float]) -> None:
    """A row file of ``method`` on ``seed`` with the given TKO per image (other columns filler)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pixel_evidence.results.sweep_store import partition_dir, row_schema

    schema = row_schema()
    ids = list(tkos)
    filler = {"class": "hole", "predicted": "hole", "correct": True, "target": "hole", "k": 10, "n": 100}
    values = {f.name: (ids if f.name == "image_id" else list(tkos.values()) if f.name == "tko" else
                       [filler[f.name]] * len(ids) if f.name in filler else
                       [0.1] * len(ids) if pa.types.is_floating(f.type) else ["x"] * len(ids)) for f in schema}
    folder = partition_dir(store, "nut", seed, "test", method)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(values, schema=schema), folder / f"{method}-{seed}.parquet")


def test_a_seed_without_every_method_is_held_out_of_the_ranking(tmp_path):
    """A sweep stopped midway has the late methods on the early seeds only: seed 2, where
    'rise' is missing, would rank 'gradcam' first among two methods; it is held out instead."""
    _write_rows(tmp_path, 1, "gradcam", {"a": 0.2, "b": 0.9})
    _write_rows(tmp_path, 1, "rise", {"a": 0.8, "b": 0.1})
    _write_rows(tmp_path, 2, "gradcam", {"a": 0.5, "b": 0.5})
    tables = read_store(tmp_path)
    assert sorted(tables.tko["seed"].unique()) == [1]
    assert any("seed(s) 2 held out" in p for p in tables.problems)
    winners = tables.tko[tables.tko["rank"] == 1].set_index("image_id")["method"].to_dict()
    assert winners == {"a": "rise", "b": "gradcam"}


def test_a_method_on_part_of_the_images_everywhere_is_left_out(tmp_path):
    """When no seed has every method, the method with rows for only some images is left out,
    and the others are ranked among themselves."""
    for seed in (1, 2):
        _write_rows(tmp_path, seed, "gradcam", {"a": 0.2, "b": 0.9})
        _write_rows(tmp_path, seed, "saliency", {"a": 0.3, "b": 0.1})
        _write_rows(tmp_path, seed, "rise", {"a": 0.8})
    tables = read_store(tmp_path)
    assert set(tables.tko["method"]) == {"gradcam", "saliency"}
    assert any("rise left out" in p for p in tables.problems)
    assert (tables.tko.groupby(["seed", "image_id"])["rank"].max() == 2).all()


def test_a_complete_store_reports_no_problem(tmp_path):
    for seed in (1, 2):
        _write_rows(tmp_path, seed, "gradcam", {"a": 0.2, "b": 0.9})
        _write_rows(tmp_path, seed, "rise", {"a": 0.8, "b": 0.1})
    tables = read_store(tmp_path)
    assert tables.problems == () and len(tables.tko) == 8


def test_plan_prices_ig_as_the_sweep_computes_it(tmp_path):
    """The benchmark has a row for IG's fixed rule and one for IG refined to evaluate's
    tolerance; a plan with a tolerance prices the second, and without a report the fallback
    scales the fixed rule by the measured 2.6x."""
    from pixel_evidence.sweep.costs import FALLBACK_SECONDS

    report = tmp_path / "benchmark.json"
    report.write_text(json.dumps({"methods": {"rows": [
        {"method": "gradcam", "seconds": 0.02}, {"method": "ig", "seconds": 0.5},
        {"method": "ig", "setting": "evaluate", "seconds": 1.4}]}}))
    assert method_costs(report).seconds["ig"] == 0.5
    assert method_costs(report, ig_refined=True).seconds["ig"] == 1.4
    assert method_costs(report, ig_refined=True).seconds["gradcam"] == 0.02
    missing = tmp_path / "none.json"
    assert method_costs(missing, ig_refined=True).seconds["ig"] == pytest.approx(2.6 * FALLBACK_SECONDS["ig"])
    one = (Category("cat", tmp_path, tmp_path),)
    assert SweepSpec(categories=one, out=tmp_path, method_params={"ig": {"tolerance": 0.05}}).ig_refined
    assert not SweepSpec(categories=one, out=tmp_path, method_params={"ig": {"n_steps": 25}}).ig_refined


def test_a_task_run_again_reads_its_files_back(tiny_run, tmp_path):
    """The scheduler runs a finished task again when the worker holding its result is lost;
    its files are read back, not rewritten, and it reports the same rows."""
    from pixel_evidence.sweep.worker import run_task

    spec = make_spec(tiny_run, tmp_path / "store")
    task = plan(spec)[0]
    first = run_task(task, spec)
    stamps = {p: p.stat().st_mtime_ns for p in files_of(spec.out)}
    again = run_task(task, spec)
    assert again == first and first.rows > 0
    assert {p: p.stat().st_mtime_ns for p in files_of(spec.out)} == stamps


@pytest.mark.parametrize("workers, first", [(2, "2 worker(s)"), (8, "8 worker(s)"), (None, "1 worker(s)")])
def test_plan_shows_the_asked_for_worker_count_first(tmp_path, capsys, workers, first):
    """Issue 29: --plan --workers 2 printed wall times for 1, 8 and 64 workers only."""
    from pixel_evidence.sweep.command import print_plan

    spec = SweepSpec(categories=(Category("cat", tmp_path, tmp_path),), out=tmp_path)
    print_plan(spec, [], workers)
    wall = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("wall time"))
    counts = [part.split(" worker")[0] for part in wall.split(": ", 1)[1].split(", ")]
    assert wall.split(": ", 1)[1].startswith(first)
    assert len(counts) == len(set(counts)) and {"1", "8", "64"} <= set(counts)


def test_ctrl_c_on_the_command_ends_it_and_its_workers_while_tasks_run(tiny_run, tmp_path):
    """The command with its own local cluster, interrupted while both workers hold a task that
    would not finish for minutes: it exits, and no worker process outlives it."""
    import subprocess
    import sys

    root, models, *_ = tiny_run
    hold = tmp_path / "hold"
    hold.mkdir()
    command = [sys.executable, "-c", "import sys; from pixel_evidence.cli import main; sys.exit(main(sys.argv[1:]))",
               "sweep", "--data", str(root), "--models", str(models), "--out", str(tmp_path / "store"),
               "--methods", *METHODS, "--ig-steps", "4", "--ig-tolerance", "0", "--chunk", "4", "--workers", "2",
               "--dashboard-address", "none"]
    # a background shell may have left SIGINT ignored: the command gets Python's own handler
    sweep = subprocess.Popen(command, env={**os.environ, HOLD_ENV: str(hold)}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        started = wait_until(lambda: len(list(hold.glob("*.started"))) >= 2 and list(hold.glob("*.started")),
                             timeout=300)
        workers = {int(path.name.split(".")[1]) for path in started}
        sweep.send_signal(signal.SIGINT)
        # the held tasks would run until HOLD_CAP_S (300 s): waiting for them is the hang
        sweep.wait(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode != 0

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(lambda: all(gone(pid) for pid in workers), timeout=60)
    assert not files_of(tmp_path / "store")  # nothing finished, nothing half-written

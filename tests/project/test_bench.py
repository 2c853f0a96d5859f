"""Smoke test of ``python -m benchmarks`` on the tiny models: every section runs and the
JSON carries every field. No timing is asserted; everything is written under tmp_path."""

from __future__ import annotations

import json
import statistics

import pytest
import torch

from benchmarks.bench import main as bench_main
from benchmarks.report import REQUIRED_KEYS, TARGETS
from pixel_evidence.choices import EVALUATE_IG_TOLERANCE, IG_MAX_STEPS
from pixel_evidence.explainers import REGISTRY


def _node(result: dict, path: str) -> dict:
    node = result
    for part in filter(None, path.split(".")):
        node = node[part]
    return node


def test_bench_writes_every_field(tiny_run, tmp_path, capsys):
    root, models = tiny_run[0], tiny_run[1]
    out = tmp_path / "bench"
    threads = torch.get_num_threads()
    try:
        # one thread: the smoke test stays quick even when other jobs load the CPU
        code = bench_main(["--data", str(root), "--models", str(models), "--out", str(out), "--seed", "7",
                     "--device", "cpu", "--cold-images", "1", "--warm-requests", "5", "--eval-images", "1",
                     "--eval-multipliers", "1 2 4", "--train-steps", "1", "--ig-steps", "2 4",
                     "--ig-methods", "riemann_trapezoid", "gausslegendre", "--ig-images", "1", "--ig-chunks", "1 4",
                     "--engine-ig-steps", "4", "--widget-changes", "2", "--method-images", "1", "--no-server", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    assert "Cold latency" in capsys.readouterr().out
    result = json.loads((out / "benchmark.json").read_text())
    for path, keys in REQUIRED_KEYS.items():
        node = _node(result, path)
        missing = [k for k in keys if k not in node]
        assert not missing, f"{path or 'top level'} lacks {missing}"
    for key in ("gradcam", "saliency", "ig", "all"):
        row = result["cold"][key]
        assert row["engine_s"] > 0 and row["original_s"] > 0 and row["floor_s"] > 0
        # engine / floor is paired: the median of per-image ratios, not a ratio of medians
        pairs = list(zip(row["engine_samples_s"], row["floor_samples_s"], strict=True))
        assert len(pairs) == len(result["cold"]["images"])
        assert row["ratio_to_floor"] == pytest.approx(statistics.median(e / f for e, f in pairs))
        assert row["ratio_of_medians_to_floor"] == pytest.approx(row["engine_s"] / row["floor_s"])
    # all three with IG refined to evaluate's tolerance, paired with the default's call per image
    at_eval = result["cold"]["all_evaluation_ig"]
    assert at_eval["ig_params"] == {"tolerance": EVALUATE_IG_TOLERANCE, "max_steps": IG_MAX_STEPS}
    assert len(at_eval["engine_samples_s"]) == len(result["cold"]["images"]) == len(at_eval["ig_steps"])
    assert all(17 <= s <= IG_MAX_STEPS for s in at_eval["ig_steps"])  # the first grid has 17 nodes
    assert at_eval["ratio_to_default"] == pytest.approx(statistics.median(
        e / d for e, d in zip(at_eval["engine_samples_s"], result["cold"]["all"]["engine_samples_s"])))
    assert [r["multiplier"] for r in result["evaluation"]["runs"]] == [1, 2, 4, 1]
    assert [r["images"] for r in result["evaluation"]["runs"]] == [1, 2, 4, 1]
    # the 1x reference is the mean of the first and the last run (they bracket the others)
    runs = result["evaluation"]["runs"]
    assert result["evaluation"]["ratio_4x_1x"] == pytest.approx(
        runs[2]["seconds"] / ((runs[0]["seconds"] + runs[3]["seconds"]) / 2))
    assert result["warm"]["requests"] == 5
    assert len(result["ig_accuracy"]["rows"]) == 4
    assert {r["chunk"] for r in result["ig_chunks"]["rows"]} == {1, 4}
    assert result["training"]["images_per_s"] > 0
    assert [r["method"] for r in result["methods"]["rows"] if "setting" not in r] == list(REGISTRY)
    refined = [r for r in result["methods"]["rows"] if r.get("setting") == "evaluate"]
    assert [r["method"] for r in refined] == ["ig"] and refined[0]["params"]["tolerance"] == EVALUATE_IG_TOLERANCE
    assert all(17 <= s <= IG_MAX_STEPS for s in refined[0]["steps"])
    assert all(r["seconds"] > 0 for r in result["methods"]["rows"])
    assert "Every method" in (out / "benchmark.md").read_text()
    assert set(result["targets"]) == set(TARGETS)
    # the in-process parts ran (the server parts are skipped here): a failure there is only noted
    dashboard = result["dashboard"]
    assert dashboard["status"] == "partial" and "failed" not in dashboard["note"], dashboard["note"]
    assert dashboard["sessions"]["sessions"] == 10 and dashboard["sessions"]["cold"]["latency_max_ms"] > 0
    assert dashboard["widget_change"]["warm_changes"] == 2
    assert dashboard["rss"] == {}  # no server in this test
    assert result["model"]["seed"] == 7 and result["machine"]["torch_version"]
    md = (out / "benchmark.md").read_text()
    assert "Machine:" in md and "## Targets" in md and "| 1 (1x, again) |" in md
    # nothing but the two reports (and the scratch folder, removed) is left
    assert sorted(p.name for p in out.iterdir()) == ["benchmark.json", "benchmark.md"]

    # --update re-measures one section and keeps the others, each saying which run it is from
    threads = torch.get_num_threads()
    try:
        code = bench_main(["--data", str(root), "--models", str(models), "--out", str(out), "--seed", "7",
                     "--device", "cpu", "--warm-requests", "7", "--cold-images", "1", "--only", "warm", "--update",
                     "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    updated = json.loads((out / "benchmark.json").read_text())
    assert updated["warm"]["requests"] == 7
    for kept in ("cold", "evaluation", "methods", "ig_accuracy"):
        assert updated[kept] == result[kept]
        assert updated["carried_over"][kept]["date"] == result["machine"]["date"]
    assert "warm" not in updated["carried_over"] and set(updated["targets"]) == set(TARGETS)
    assert "Sections kept from earlier runs" in (out / "benchmark.md").read_text()


def test_update_without_an_earlier_report_fails_before_measuring(tmp_path, capsys):
    """``--update`` with an ``--out`` that holds no report: a one-line error at once, naming
    the file and the folder to pass, and nothing measured or written (it used to fail only
    after every section had run, losing their results)."""
    out = tmp_path / "bench"
    assert bench_main(["--only", "dashboard", "--update", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: --update") and str(out / "benchmark.json") in err and "benchmarks/results" in err
    assert not out.exists()


def test_the_benchmark_refuses_to_write_into_the_shipped_report_unless_told(tmp_path, capsys, monkeypatch):
    """The benchmark's ``--out`` guard is the commands' guard: benchmarks/results/ needs --write-shipped."""
    from pixel_evidence.run_folders import PROJECT_ROOT

    monkeypatch.chdir(tmp_path)
    shipped = PROJECT_ROOT / "benchmarks" / "results"
    before = {str(p): p.stat().st_mtime_ns for p in shipped.rglob("*")}
    assert bench_main(["--out", str(shipped), "--only", "warm"]) == 2
    err = capsys.readouterr().err.strip().split("\n")[-1]
    assert err.startswith("error: --") and "is a shipped folder of the checkout; pass --write-shipped" in err
    assert {str(p): p.stat().st_mtime_ns for p in shipped.rglob("*")} == before and not (tmp_path / "runs").exists()

"""One bad input never stops the rest: bad weights are not offered, evaluate skips a bad seed
and goes on, malformed metadata is one seed's problem, a defect image with an empty mask is
named as bad data, a missing image or a bad mask leaves out that image only, and killed runs'
temp files are removed by the next run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from PIL import Image

from pixel_evidence.cli import main
from pixel_evidence.data import DataError
from pixel_evidence.engine.catalogue import ImageCatalogue
from pixel_evidence.engine.explain import ExplanationEngine
from pixel_evidence.engine.model_pool import ModelPool
from pixel_evidence.files import STALE_TEMP_S, _temp_prefix, remove_stale_temp_files


def pool_on(root, models) -> ModelPool:
    catalogue = ImageCatalogue(root, models / "manifest.csv")
    return ModelPool(models, classes=catalogue.classes, manifest_sha256=catalogue.manifest_sha256, device="cpu")


def record_weights(models, seed: int) -> None:
    """Make ``seed_<n>.json`` record the digest of whatever ``seed_<n>.pt`` now holds, as a
    forger would: then only a safe load can tell the file is bad."""
    import hashlib

    js = models / f"seed_{seed}.json"
    digest = hashlib.sha256((models / f"seed_{seed}.pt").read_bytes()).hexdigest()
    js.write_text(json.dumps({**json.loads(js.read_text()), "weights_sha256": digest}))


class RunsCode:
    """Unpickling this creates the folder it names: the trace of code run by a load."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def break_weights(models, seed: int, how: str, tmp_path) -> str:
    """Spoil ``seed``'s weights in one of the ways a file goes bad; the words its reason must hold."""
    pt = models / f"seed_{seed}.pt"
    if how == "truncated":
        pt.write_bytes(pt.read_bytes()[: pt.stat().st_size // 2])
        return "truncated"
    if how == "truncated, digest forged":
        pt.write_bytes(pt.read_bytes()[: pt.stat().st_size // 2])
        record_weights(models, seed)
        return "truncated"
    if how == "runs code":
        torch.save({"w": torch.zeros(1), "payload": RunsCode(tmp_path / "ran")}, pt)
        record_weights(models, seed)
        return "Python objects are unsafe"
    if how == "another seed's weights":
        other = 7 if seed != 7 else 8
        shutil.copy(models / f"seed_{other}.pt", pt)
        return "weights are not those"
    raise ValueError(how)


# ----------------------------------------------------------------------------- weights checked on scan

@pytest.mark.parametrize("how", ["truncated", "truncated, digest forged", "runs code", "another seed's weights"])
def test_bad_weights_are_listed_with_their_reason_not_offered(tiny_run, models, tmp_path, how):
    reason = break_weights(models, 8, how, tmp_path)
    pool = pool_on(tiny_run[0], models)
    assert pool.seeds == [7]
    assert list(pool.left_out) == [8] and "seed_8.pt" in pool.left_out[8] and reason in pool.left_out[8]
    assert len(pool.warnings) == 1 and "\n" not in pool.warnings[0]
    assert not (tmp_path / "ran").exists()  # nothing in the file was run


# ----------------------------------------------------------------------------- evaluate goes on

def evaluate_args(root, models, out, *extra):
    return ["evaluate", "--data", str(root), "--models", str(models), "--out", str(out), "--splits", "test",
            "--methods", "gradcam", "saliency", "--device", "cpu", *extra]


def misfit_weights(models, seed: int) -> None:
    """Tensors that pass the scan (safe, recorded) but fit no layer of the network: found only
    when the network is built."""
    torch.save({"not.a.layer": torch.zeros(3)}, models / f"seed_{seed}.pt")
    record_weights(models, seed)


@pytest.mark.parametrize("seeds", [[], ["--seeds", "7,8"]])
@pytest.mark.parametrize("spoil", ["truncated", "misfit"])
def test_evaluate_skips_a_bad_seed_goes_on_and_exits_non_zero(tiny_run, models, tmp_path, capsys, seeds, spoil):
    if spoil == "misfit":
        misfit_weights(models, 7)
    else:
        break_weights(models, 7, spoil, tmp_path)
    out = tmp_path / "results"
    assert main(evaluate_args(tiny_run[0], models, out, *seeds)) == 1
    err = capsys.readouterr().err
    skipped = [line for line in err.splitlines() if line.startswith("skipped seed 7: ")]
    assert len(skipped) == 1 and "seed_7.pt" in skipped[0], err
    assert "Traceback" not in err
    table = pd.read_csv(out / "tko_table.csv")
    assert set(table["seed"]) == {8} and len(table) == 2 * len(ImageCatalogue(
        tiny_run[0], models / "manifest.csv").image_ids("test"))


def test_evaluate_of_good_seeds_exits_zero(tiny_run, models, tmp_path, capsys):
    assert main(evaluate_args(tiny_run[0], models, tmp_path / "results", "--seeds", "8")) == 0
    assert "skipped" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- metadata schema

@pytest.mark.parametrize("field, value", [("history", "epoch 1: loss 0.3"), ("history", [{"epoch": "one"}]),
                                          ("history", [{"epoch": 1, "val_loss": "low"}]),
                                          ("hyperparameters", ["lr", 0.001]), ("final_metrics", {"test": 0.9}),
                                          ("validation_ids", "crack-001")])
def test_a_malformed_field_is_that_seeds_problem_only(tiny_run, models, field, value):
    js = models / "seed_8.json"
    js.write_text(json.dumps({**json.loads(js.read_text()), field: value}))
    pool = pool_on(tiny_run[0], models)
    assert pool.seeds == [7]
    assert len(pool.warnings) == 1 and "seed_8.json" in pool.warnings[0] and repr(field) in pool.warnings[0]


def test_a_history_that_is_a_string_leaves_the_summary_to_the_other_seeds(tiny_run, models):
    from pixel_evidence.dashboard.app import create_app

    js = models / "seed_8.json"
    js.write_text(json.dumps({**json.loads(js.read_text()), "history": "epoch 1: loss 0.3"}))
    engine = ExplanationEngine(tiny_run[0], models, device="cpu")
    try:
        dash = create_app(engine=engine).dashboard
        assert "seed_8.json" in dash.engine_warnings.object and dash.engine_warnings.visible
        heading, *charts = dash.summary.curves._column.objects  # built: the tab is not stuck loading
        assert "Training: loss" in heading.object and len(charts) == 2
        assert set(dash.results.history()["seed"]) == {7}
    finally:
        engine.close()


# ----------------------------------------------------------------------------- empty masks

def empty_one_mask(engine, data):
    sample = next(s for s in engine.catalogue.samples if s.has_mask and s.split == "test")
    mask = data / sample.mask_path
    Image.new("L", Image.open(mask).size, 0).save(mask)
    return sample, mask


def test_a_defect_image_with_an_empty_mask_is_named_as_bad_data(data, models):
    from pixel_evidence.dashboard.image_html import verdict_html

    engine = ExplanationEngine(data, models, device="cpu")
    try:
        sample, mask = empty_one_mask(engine, data)
        ex = engine.explain(7, sample.id, methods=["gradcam"])
        assert ex.k == 0 and str(mask) in ex.empty_mask and "\n" not in ex.empty_mask
        verdict = verdict_html(ex)
        assert str(mask) in verdict and "empty mask" in verdict and "A good (defect-free) image" not in verdict
        good = next(s for s in engine.catalogue.samples if not s.has_mask)
        assert engine.explain(7, good.id, methods=["gradcam"]).empty_mask == ""
    finally:
        engine.close()


def test_evaluate_names_a_defect_image_with_an_empty_mask(data, models, tmp_path, capsys):
    catalogue = ImageCatalogue(data, models / "manifest.csv")
    sample = next(s for s in catalogue.samples if s.has_mask and s.split == "test")
    Image.new("L", Image.open(data / sample.mask_path).size, 0).save(data / sample.mask_path)
    out = tmp_path / "results"
    assert main(evaluate_args(data, models, out, "--seeds", "8")) == 1
    err = capsys.readouterr().err
    named = [line for line in err.splitlines() if str(data / sample.mask_path) in line]
    assert len(named) == 1 and named[0].startswith("skipped ") and "no defect pixels" in named[0]
    summary = json.loads((out / "summary.json").read_text())
    assert [str(data / sample.mask_path) in line for line in summary["empty_masks"]] == [True]


# ----------------------------------------------------------------------------- missing images, bad masks

def test_a_missing_image_leaves_out_that_image_only(data, models):
    catalogue = ImageCatalogue(data, models / "manifest.csv")
    gone = next(s for s in catalogue.samples if s.split == "test" and s.has_mask)
    (data / gone.path).unlink()
    engine = ExplanationEngine(data, models, device="cpu")
    try:
        assert list(engine.catalogue.missing) == [gone.id] and str(data / gone.path) in engine.catalogue.missing[gone.id]
        assert any(str(data / gone.path) in w for w in engine.warnings)
        with pytest.raises(DataError, match=str(data / gone.path)):
            engine.explain(7, gone.id, methods=["gradcam"])
        other = next(i for i in engine.catalogue.image_ids("test") if i != gone.id)
        assert engine.explain(7, other, methods=["gradcam"]).image_id == other
    finally:
        engine.close()


def test_the_page_serves_the_rest_and_names_the_missing_image(data, models):
    from pixel_evidence.dashboard.app import create_app

    catalogue = ImageCatalogue(data, models / "manifest.csv")
    gone = next(s for s in catalogue.samples if s.split == "test" and s.has_mask)
    (data / gone.path).unlink()
    engine = ExplanationEngine(data, models, device="cpu")
    try:
        dash = create_app(engine=engine).dashboard
        assert dash.engine_warnings.visible and gone.id in dash.engine_warnings.object
        dash.state.param.update(split="test", image_class=gone.cls)
        dash.state.image_id = gone.id
        assert gone.path in dash.store.error and dash.store.explanation is None
        other = next(i for i in engine.catalogue.image_ids("test", gone.cls) if i != gone.id)
        dash.state.image_id = other
        assert dash.store.error == "" and dash.store.explanation.image_id == other
    finally:
        engine.close()


@pytest.mark.parametrize("spoil", ["image missing", "mask missing", "mask of another size", "mask undecodable"])
def test_evaluate_skips_an_unusable_image_names_it_and_takes_it_back_once_fixed(data, models, tmp_path, capsys,
                                                                                  spoil):
    catalogue = ImageCatalogue(data, models / "manifest.csv")
    bad = next(s for s in catalogue.samples if s.split == "test" and s.has_mask)
    path = data / (bad.path if spoil == "image missing" else bad.mask_path)
    original = path.read_bytes()
    if spoil.endswith("missing"):
        path.unlink()
    elif spoil == "mask of another size":
        Image.new("L", (5, 5), 255).save(path)
    else:
        path.write_bytes(original[:40])
    out = tmp_path / "results"
    assert main(evaluate_args(data, models, out, "--seeds", "8")) == 1
    err = capsys.readouterr().err
    named = [line for line in err.splitlines() if line.startswith("skipped ") and str(path) in line]
    assert len(named) == 1 and "Traceback" not in err, err
    table = pd.read_csv(out / "tko_table.csv")
    assert bad.id not in set(table["image_id"])
    assert len(set(table["image_id"])) == len(catalogue.image_ids("test")) - 1
    path.write_bytes(original)  # fixed: the next run evaluates the image again
    assert main(evaluate_args(data, models, out, "--seeds", "8")) == 0
    assert bad.id in set(pd.read_csv(out / "tko_table.csv")["image_id"])


def test_with_every_image_missing_the_set_up_page_names_the_served_models(data, models, tmp_path):
    from pixel_evidence.dashboard.app import create_app
    from pixel_evidence.dashboard.config import AppConfig

    elsewhere = tmp_path / "my_parts"  # not an MVTec AD category: no download can bring it back
    elsewhere.mkdir()
    page = create_app(AppConfig(data=elsewhere, models=models, warm=False)).main[0].objects[0].object
    assert "missing" in page and f"--data {elsewhere} --models {models}" in page
    assert "data download" not in page and "runs/models" not in page


def test_the_set_up_page_without_models_option_names_the_shipped_folder():
    from pixel_evidence.dashboard.config import AppConfig
    from pixel_evidence.dashboard.setup_problem import describe_setup_error
    from pixel_evidence.run_folders import SHIPPED_MODELS

    problem = describe_setup_error(DataError("/x/cat/test/crack/000.png: listed in m.csv but missing"),
                                   AppConfig(data="/x/cat"))
    assert [c for c in problem.commands if c.startswith("panel serve")] == [
        f"panel serve app.py --args --data /x/cat --models {SHIPPED_MODELS}"]


def test_the_background_fill_skips_a_bad_mask_and_goes_on(data, models, caplog):
    engine = ExplanationEngine(data, models, device="cpu")
    try:
        ids = engine.catalogue.image_ids("test")
        bad = next(engine.catalogue.sample(i) for i in ids if engine.catalogue.sample(i).has_mask)
        Image.new("L", (5, 5), 255).save(data / bad.mask_path)  # another size than its image
        assert engine.precompute(7, "test", ["gradcam"]).result() == len(ids)
        before = engine.compute_calls
        for i in ids:
            if i != bad.id:
                engine.explain(7, i, split="test", methods=["gradcam"])
        assert engine.compute_calls == before  # every other image was filled
        assert any(bad.mask_path in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    finally:
        engine.close()


# ----------------------------------------------------------------------------- temp files of killed runs

def killed_writer(folder, target: str) -> None:
    """A process that opens an atomic write's temp file for ``target`` in ``folder`` and is
    killed before the rename, as a run killed mid-write."""
    code = ("import os, signal, sys, tempfile; from pixel_evidence.files import _temp_prefix; "
            "tempfile.mkstemp(dir=sys.argv[1], prefix=_temp_prefix(sys.argv[2]), suffix='.tmp'); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    run = subprocess.run([sys.executable, "-c", code, str(folder), target], cwd=os.getcwd())
    assert run.returncode == -signal.SIGKILL


def old_style_temp(folder, name: str, *, age: float):
    """A temp file as versions before the writer's name wrote it, ``age`` seconds old."""
    path = folder / name
    path.write_bytes(b"half")
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_stale_temp_files_are_only_a_dead_writers_or_old_ones(tmp_path):
    killed_writer(tmp_path, "manifest.csv")
    [dead] = tmp_path.glob(".manifest.csv.*.tmp")
    live = tmp_path / f"{_temp_prefix('tko_table.csv')}abcd_123.tmp"  # this process's own write in progress
    live.write_bytes(b"")
    old = old_style_temp(tmp_path, "..seed_42.pt.staged.k2j4_x9a.tmp", age=STALE_TEMP_S + 60)
    fresh = old_style_temp(tmp_path, ".win_rates.csv.q8w3e5r1.tmp", age=5)  # may be another run's, writing
    foreign = [old_style_temp(tmp_path, name, age=STALE_TEMP_S * 10) for name in (".notes.tmp", "keep.tmp",
                                                                                      ".my.data.tmp")]
    assert sorted(remove_stale_temp_files(tmp_path)) == sorted([dead, old])
    assert live.exists() and fresh.exists() and all(p.exists() for p in foreign)


def test_a_live_writer_of_another_run_keeps_its_file(tmp_path):
    code = ("import sys, tempfile; from pixel_evidence.files import _temp_prefix; "
            "print(tempfile.mkstemp(dir=sys.argv[1], prefix=_temp_prefix('tko_table.csv'), suffix='.tmp')[1], "
            "flush=True); sys.stdin.read()")
    writer = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        path = writer.stdout.readline().strip()
        assert remove_stale_temp_files(tmp_path) == [] and os.path.exists(path)
    finally:
        writer.communicate("")
    assert remove_stale_temp_files(tmp_path) == [tmp_path / os.path.basename(path)]  # its writer is gone now


def test_the_next_evaluate_removes_what_a_killed_one_left(tiny_run, models, tmp_path):
    out = tmp_path / "results"
    (out / "per_seed").mkdir(parents=True)
    killed_writer(out, "tko_table.csv")
    killed_writer(out / "per_seed", "seed_8_test.csv")
    old = old_style_temp(out, ".summary.json.a1b2c3d4.tmp", age=STALE_TEMP_S + 60)
    assert main(evaluate_args(tiny_run[0], models, out, "--seeds", "8")) == 0
    assert not old.exists() and [p for p in out.rglob("*.tmp")] == []


def test_the_next_train_removes_what_a_killed_one_left(tiny_run, models):
    from pixel_evidence.models.train import train_seeds

    root, _models, manifest, cfg, _meta = tiny_run
    killed_writer(models, "manifest.csv")
    killed_writer(models, ".seed_8.pt.staged")
    old = old_style_temp(models, ".seed_8.json.zz99yy88.tmp", age=STALE_TEMP_S + 60)
    train_seeds(cfg, root, models / "manifest.csv", models)  # both seeds finished: nothing trained
    assert not old.exists() and list(models.glob("*.tmp")) == []


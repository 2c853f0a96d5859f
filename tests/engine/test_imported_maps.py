"""`pixel-evidence import-maps`: maps made elsewhere, checked, stored beside the models and
ranked like the computed methods. The planted answer: the engine's own Grad-CAM maps,
exported and imported under another name, must score exactly Grad-CAM's TKO."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pixel_evidence.cli import main
from pixel_evidence.imported_maps import IMPORTED_SUBDIR, LABEL_MARK, read_map
from tests.map_files import export_maps

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")


@pytest.fixture
def models(tiny_run, tmp_path):
    """A private copy of the tiny models, so imports never reach the shared ones."""
    copy = tmp_path / "models"
    shutil.copytree(tiny_run[1], copy)
    return copy


def run_cli(*argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_exported_gradcam_imported_under_another_name_scores_gradcams_tko(tiny_run, models, tmp_path, capsys):
    from pixel_evidence.engine.explain import ExplanationEngine
    from pixel_evidence.evaluate import evaluate

    root = tiny_run[0]
    engine = ExplanationEngine(root, models, device="cpu")
    source = export_maps(engine, tmp_path / "maps", "mycam")
    engine.close()

    code, out, err = run_cli("import-maps", source, "--models", models, capsys=capsys)
    assert code == 0, err
    assert (models / IMPORTED_SUBDIR / "mycam.npz").is_file()

    engine = ExplanationEngine(root, models, device="cpu")
    assert engine.method_labels()["mycam"] == "mycam" + LABEL_MARK
    summary = evaluate(engine, tmp_path / "results", splits=("test",), methods=("gradcam", "mycam"), progress=False)
    table = pd.read_csv(tmp_path / "results" / "tko_table.csv")
    scored = table[table["tko"].notna()].pivot_table(index=["seed", "image_id"], columns="method", values="tko")
    masked = sum(engine.catalogue.sample(i).has_mask for i in engine.catalogue.image_ids("test"))
    assert len(scored) == masked * len(engine.pool.seeds)
    np.testing.assert_array_equal(scored["mycam"].to_numpy(), scored["gradcam"].to_numpy())
    # identical maps tie on every image: each wins half of it
    shares = table[table["tko"].notna()].groupby("method")["win_share"].unique()
    assert [list(v) for v in shares] == [[0.5], [0.5]]
    assert summary["imported_methods"] == ["mycam"]
    sidecar = json.loads(next((tmp_path / "results" / "per_seed").glob("seed_*_test.json")).read_text())
    assert set(sidecar["methods"]["mycam"]) == {"imported_sha256"}  # the maps' content, not a cost or setting

    # the per-image view's numbers come from the same engine call
    image_id = engine.catalogue.image_ids("test", "crack")[0]
    ex = engine.explain(engine.pool.seeds[0], image_id=image_id, methods=("gradcam", "mycam"))
    assert ex.methods["mycam"].tko == ex.methods["gradcam"].tko
    assert ex.methods["mycam"].label == "mycam (imported)"
    engine.close()


def test_maps_for_every_seed_from_a_tar_archive_of_npz_files(tiny_run, models, tmp_path, capsys):
    """One map per image for all seeds (a map of someone else's model), shipped as .npz in a .tar.gz."""
    from pixel_evidence.engine.explain import ExplanationEngine

    root = tiny_run[0]
    engine = ExplanationEngine(root, models, device="cpu")
    ids = engine.catalogue.image_ids("test")
    rng = np.random.default_rng(3)
    archive = tmp_path / "maps.tar.gz"
    planted = {}
    with tarfile.open(archive, "w:gz") as tar:
        for image_id in ids:
            planted[image_id] = rng.random((64, 64), dtype=np.float32)
            buf = io.BytesIO()
            np.savez(buf, map=planted[image_id])
            info = tarfile.TarInfo(f"anomaly/{image_id}.npz")
            info.size = len(buf.getvalue())
            tar.addfile(info, io.BytesIO(buf.getvalue()))
    engine.close()
    code, out, err = run_cli("import-maps", archive, "--models", models, capsys=capsys)
    assert code == 0, err

    engine = ExplanationEngine(root, models, device="cpu")
    image_id = engine.catalogue.image_ids("test", "hole")[0]
    for seed in engine.pool.seeds:  # the same map under every seed
        ex = engine.explain(seed, image_id=image_id, methods=("anomaly",))
        np.testing.assert_array_equal(ex.methods["anomaly"].map, planted[image_id])
    engine.close()


def _write_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


def plant_maps(models: Path, folder: Path, method: str, seed: int = 3) -> dict[str, np.ndarray]:
    """Random 64 x 64 maps of every test image, one for all seeds, as ``folder/method/<id>.npy``."""
    from pixel_evidence.data import read_manifest

    rng = np.random.default_rng(seed)
    planted = {s.id: rng.random((64, 64), dtype=np.float32)
               for s in read_manifest(models / "manifest.csv") if s.split == "test"}
    for image_id, array in planted.items():
        _write_npy(folder / method / f"{image_id}.npy", array)
    return planted


def test_misfit_missing_and_bad_files_are_named_one_line_each(tiny_run, models, tmp_path, capsys):
    from pixel_evidence.data import read_manifest

    test_ids = [s.id for s in read_manifest(models / "manifest.csv") if s.split == "test"]
    source = tmp_path / "maps"
    for image_id in test_ids[6:]:
        _write_npy(source / "ext" / f"{image_id}.npy", np.ones((64, 64), np.float32))
    small, colour, eight_bit, cube, nans, junk = test_ids[:6]
    _write_npy(source / "ext" / f"{small}.npy", np.ones((32, 32), np.float32))
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(source / "ext" / f"{colour}.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(source / "ext" / f"{eight_bit}.png")
    (source / "ext" / f"{junk}.npy").write_bytes(b"not a numpy file")
    (source / "ext" / "notes.txt").write_text("made with captum")
    _write_npy(source / "ext" / "no-such-image.npy", np.ones((64, 64), np.float32))
    _write_npy(source / "gradcam" / f"{test_ids[0]}.npy", np.ones((64, 64), np.float32))
    # cube and nans: left without a map at all
    code, out, err = run_cli("import-maps", source, "--models", models, capsys=capsys)

    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and "nothing imported" in lines[-1]
    expected = {f"ext/{small}.npy": "32 x 32 map", f"ext/{colour}.png": "RGB PNG",
                f"ext/{eight_bit}.png": "L PNG", f"ext/{junk}.npy": "unreadable",
                "ext/notes.txt": "not a map file", "ext/no-such-image.npy": "no image 'no-such-image'",
                "gradcam/": "is taken (a computed method",
                f"ext/{cube}.npy": "missing", f"ext/{nans}.npy": "missing"}
    problems = lines[:-1]
    assert len(problems) == len(expected), problems
    for name, words in expected.items():
        assert [line for line in problems if line.startswith(f"{name}: ") and words in line], (name, problems)
    assert not (models / IMPORTED_SUBDIR).exists()  # all or nothing


@pytest.mark.parametrize("name, words", [
    ((np.ones((1, 64, 64))), "shape (1, 64, 64)"),
    ((np.full((64, 64), np.nan)), "NaN or infinite"),
    ((np.array([["a"]])), "not numbers"),
], ids=["3-D", "nan", "strings"])
def test_arrays_that_are_not_maps_are_refused(name, words):
    buf = io.BytesIO()
    np.save(buf, name)
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        read_map("x.npy", buf.getvalue())


def test_sixteen_bit_png_reads_as_value_over_65535():
    values = np.array([[0, 1000], [40000, 65535]], np.uint16)
    buf = io.BytesIO()
    Image.fromarray(values).save(buf, format="PNG")
    np.testing.assert_allclose(read_map("m.png", buf.getvalue()), values / 65535.0, rtol=1e-7)


def test_a_zip_of_the_maps_folder_itself_is_read_below_that_folder(tiny_run, models, tmp_path, capsys):
    """`zip -r maps.zip export/` puts every path under export/: set aside, as no method is named so."""
    from pixel_evidence.engine.explain import ExplanationEngine

    planted = plant_maps(models, tmp_path / "export", "detector")
    archive = tmp_path / "maps.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((tmp_path / "export").rglob("*.npy")):
            zf.write(path, path.relative_to(tmp_path).as_posix())
    assert zipfile.ZipFile(archive).namelist()[0].startswith("export/detector/")
    code, out, err = run_cli("import-maps", archive, "--models", models, capsys=capsys)
    assert code == 0, err
    engine = ExplanationEngine(tiny_run[0], models, device="cpu")
    image_id = engine.catalogue.image_ids("test")[0]
    np.testing.assert_array_equal(engine.imported.map("detector", 7, image_id), planted[image_id])
    engine.close()


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_archive_climbing_out_is_refused_whole(models, tmp_path, capsys, kind):
    archive = tmp_path / f"maps.{kind}"
    payload = io.BytesIO()
    np.save(payload, np.ones((64, 64), np.float32))
    members = {"ext/crack-000.npy": payload.getvalue(), "../escape.npy": payload.getvalue()}
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(archive, "w") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    code, out, err = run_cli("import-maps", archive, "--models", models, capsys=capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "'../escape.npy'" in lines[0] and "nothing is read" in lines[0], lines
    assert not (models / IMPORTED_SUBDIR).exists() and not (tmp_path / "escape.npy").exists()


def test_a_second_import_under_the_same_name_needs_force(models, tmp_path, capsys):
    source = tmp_path / "maps"
    plant_maps(models, source, "ext")
    assert run_cli("import-maps", source, "--models", models, capsys=capsys)[0] == 0
    code, out, err = run_cli("import-maps", source, "--models", models, capsys=capsys)
    assert code == 2 and "ext/: already imported; pass --force" in err
    assert run_cli("import-maps", source, "--models", models, "--force", capsys=capsys)[0] == 0


def test_evaluating_a_split_without_imported_maps_says_so(tiny_run, models, tmp_path, capsys):
    source = tmp_path / "maps"
    plant_maps(models, source, "ext")
    assert run_cli("import-maps", source, "--models", models, capsys=capsys)[0] == 0
    code, out, err = run_cli("evaluate", "--data", tiny_run[0], "--models", models, "--out", tmp_path / "r",
                             "--splits", "train", "--methods", "gradcam", "ext", "--device", "cpu", capsys=capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("error: imported method ext has no map of image ")


def test_the_sweep_ranks_an_imported_method_beside_computed_ones(tiny_run, models, tmp_path, capsys):
    from pixel_evidence import metrics
    from pixel_evidence.engine.explain import ExplanationEngine
    from pixel_evidence.results.sweep_store import read_store
    from pixel_evidence.sweep.command import print_plan
    from pixel_evidence.sweep.plan import plan
    from pixel_evidence.sweep.spec import Category, SweepSpec
    from pixel_evidence.sweep.worker import run_task

    planted = plant_maps(models, tmp_path / "maps", "detector")
    assert run_cli("import-maps", tmp_path / "maps", "--models", models, capsys=capsys)[0] == 0
    spec = SweepSpec(categories=(Category("cat", tiny_run[0], models),), out=tmp_path / "store", splits=("test",),
                     methods=("gradcam", "detector"), chunk=8, device="cpu")
    tasks = plan(spec)
    print_plan(spec, tasks)
    assert "detector       imported: maps read, not computed" in capsys.readouterr().out
    for task in tasks:  # what a Dask worker runs, here in-process
        run_task(task, spec)

    table = read_store(spec.out).category("cat")
    scored = table[table["tko"].notna()]
    engine = ExplanationEngine(tiny_run[0], models, device="cpu")
    for row in scored[scored["method"] == "detector"].itertuples():
        mask = metrics.defect_region(engine.prediction(row.seed, row.image_id).mask)
        assert row.tko == metrics.localisation_scores(planted[row.image_id], mask)["tko"]
    per_image = scored.pivot_table(index=["seed", "image_id"], columns="method", values="tko")
    wins = scored.pivot_table(index=["seed", "image_id"], columns="method", values="win_share")
    np.testing.assert_array_equal(wins["detector"] == 1, per_image["detector"] > per_image["gradcam"])

    # the summary's across-categories table: the imported method's row has a win rate, no cost
    from pixel_evidence.dashboard.app import create_app
    from pixel_evidence.dashboard.summary.categories import COST

    dash = create_app(engine=engine).dashboard
    dash.results.sweep_directory = spec.out
    dash.results.load()
    dash.state.tab = "summary"
    (_, chosen), _ = dash.results.tables["categories"]
    costs = dict(zip(chosen["Method"], chosen[COST]))
    assert costs["detector (imported)"] == "–" and isinstance(costs["Grad-CAM"], float)
    engine.close()

    with pytest.raises(ValueError, match=r"unknown method\(s\) \['detectr'\].*imported in .*: detector"):
        plan(SweepSpec(categories=spec.categories, out=spec.out, methods=("gradcam", "detectr")))


def test_stored_maps_that_no_longer_fit_are_left_out_with_a_warning(tiny_run, models, tmp_path, capsys):
    """Per-seed maps belong to their seed's weights, maps for every seed to the image size,
    all of them to the manifest's ids."""
    from pixel_evidence.engine.explain import ExplanationEngine
    from pixel_evidence.files import file_sha256
    from pixel_evidence.imported_maps import ImportedMaps
    from pixel_evidence.models.checkpoint import scan_seeds

    engine = ExplanationEngine(tiny_run[0], models, device="cpu")
    export_maps(engine, tmp_path / "maps", "mycam", seeds=[7])
    plant_maps(models, tmp_path / "maps", "detector")
    code, out, err = run_cli("import-maps", tmp_path / "maps", "--models", models, capsys=capsys)
    first = engine.catalogue.image_ids("test")[0]
    assert code == 2 and f"mycam/seed_8/{first}.npy: missing (test image)" in err.splitlines()
    export_maps(engine, tmp_path / "maps", "mycam", seeds=[8])
    engine.close()
    assert run_cli("import-maps", tmp_path / "maps", "--models", models, capsys=capsys)[0] == 0

    metas, _ = scan_seeds(models)
    sha = file_sha256(models / "manifest.csv")
    assert ImportedMaps(models, metas, sha).methods == ["detector", "mycam"]
    imported = ImportedMaps(models, {**metas, 8: {**metas[8], "weights_sha256": "0" * 64}}, sha)
    assert imported.methods == ["detector"]
    assert imported.warnings == ["imported method mycam left out: seeds [8] were retrained since their maps were "
                                 "made; import its maps again with `pixel-evidence import-maps --force`"]
    imported = ImportedMaps(models, {s: {**m, "image_size": 128} for s, m in metas.items()}, sha)
    assert imported.methods == ["mycam"] and "detector left out: its maps are [64] px" in imported.warnings[0]
    assert ImportedMaps(models, metas, "0" * 64).methods == []

"""The command line's data commands and a successful ``train``, run in-process through
``pixel_evidence.cli.main``, everything written under tmp_path.

``data generate`` has no size or count options: the smallest set it makes is the built-in
one (720 images of 256 px, about half a minute), so it is generated once per module and
``data split`` and ``data sheet`` read that set.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixel_evidence.cli import main
from pixel_evidence.data import dataset_fingerprint, read_manifest
from pixel_evidence.data.synthetic import DEFECT_CLASSES, TEST_CLASSES
from pixel_evidence.models import MultitaskNet, load_model
from tests.layout_trees import make_mvtec_tree
from tests.significance_checks import assert_ranked_as_pandas, planted_rows

SHIPPED = Path(__file__).resolve().parents[2] / "pretrained_models"
# the built-in set's counts, as the README and pretrained_models/README describe it
COUNTS = {("train", "good"): 360, ("test", "good"): 40, **{("test", c): 80 for c in DEFECT_CLASSES}}
SIZE = 256


def files_on_disk(root: Path) -> dict[str, list[str]]:
    """Every image file below ``root``, grouped by class folder, as paths relative to root."""
    out: dict[str, list[str]] = {}
    for split in ("train", "test"):
        for folder in sorted((root / split).iterdir()):
            out.setdefault(folder.name, []).extend(
                p.relative_to(root).as_posix() for p in sorted(folder.glob("*.png")))
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "hazelnut"
    return out, main(["data", "generate", "--out", str(out)])


def test_data_generate_writes_the_built_in_set_the_shipped_models_were_trained_on(generated, capsys):
    root, code = generated
    assert code == 0
    for (split, cls), n in COUNTS.items():
        images = sorted(p.name for p in (root / split / cls).iterdir())
        assert images == [f"{i:03d}.png" for i in range(n)], (split, cls)
        if cls != "good":
            masks = sorted(p.name for p in (root / "ground_truth" / cls).iterdir())
            assert masks == [f"{i:03d}_mask.png" for i in range(n)], cls
    assert sorted(p.name for p in root.iterdir()) == ["ground_truth", "test", "train"]
    assert not list(root.parent.glob(".*partial*"))  # the staging folder was renamed, none left
    for cls in DEFECT_CLASSES:
        with Image.open(root / "test" / cls / "007.png") as im:
            assert im.mode == "RGB" and im.size == (SIZE, SIZE)
        mask = np.asarray(Image.open(root / "ground_truth" / cls / "007_mask.png"))
        assert mask.shape == (SIZE, SIZE) and set(np.unique(mask)) == {0, 255}
    # the same images and masks, byte for byte, as the data every shipped seed recorded
    shipped = read_manifest(SHIPPED / "manifest.csv")
    recorded = {json.loads((SHIPPED / f"seed_{s}.json").read_text())["dataset_fingerprint"] for s in range(42, 52)}
    assert {dataset_fingerprint(root, shipped)} == recorded

    # a second run refuses to write into the finished set, with a one-line error
    before = (root / "test" / "crack" / "000.png").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["data", "generate", "--out", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(root) in err
    assert (root / "test" / "crack" / "000.png").stat().st_mtime_ns == before


def test_data_split_lists_every_image_once_stratified_per_class(generated, tmp_path, capsys):
    root, _ = generated
    out = tmp_path / "runs" / "manifest.csv"
    capsys.readouterr()
    assert main(["data", "split", "--data", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["id", "path", "class", "split", "has_mask", "mask_path", "mask_threshold"]
    on_disk = files_on_disk(root)
    assert sorted(r["path"] for r in rows) == sorted(p for paths in on_disk.values() for p in paths)
    assert len({r["id"] for r in rows}) == len(rows) == 720
    for r in rows:
        folder, cls, name = r["path"].split("/")
        stem = Path(name).stem  # the id never names a split, only train/ images say where they came from
        assert r["class"] == cls and r["id"] == (f"{cls}-train-{stem}" if folder == "train" else f"{cls}-{stem}")
        expected_mask = f"ground_truth/{cls}/{Path(name).stem}_mask.png" if cls != "good" else ""
        assert r["mask_path"] == expected_mask and r["has_mask"] == str(int(bool(expected_mask)))
    # stratified: every class puts ceil(20%) of its images (good: from train/ and test/ alike) in test
    for cls, paths in on_disk.items():
        splits = [r["split"] for r in rows if r["class"] == cls]
        n_test = math.ceil(0.2 * len(paths))
        assert splits.count("test") == n_test and splits.count("train") == len(paths) - n_test, cls
        assert re.search(rf"{cls}: train +{len(paths) - n_test} +test +{n_test}\b", printed), cls
    # with the default split seed, this is the split the shipped models were trained on (whose
    # manifest predates the mask_threshold column; the built-in masks are 0/255, read alike)
    without_thresholds = "".join(",".join(line.split(",")[:6]) + "\n" for line in out.read_text().splitlines())
    assert without_thresholds == (SHIPPED / "manifest.csv").read_text()
    assert {r["mask_threshold"] for r in rows if r["mask_path"]} == {"0.5"}

    # an existing manifest is replaced only with --force; another seed draws another split
    written = out.read_bytes()
    assert main(["data", "split", "--data", str(root), "--out", str(out), "--split-seed", "1"]) == 2
    assert "--force" in capsys.readouterr().err
    assert out.read_bytes() == written
    assert main(["data", "split", "--data", str(root), "--out", str(out), "--split-seed", "1", "--force"]) == 0
    reseeded = {s.id: s for s in read_manifest(out)}
    assert reseeded.keys() == {r["id"] for r in rows}
    assert any(reseeded[r["id"]].split != r["split"] for r in rows)
    for cls in on_disk:
        assert sum(s.split == "test" for s in reseeded.values() if s.cls == cls) == math.ceil(0.2 * len(on_disk[cls]))


def ring_outside(mask: np.ndarray) -> np.ndarray:
    """Pixels outside the mask with a mask pixel among their 8 neighbours."""
    padded = np.pad(mask, 1)
    h, w = mask.shape
    grown = np.zeros_like(mask)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            grown |= padded[dy:dy + h, dx:dx + w]
    return grown & ~mask


def test_data_sheet_shows_one_tile_per_image_with_mask_outlines(generated, tmp_path):
    root, _ = generated
    out = tmp_path / "sheet" / "sheet.png"
    per_class = 2
    assert main(["data", "sheet", "--data", str(root), "--out", str(out), "--per-class", str(per_class)]) == 0
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        sheet = np.asarray(im)
    # layout: a label column of half a tile, then the tiles at image size, 1/32 of a tile apart
    pad, label = SIZE // 32, SIZE // 2
    rows = ["good"] + [c for c in TEST_CLASSES if c != "good"]
    assert sheet.shape == (len(rows) * (SIZE + pad) + pad, label + per_class * (SIZE + pad) + pad, 3)
    background = np.ones(sheet.shape[:2], bool)
    for r, cls in enumerate(rows):
        for c in range(per_class):
            top, left = pad + r * (SIZE + pad), label + pad + c * (SIZE + pad)
            tile = sheet[top:top + SIZE, left:left + SIZE]
            background[top:top + SIZE, left:left + SIZE] = False
            image = np.asarray(Image.open(root / "test" / cls / f"{c:03d}.png").convert("RGB"))
            ring = np.zeros((SIZE, SIZE), bool)
            if cls != "good":
                mask = np.asarray(Image.open(root / "ground_truth" / cls / f"{c:03d}_mask.png")) > 0
                ring = ring_outside(mask)
                assert ring.sum() > 0
            assert (tile[ring] == (0, 255, 255)).all(), (cls, c)
            assert np.array_equal(tile[~ring], image[~ring]), (cls, c)
    # between and around the tiles, right of the label column: the plain background
    background[:, :label] = False
    assert (sheet[background] == 240).all()
    assert (sheet[:, :label] < 100).any()  # the class labels are written in dark text


@pytest.mark.parametrize("extra,expected", [
    (["--backbone", "resnet18", "--model-module", "examples/tiny_model.py:build"],
     "error: --backbone resnet18 and --model-module both choose the network; pass one of them"),
    (["--mode", "fine-tune", "--freeze-blocks", "3"],
     "error: --freeze-blocks 3 applies to --mode partial only; --mode fine-tune decides what is frozen itself"),
    (["--backbone", "resnet18", "--no-pretrained", "--freeze-blocks", "7"],
     "error: cannot freeze 7 stages: the encoder has 5 (encoder.stem, encoder.layer1, encoder.layer2, "
     "encoder.layer3, encoder.layer4); pass --freeze-blocks 0-5"),
    (["--backbone", "vgg11_bn", "--no-pretrained", "--cam-layer", "encoder.9"],
     "error: Grad-CAM layer 'encoder.9' is not a module of the vgg11_bn network; candidates: "),
    (["--backbone", "resnet18"], "error: resnet18: ImageNet weights resnet18-f37072fd.pth are not in torch's cache"),
])
def test_train_option_mistakes_are_one_line_errors(extra, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty cache, and no download
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda url, *a, **k: (_ for _ in ()).throw(OSError(url)))
    data = make_mvtec_tree(tmp_path / "cat", size=32)
    argv = ["train", "--data", str(data), "--models", str(tmp_path / "models"), "--seeds", "1", "--epochs", "1",
            "--image-size", "32", "--device", "cpu", *extra]
    assert main(argv) == 2
    last = capsys.readouterr().err.rstrip("\n").split("\n")[-1]  # after the progress bar's lines, if any
    assert last.startswith(expected)
    assert not list((tmp_path / "models").glob("seed_*"))


def test_train_one_epoch_writes_a_complete_checkpoint_pair_with_its_recipe(tmp_path, capsys):
    data = make_mvtec_tree(tmp_path / "cat", size=32)
    models = tmp_path / "models"

    def args(epochs: int) -> list[str]:
        return ["train", "--data", str(data), "--models", str(models), "--seeds", "3", "--epochs", str(epochs),
                "--batch-size", "4", "--lr", "0.002", "--image-size", "32", "--backbone", "none", "--device", "cpu"]

    capsys.readouterr()
    assert main(args(1)) == 0
    assert re.fullmatch(r"seed 3: epoch 1  train bacc [\d.]+  test bacc [\d.]+\n", capsys.readouterr().out)
    # the pair, the manifest it was trained on, and no temp file left behind
    assert sorted(p.name for p in models.iterdir()) == ["manifest.csv", "seed_3.json", "seed_3.pt"]
    meta = json.loads((models / "seed_3.json").read_text())
    weights = (models / "seed_3.pt").read_bytes()
    assert meta["weights_file"] == "seed_3.pt" and meta["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    manifest = read_manifest(models / "manifest.csv")
    assert meta["manifest_sha256"] == hashlib.sha256((models / "manifest.csv").read_bytes()).hexdigest()
    assert meta["dataset_fingerprint"] == dataset_fingerprint(data, manifest)
    # the recipe, as given on the command line (and the defaults for the rest)
    assert meta["seed"] == 3 and meta["backbone"] == "none" and meta["image_size"] == 32
    assert meta["classes"] == ["crack", "good", "hole"] and meta["split_seed"] == 0
    assert meta["hyperparameters"] == {
        "backbone": "none", "batch_size": 4, "beta": 1.0, "channels_last": True, "epochs": 1, "freeze_blocks": 0,
        "image_size": 32, "lr": 0.002, "pretrained": False, "split_seed": 0, "val_fraction": 0.15,
        "kind": "multitask", "mode": "partial", "cam_layer": None, "model_module": None}
    assert (meta["kind"], meta["mode"], meta["cam_layer"]) == ("multitask", "partial", "encoder.8")
    assert [row["epoch"] for row in meta["history"]] == [1] and meta["selected_epoch"] == 1
    train_ids = {s.id for s in manifest if s.split == "train"}
    assert meta["validation_ids"] and set(meta["validation_ids"]) < train_ids
    for split in ("train", "test"):
        assert 0 <= meta["final_metrics"][split]["balanced_accuracy"] <= 1
    assert meta["normalization"].keys() == {"mean", "std"}
    # the weights: fp16, loadable without pickle, and what load_model builds the network from
    state = torch.load(models / "seed_3.pt", weights_only=True)
    assert state.keys() == MultitaskNet(3, backbone="none", pretrained=False).state_dict().keys()
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    net, _ = load_model(models, 3, classes=meta["classes"])
    assert all(torch.equal(p, state[k].float()) for k, p in net.state_dict().items() if p.is_floating_point())

    # resumable: the finished seed is skipped, and other settings are refused without --force
    before = (models / "seed_3.pt").stat().st_mtime_ns
    assert main(args(1)) == 0
    assert (models / "seed_3.pt").stat().st_mtime_ns == before
    capsys.readouterr()
    assert main(args(2)) == 2
    assert "--force" in capsys.readouterr().err
    assert (models / "seed_3.pt").read_bytes() == weights


def _tree_state(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize("argv", [
    ["train", "--models", str(SHIPPED), "--seeds", "1", "--epochs", "1"],
    ["train", "--models", str(SHIPPED / "sub"), "--seeds", "1", "--epochs", "1"],
    ["evaluate", "--out", str(SHIPPED / "results"), "--seeds", "42"],
    ["significance", "--results", str(SHIPPED / "results")],
    ["significance", "--store", str(SHIPPED / "results" / "sweep")],
])
def test_commands_refuse_to_write_into_the_shipped_folders_unless_told(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written by mistake into runs/ lands here, not in the checkout
    before = _tree_state(SHIPPED)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().split("\n")[-1]
    assert err.startswith("error: --") and "is a shipped folder of the checkout; pass --write-shipped" in err
    assert _tree_state(SHIPPED) == before and not (tmp_path / "runs").exists()


def test_default_output_folders_are_under_runs(tmp_path, monkeypatch):
    from pixel_evidence.cli import build_parser
    from pixel_evidence.run_folders import RUNS, default_results, is_shipped, train_command

    parser = build_parser()
    assert parser.parse_args(["train"]).models == str(RUNS / "models")
    assert not is_shipped(RUNS / "models") and RUNS == Path("runs")  # relative: the user's working directory
    assert default_results(SHIPPED, write_shipped=False) == RUNS / "results"
    assert default_results(SHIPPED, write_shipped=True) == SHIPPED / "results"
    assert default_results(tmp_path / "mine", write_shipped=False) == tmp_path / "mine" / "results"
    # a hint that retrains the shipped models says the flag they need
    assert train_command(SHIPPED, "--seeds", "42") == f"pixel-evidence train --models {SHIPPED} --seeds 42 --write-shipped"
    assert train_command(tmp_path, "--force") == f"pixel-evidence train --models {tmp_path} --force"
    # the checkout ignores runs/ in git
    gitignore = (SHIPPED.parent / ".gitignore").read_text().split()
    assert "/runs/" in gitignore


def test_a_win_rate_without_seeds_says_why():
    """Issue 29: when every defect image was misclassified the line read 'nan +- nan (0 seeds)'."""
    import pandas as pd

    from pixel_evidence.cli import win_rate_line
    from pixel_evidence.metrics import summarize_over_seeds

    rates = pd.DataFrame({"seed": [1, 2, 1, 2], "split": "test", "class": "overall",
                          "method": ["gradcam", "gradcam", "ig", "ig"], "win_rate": [math.nan, math.nan, 0.25, 0.75],
                          "n_images": [0, 0, 4, 4]})
    rows = {r["method"]: r for r in summarize_over_seeds(rates).to_dict(orient="records")}
    none = win_rate_line(rows["gradcam"], "Grad-CAM", include_misclassified=False)
    assert "nan" not in none and "every seed misclassified every defect image" in none
    assert "--include-misclassified" in none
    assert "no seed has a defect image in this split" in win_rate_line(rows["gradcam"], "Grad-CAM", include_misclassified=True)
    counted = win_rate_line(rows["ig"], "IG", include_misclassified=False)
    assert "0.500 +- 0.354" in counted and "(2 seeds)" in counted


def test_significance_rewrites_a_results_folders_tables_from_its_rows(tmp_path, capsys):
    import pandas as pd

    from pixel_evidence.significance_tables import (SIGNIFICANCE_TABLES, read_significance, results_significance_dir,
                                                    significance_tables)

    rows = planted_rows()
    rows.to_csv(tmp_path / "tko_table.csv", index=False)
    assert main(["significance", "--results", str(tmp_path), "--alpha", "0.01"]) == 0
    folder = results_significance_dir(tmp_path)
    assert capsys.readouterr().out.split() == [word for t in SIGNIFICANCE_TABLES.values()
                                               for word in ("wrote", str(folder / t.file))]
    written = read_significance(folder)
    assert_ranked_as_pandas(rows, folder, [])
    expected = significance_tables(rows, alpha=0.01).tables
    for name in SIGNIFICANCE_TABLES:
        pd.testing.assert_frame_equal(written[name], expected[name], check_dtype=False)
    assert set(written["friedman"]["alpha"]) == {0.01}
    # neither folder named, or a folder without rows: one line each
    assert main(["significance"]) == 2
    assert main(["significance", "--results", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: give --results DIR") and "no tko_table.csv" in err[1]


def test_significance_help_says_it_recomputes_no_map(capsys):
    with pytest.raises(SystemExit):
        main(["significance", "--help"])
    assert "without recomputing any map" in " ".join(capsys.readouterr().out.split())

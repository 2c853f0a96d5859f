"""The published anomaly-inspection data sets (REFERENCE §5): each recognised, read with its
masks (LOCO's united), its naming quirks, and a missing mask named beside what is there."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixel_evidence.cli import main as cli_main
from pixel_evidence.data import DataError, layout_of, load_mask, prepare_manifest, read_manifest, scan_data
from pixel_evidence.data.images import mask_files
from tests.layout_trees import (make_bmad_tree, make_btech_tree, make_kolektor_tree, make_loco_tree, make_mvtec2_tree,
                                make_mvtec_tree, make_realiad_tree)

# layout -> (builder, classes, image count, one defect image's id and its expected mask path)
SETS = {
    "mvtec2": (make_mvtec2_tree, ["bad", "good"], 20, "bad-001_overexposed",
               "test_public/ground_truth/bad/001_overexposed_mask.png"),
    "loco": (make_loco_tree, ["good", "logical_anomalies", "structural_anomalies"], 25,
             "logical_anomalies-002", "ground_truth/logical_anomalies/002"),
    "autovi": (lambda root: make_loco_tree(root, mask_digits=4, validation=False),
               ["good", "logical_anomalies", "structural_anomalies"], 20, "structural_anomalies-001",
               "ground_truth/structural_anomalies/001"),
    "bmad": (make_bmad_tree, ["Ungood", "good"], 20, "Ungood-valid-00001_62", "valid/Ungood/label/00001_62.png"),
    "btech": (make_btech_tree, ["good", "ko"], 15, "ko-0003", "ground_truth/ko/0003.png"),
    "kolektor": (make_kolektor_tree, ["defect", "good"], 12, "defect-kos02-Part3", "kos02/Part3_label.bmp"),
    "realiad": (make_realiad_tree, ["AK", "HS", "good"], 12, "AK-audiojack_0001_NG_C2_20231021130001",
                "NG/AK/S0004/audiojack_0001_NG_C2_20231021130001_mask.png"),
}


@pytest.mark.parametrize("name", sorted(SETS))
def test_each_set_is_recognised_and_read_with_its_masks(tmp_path, name):
    build, classes, count, image_id, mask_path = SETS[name]
    root = build(tmp_path / "set")
    assert layout_of(root).name == name
    samples, found = scan_data(root)
    assert found == classes and len(samples) == count
    assert len({s.id for s in samples}) == count
    by_id = {s.id: s for s in samples}
    assert by_id[image_id].mask_path == mask_path
    assert all(s.has_mask == (s.cls != "good") for s in samples)
    for s in samples:  # every mask read is the planted 0/255 one (a folder's files united)
        if s.has_mask:
            path = root / s.mask_path
            planted = np.logical_or.reduce([np.asarray(Image.open(f)) > 0
                                            for f in (sorted(path.iterdir()) if path.is_dir() else [path])])
            assert planted.any() and np.array_equal(load_mask(root, s, planted.shape[0]), planted), s.id
    # the same layout, named
    assert scan_data(root, name)[0] == samples


def test_loco_unites_the_masks_of_an_image(tmp_path):
    root = make_loco_tree(tmp_path / "loco")
    sample = next(s for s in scan_data(root)[0] if s.id == "logical_anomalies-000")
    files = mask_files(root, sample.mask_path)
    assert [f.name for f in files] == ["000.png", "001.png"]
    union = np.logical_or(*[np.asarray(Image.open(f)) > 0 for f in files])
    assert np.array_equal(load_mask(root, sample, 32), union) and union.sum() > max(
        (np.asarray(Image.open(f)) > 0).sum() for f in files)


def test_mvtec2_leaves_the_unlabelled_private_tests_out(tmp_path):
    samples, _ = scan_data(make_mvtec2_tree(tmp_path / "c"))
    assert not any(s.path.startswith("test_private") for s in samples)
    assert {s.path.split("/")[0] for s in samples} == {"train", "validation", "test_public"}


def test_kolektor_all_zero_label_is_defect_free(tmp_path):
    root = make_kolektor_tree(tmp_path / "k")
    by_id = {s.id: s for s in scan_data(root)[0]}
    assert by_id["good-kos01-Part0"].mask_path is None and by_id["good-kos01-Part0"].cls == "good"
    assert not any(s.path.endswith("_label.bmp") for s in by_id.values())  # labels are not images


def test_realiad_reads_its_list_once_per_image_and_names_a_missing_mask(tmp_path):
    root = make_realiad_tree(tmp_path)
    listing = tmp_path / "realiad_jsons" / "audiojack.json"
    entries = json.loads(listing.read_text())
    ng = next(e for e in entries["test"] if e["anomaly_class"] == "HS")
    ng["mask_path"] = None
    listing.write_text(json.dumps(entries))
    with pytest.raises(DataError, match=rf"audiojack\.json test\[\d+\]: defect image {ng['image_path']} \(HS\) "
                                        "has no mask_path"):
        scan_data(root)


# Lenient mask lookup, and the files beside a missing mask
LENIENT = [("mvtec", lambda r: make_mvtec_tree(r), "ground_truth/crack/001_mask.png", "ground_truth/crack/001.BMP"),
           ("btech", make_btech_tree, "ground_truth/ko/0002.png", "ground_truth/ko/0002_mask.TIF"),
           ("bmad", make_bmad_tree, "test/Ungood/label/00002_62.png", "test/Ungood/label/00002_62.jpg")]


@pytest.mark.parametrize("name, build, mask, renamed", LENIENT)
def test_masks_are_looked_up_leniently(tmp_path, name, build, mask, renamed):
    root = build(tmp_path / name)
    image = Image.open(root / mask)
    (root / mask).unlink()
    image.save(root / renamed, format={".bmp": "BMP", ".tif": "TIFF", ".jpg": "PNG"}[Path(renamed).suffix.lower()])
    assert renamed in {s.mask_path for s in scan_data(root)[0]}


@pytest.mark.parametrize("name", ["mvtec2", "btech", "bmad", "loco"])
def test_missing_mask_names_the_files_beside(tmp_path, name):
    build, _, _, image_id, mask_path = SETS[name]
    root = build(tmp_path / "set")
    target = root / mask_path
    moved = target.with_name("stray" + target.suffix)
    shutil.move(target, moved)
    with pytest.raises(DataError, match=rf"defect image without its masks?, expected .*{moved.parent.name}.* holds .*"
                                        rf"{moved.name}"):
        scan_data(root)
    reports = []
    samples, _ = scan_data(root, skip_bad=True, report=reports.append)
    assert len(reports) == 1 and image_id not in {s.id for s in samples}


def test_unknown_folder_names_the_nearest_layout(tmp_path, capsys):
    root = make_mvtec2_tree(tmp_path / "c")
    shutil.rmtree(root / "train")
    assert cli_main(["data", "split", "--data", str(root), "--out", str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "(mvtec2, loco, autovi, bmad, btech, mvtec, visa, kolektor, realiad, masks, mask-folder, folders;" in err[0]
    assert "nearest: mvtec2 (MVTec AD 2:" in err[0] and "would need train/good beside validation/good" in err[0]


def test_realiad_without_its_lists_says_where_they_belong(tmp_path):
    root = make_realiad_tree(tmp_path)
    shutil.rmtree(tmp_path / "realiad_jsons")
    with pytest.raises(DataError, match=r"nearest: realiad .* would need \.\./\.\./realiad_jsons beside OK, NG"):
        scan_data(root)
    with pytest.raises(DataError, match=r"is not in the realiad layout"):
        scan_data(root, "realiad")


def test_a_set_through_the_manifest(tmp_path):
    """The manifest of a LOCO category lists mask folders, and the fingerprint covers their files."""
    from pixel_evidence.data import dataset_fingerprint

    root = make_loco_tree(tmp_path / "loco")
    samples = prepare_manifest(root, tmp_path / "manifest.csv")
    assert read_manifest(tmp_path / "manifest.csv") == samples
    before = dataset_fingerprint(root, samples)
    extra = root / "ground_truth" / "logical_anomalies" / "000" / "001.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(extra)
    assert dataset_fingerprint(root, samples) != before


def test_a_missing_mask_names_the_nearest_files_among_many(tmp_path):
    """Beside a folder of many masks the message names the few most like the one expected."""
    from pixel_evidence.data import Sample, load_mask

    root = make_btech_tree(tmp_path / "b", n=12)
    (root / "ground_truth" / "ko" / "0007.png").rename(root / "ground_truth" / "ko" / "0007 (copy).png")
    with pytest.raises(DataError, match=r"ko/0007\.bmp: defect image without its mask, .* holds 0007 \(copy\)\.png, "
                                        r".* and 7 more"):
        scan_data(root)
    # the same once split (the file went after the manifest was written), and for VisA's fixed names
    sample = Sample("ko-0007", "test/ko/0007.bmp", "ko", "ground_truth/ko/0007.png")
    with pytest.raises(DataError, match=r"0007\.png is missing or empty; .* holds 0007 \(copy\)\.png"):
        load_mask(root, sample, 32)

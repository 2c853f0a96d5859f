"""The data layouts besides MVTec's: recognition, reading into the same Sample records, the
split they carry, binarised masks, and the one-line errors (and --skip-bad) on bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pixel_evidence.cli import main as cli_main
from pixel_evidence.data import DataError, layout_of, load_mask, prepare_manifest, read_manifest, scan_data
from tests.layout_trees import make_folders_tree, make_masks_tree, make_mvtec_tree, make_visa_tree


def test_each_layout_is_recognised(tmp_path):
    trees = {"mvtec": make_mvtec_tree(tmp_path / "mvtec"), "masks": make_masks_tree(tmp_path / "masks"),
             "folders": make_folders_tree(tmp_path / "folders"), "visa": make_visa_tree(tmp_path / "visa")}
    for name, root in trees.items():
        assert layout_of(root).name == name
        samples, _ = scan_data(root)
        assert len({s.id for s in samples}) == len(samples)
        assert all(not s.path.startswith("/") and (root / s.path).is_file() for s in samples)


def test_not_a_recognisable_layout(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"not a data layout this program reads \(mvtec2, .*folders; .*--layout"):
        scan_data(tmp_path)
    with pytest.raises(DataError, match=r"is not in the masks layout"):
        scan_data(make_folders_tree(tmp_path / "f"), "masks")
    with pytest.raises(DataError, match=r"whole VisA download; point --data at one object"):
        scan_data(make_visa_tree(tmp_path / "visa").parent)


def test_masks_layout_reads_both_mask_names_and_binarises_0_1_masks(tmp_path):
    for suffix in ("", "_mask"):
        root = make_masks_tree(tmp_path / f"m{suffix}", mask_suffix=suffix)
        samples, classes = scan_data(root)
        assert classes == ["crack", "good", "hole"]
        crack = next(s for s in samples if s.id == "crack-001")
        assert crack.path == "images/crack/001.png" and crack.mask_path == f"masks/crack/001{suffix}.png"
        assert all(s.mask_path is None for s in samples if s.cls == "good")
        # the masks hold 0 and 1: a 127 threshold would find no defect at all
        assert load_mask(root, crack, 32).sum() == 8 * 8


def test_masks_layout_two_masks_of_one_image(tmp_path):
    root = make_masks_tree(tmp_path / "m")
    Image.new("L", (32, 32)).save(root / "masks" / "hole" / "002_mask.png")
    with pytest.raises(DataError, match=r"hole/002\.png: two masks"):
        scan_data(root)


def test_split_csv_is_the_split(tmp_path):
    classes = {"good": 2, "crack": 2}
    split = {f"images/{c}/{i:03d}.png": ("test" if i == 0 else "train") for c, n in classes.items() for i in range(n)}
    root = make_masks_tree(tmp_path / "m", classes=classes, split=split)
    samples = prepare_manifest(root, tmp_path / "manifest.csv", test_fraction=0.5)
    assert {s.path: s.split for s in samples} == split
    assert read_manifest(tmp_path / "manifest.csv") == samples


@pytest.mark.parametrize("rows, error", [
    ("path,split\nimages/crack/000.png,val\n", r"split\.csv line 2: split must be train or test, found 'val'"),
    ("path,split\nimages/crack/009.png,train\n", r"line 2: 'images/crack/009\.png' is not an image under"),
    ("file,split\n", r"first line must be the columns path,split"),
    ("path,split\nimages/crack/000.png,train\n", r"images/crack/001\.png: not listed in .*split\.csv"),
])
def test_bad_split_csv(tmp_path, rows, error):
    root = make_masks_tree(tmp_path / "m", classes={"crack": 2})
    (root / "split.csv").write_text(rows)
    with pytest.raises(DataError, match=error):
        scan_data(root)


def test_visa_classes_ids_masks_and_own_split_not_used(tmp_path):
    root = make_visa_tree(tmp_path / "visa")
    samples, classes = scan_data(root)
    assert classes == ["anomaly", "good"]
    by_id = {s.id: s for s in samples}
    assert by_id["anomaly-001"].path == "Data/Images/Anomaly/001.JPG"
    assert by_id["anomaly-001"].mask_path == "Data/Masks/Anomaly/001.png"
    assert by_id["good-0000"].mask_path is None
    # VisA masks hold label numbers (1, 2), read as defect
    for image_id in ("anomaly-000", "anomaly-001"):
        assert load_mask(root, by_id[image_id], 32).sum() == 8 * 8
    # 1cls puts every anomaly in test: the stratified split gives training some
    split = prepare_manifest(root, tmp_path / "manifest.csv")
    assert {s.split for s in split if s.cls == "anomaly"} == {"train", "test"}


def test_visa_without_its_csv_reads_the_folders(tmp_path):
    with_csv = scan_data(make_visa_tree(tmp_path / "a"))[0]
    without = scan_data(make_visa_tree(tmp_path / "b", with_csv=False))[0]
    assert with_csv == without


def test_visa_csv_anomaly_without_mask(tmp_path):
    root = make_visa_tree(tmp_path / "visa")
    listing = root.parent / "split_csv" / "1cls.csv"
    listing.write_text(listing.read_text().replace(",candle/Data/Masks/Anomaly/002.png", ","))
    with pytest.raises(DataError, match=r"1cls\.csv line \d+: anomaly image candle/Data/Images/Anomaly/002\.JPG "
                                        r"has no mask"):
        scan_data(root)


# One bad-input case per layout and problem: (tree builder, the file to break, the message).
def _masks(tmp_path):
    return make_masks_tree(tmp_path / "m")


def _visa(tmp_path):
    return make_visa_tree(tmp_path / "visa")


def _visa_folders(tmp_path):
    return make_visa_tree(tmp_path / "visa", with_csv=False)


def _folders(tmp_path):
    return make_folders_tree(tmp_path / "f")


MISSING_MASK = [(_masks, "masks/hole/002.png", r"hole/002\.png: defect image without its mask"),
                (_visa, "Data/Masks/Anomaly/002.png", r"Anomaly/002\.JPG: defect image without its mask"),
                (_visa_folders, "Data/Masks/Anomaly/002.png", r"Anomaly/002\.JPG: defect image without its mask")]
ONE_IMAGE = [(_masks, "images/crack/001.png"), (_visa, "Data/Images/Anomaly/001.JPG"),
             (_visa_folders, "Data/Images/Normal/0001.JPG"), (_folders, "dog/001.png")]
EMPTY_FOLDER = [(_masks, "images/scratch"), (_folders, "horse")]


@pytest.mark.parametrize("build, mask, error", MISSING_MASK)
def test_missing_mask(tmp_path, build, mask, error):
    root = build(tmp_path)
    (root / mask).unlink()
    with pytest.raises(DataError, match=error):
        scan_data(root)
    reports = []
    samples, _ = scan_data(root, skip_bad=True, report=reports.append)
    assert len(reports) == 1 and reports[0].startswith("skipped: ") and samples


@pytest.mark.parametrize("build, mask, _", MISSING_MASK)
def test_mask_of_wrong_size(tmp_path, build, mask, _):
    root = build(tmp_path)
    Image.new("L", (16, 16)).save(root / mask)
    with pytest.raises(DataError, match=r"mask is 16x16 but its image .* is 32x32; masks must match their image"):
        scan_data(root)


@pytest.mark.parametrize("build, image", ONE_IMAGE)
def test_unreadable_image(tmp_path, build, image):
    root = build(tmp_path)
    (root / image).write_bytes(b"not an image")
    with pytest.raises(DataError, match=rf"{image}: unreadable or truncated image"):
        scan_data(root)
    reports = []
    samples, _ = scan_data(root, skip_bad=True, report=reports.append)
    assert len(reports) == 1 and image in reports[0] and image not in {s.path for s in samples}


@pytest.mark.parametrize("build, folder", [*EMPTY_FOLDER, (_visa_folders, "Data/Images/Normal")])
def test_empty_class_folder(tmp_path, build, folder):
    root = build(tmp_path)
    (root / folder).mkdir(exist_ok=True)
    for f in (root / folder).iterdir():
        f.unlink()
    with pytest.raises(DataError, match=rf"{folder} holds no images; add its images or remove the empty folder"):
        scan_data(root)
    reports = []
    scan_data(root, skip_bad=True, report=reports.append)
    assert len(reports) == 1


def test_cli_split_takes_a_layout_and_names_bad_files(tmp_path, capsys):
    root = make_folders_tree(tmp_path / "f")
    out = tmp_path / "manifest.csv"
    assert cli_main(["data", "split", "--data", str(root), "--layout", "folders", "--out", str(out)]) == 0
    assert {s.cls for s in read_manifest(out)} == {"cat", "dog", "ship"}
    assert all(not s.has_mask for s in read_manifest(out))
    assert cli_main(["data", "split", "--data", str(root), "--layout", "visa", "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not in the visa layout" in err[0]
    (root / "dog" / "002.png").write_bytes(b"")
    assert cli_main(["data", "split", "--data", str(root), "--out", str(tmp_path / "y.csv")]) == 2
    assert "dog/002.png: unreadable" in capsys.readouterr().err
    assert cli_main(["data", "split", "--data", str(root), "--skip-bad", "--out", str(tmp_path / "y.csv")]) == 0
    assert "skipped: " in capsys.readouterr().err


def test_mvtec_masks_are_read_as_before(tmp_path):
    """The > 0 rule reads MVTec's 0/255 masks exactly as the earlier > 127 did."""
    root = make_mvtec_tree(tmp_path / "c")
    samples, _ = scan_data(root)
    for s in samples:
        if s.has_mask:
            raw = np.asarray(Image.open(root / s.mask_path))
            assert np.array_equal(load_mask(root, s, 32), raw > 127)

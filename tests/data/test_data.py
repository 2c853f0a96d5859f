from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from pixel_evidence.data import (DataError, dataset_fingerprint, load_image, load_mask, manifest_text, prepare_manifest,
                                 read_manifest, scan_category, stratified_split, to_normalized_tensor, write_manifest)
from tests.layout_trees import make_mvtec_tree


def test_scan_lists_classes_ids_and_masks(mvtec_tree):
    samples, classes = scan_category(mvtec_tree)
    assert classes == ["crack", "good", "hole"]
    assert len(samples) == 6 + 2 + 5 + 5
    by_id = {s.id: s for s in samples}
    assert by_id["crack-003"].mask_path == "ground_truth/crack/003_mask.png"
    assert by_id["good-train-000"].mask_path is None and by_id["good-001"].mask_path is None
    assert len(by_id) == len(samples)  # ids are unique


def test_not_a_category_root(tmp_path):
    with pytest.raises(DataError, match=r"not an MVTec AD category folder.*train/good"):
        scan_category(tmp_path)


def test_missing_mask_names_the_image(mvtec_tree):
    (mvtec_tree / "ground_truth" / "hole" / "002_mask.png").unlink()
    with pytest.raises(DataError, match=r"hole/002\.png: defect image without its mask"):
        scan_category(mvtec_tree)


def test_mask_size_mismatch(mvtec_tree):
    Image.new("L", (16, 16)).save(mvtec_tree / "ground_truth" / "crack" / "001_mask.png")
    with pytest.raises(DataError, match=r"001_mask\.png: mask is 16x16 but its image 001\.png is 32x32"):
        scan_category(mvtec_tree)


def test_truncated_image(mvtec_tree):
    path = mvtec_tree / "test" / "crack" / "004.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"crack/004\.png: unreadable or truncated"):
        scan_category(mvtec_tree)


def test_empty_class_folder(mvtec_tree):
    (mvtec_tree / "test" / "scratch").mkdir()
    with pytest.raises(DataError, match=r"test/scratch holds no images"):
        scan_category(mvtec_tree)


def test_skip_bad_reports_each_file(mvtec_tree):
    (mvtec_tree / "ground_truth" / "hole" / "002_mask.png").unlink()
    (mvtec_tree / "test" / "crack" / "000.png").write_bytes(b"not a png")
    reports = []
    samples, _ = scan_category(mvtec_tree, skip_bad=True, report=reports.append)
    assert len(samples) == 18 - 2
    assert len(reports) == 2 and any("hole/002.png" in r for r in reports) and any("crack/000.png" in r for r in reports)


def test_split_is_stratified_seeded_and_order_free(mvtec_tree):
    samples, _ = scan_category(mvtec_tree)
    a = stratified_split(samples, split_seed=3)
    b = stratified_split(list(reversed(samples)), split_seed=3)
    assert manifest_text(a) == manifest_text(b)
    c = stratified_split(samples, split_seed=4)
    assert manifest_text(a) != manifest_text(c)
    for cls in ("crack", "hole", "good"):
        group = [s for s in a if s.cls == cls]
        n_test = sum(s.split == "test" for s in group)
        assert n_test >= 0.2 * len(group) and n_test < len(group)


def test_manifest_round_trip_and_prepare(mvtec_tree, tmp_path):
    path = tmp_path / "m" / "manifest.csv"
    first = prepare_manifest(mvtec_tree, path, split_seed=1)
    text = path.read_text()
    assert text.splitlines()[0] == "id,path,class,split,has_mask,mask_path,mask_threshold"
    assert read_manifest(path) == first
    # An existing manifest is read, never silently re-split.
    again = prepare_manifest(mvtec_tree, path, split_seed=99)
    assert again == first and path.read_text() == text


def test_manifest_write_is_atomic(mvtec_tree, tmp_path, monkeypatch):
    path = tmp_path / "out" / "manifest.csv"
    samples = stratified_split(scan_category(mvtec_tree)[0])
    write_manifest(path, samples)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_manifest(path, samples[:3])
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["manifest.csv"]


def test_fingerprint_changes_with_content(mvtec_tree):
    samples, _ = scan_category(mvtec_tree)
    before = dataset_fingerprint(mvtec_tree, samples)
    assert dataset_fingerprint(mvtec_tree, samples) == before
    mask = mvtec_tree / "ground_truth" / "crack" / "000_mask.png"
    Image.new("L", (32, 32), 255).save(mask)
    assert dataset_fingerprint(mvtec_tree, samples) != before


def test_masks_resize_nearest_and_binary(tmp_path):
    root = make_mvtec_tree(tmp_path / "c", n_test={"crack": 1}, size=40)
    samples, _ = scan_category(root)
    s = next(s for s in samples if s.cls == "crack")
    m = load_mask(root, s, 20)
    assert m.dtype == bool and m.shape == (20, 20)
    src = np.asarray(Image.open(root / s.mask_path)) > 127
    # nearest-neighbour halving samples the centre pixel (2i + 1) of each 2x2 block
    assert np.array_equal(m, src[1::2, 1::2]) and m.any()
    good = next(s for s in samples if s.cls == "good")
    assert not load_mask(root, good, 20).any()


def test_eval_transform_is_deterministic_and_normalized(mvtec_tree):
    s = scan_category(mvtec_tree)[0][0]
    a, b = load_image(mvtec_tree, s, 32), load_image(mvtec_tree, s, 32)
    assert np.array_equal(a, b)
    assert np.array_equal(a, np.asarray(Image.open(mvtec_tree / s.path).convert("RGB")))  # same size: untouched
    x = to_normalized_tensor(a, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert x.shape == (1, 3, 32, 32)
    assert np.allclose(x[0, 0].numpy(), (a[..., 0] / 255 - 0.5) / 0.25, atol=1e-6)


# ---------------------------------------------------------------- data changed after the split

def test_a_mask_of_another_size_is_refused_when_read(mvtec_tree):
    sample = next(s for s in scan_category(mvtec_tree)[0] if s.id == "crack-001")
    Image.new("L", (16, 16), 255).save(mvtec_tree / sample.mask_path)
    with pytest.raises(DataError, match=r"001_mask\.png: mask is 16x16 but its image 001\.png is 32x32"):
        load_mask(mvtec_tree, sample, 8)


def test_a_missing_mask_or_image_is_called_missing(mvtec_tree):
    samples = {s.id: s for s in scan_category(mvtec_tree)[0]}
    (mvtec_tree / samples["hole-002"].mask_path).unlink()
    with pytest.raises(DataError, match=r"hole/002\.png: defect image without its mask, .*002_mask\.png is missing") as err:
        load_mask(mvtec_tree, samples["hole-002"], 8)
    assert "unreadable" not in str(err.value)
    (mvtec_tree / samples["crack-000"].path).unlink()
    with pytest.raises(DataError, match=r"crack/000\.png: image missing"):
        load_image(mvtec_tree, samples["crack-000"], 8)


def test_skip_bad_skips_an_empty_class_folder(mvtec_tree):
    (mvtec_tree / "test" / "scratch").mkdir()
    reports = []
    samples, classes = scan_category(mvtec_tree, skip_bad=True, report=reports.append)
    assert classes == ["crack", "good", "hole"] and len(samples) == 18
    assert len(reports) == 1 and "test/scratch holds no images" in reports[0]


def test_an_existing_manifest_is_checked_against_the_data(mvtec_tree, tmp_path):
    path = tmp_path / "manifest.csv"
    prepare_manifest(mvtec_tree, path)
    Image.new("L", (16, 16)).save(mvtec_tree / "ground_truth" / "crack" / "001_mask.png")
    with pytest.raises(DataError, match=r"001_mask\.png: mask is 16x16"):
        prepare_manifest(mvtec_tree, path)


def test_an_existing_manifest_names_a_removed_image_and_reports_new_ones(mvtec_tree, tmp_path):
    path = tmp_path / "manifest.csv"
    listed = prepare_manifest(mvtec_tree, path)
    (mvtec_tree / "test" / "good" / "001.png").unlink()
    with pytest.raises(DataError, match=r"test/good/001\.png: listed in .*manifest\.csv but missing or skipped"):
        prepare_manifest(mvtec_tree, path)
    Image.new("RGB", (32, 32)).save(mvtec_tree / "test" / "good" / "001.png")
    Image.new("RGB", (32, 32)).save(mvtec_tree / "test" / "good" / "new.png")
    reports = []
    assert prepare_manifest(mvtec_tree, path, report=reports.append) == listed
    assert len(reports) == 1 and "1 image(s)" in reports[0] and "test/good/new.png" in reports[0]

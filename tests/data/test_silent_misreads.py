"""Inputs that used to be read wrongly without a word (issue 29): 16-bit and float images,
grey (JPEG) masks, and the tools' good/ bad/ masks/ folder format."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixel_evidence.cli import main as cli_main
from pixel_evidence.data import (DataError, Sample, layout_of, load_image, load_mask, prepare_manifest, read_manifest,
                                 scan_data)
from tests.layout_trees import make_folders_tree, make_mask_folder_tree, make_mvtec_tree


def write_png16(path: Path, values: np.ndarray) -> None:
    """A 16-bit PNG written byte by byte (Pillow cannot write 16-bit RGB): greyscale for
    (H, W), RGB for (H, W, 3) uint16 ``values``."""
    h, w = values.shape[:2]
    colour = 2 if values.ndim == 3 else 0
    raw = b"".join(b"\0" + values[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture
def wide(tmp_path):
    """A 16-bit greyscale gradient and an RGB one (channels differ), mid-grey as in the
    issue's example (the 8-bit version reads 127-160, the 16-bit one read 255 everywhere)."""
    grey = np.linspace(127 * 257, 160 * 257, 32 * 32).reshape(32, 32).astype(np.uint16)
    rgb = np.stack([grey, 65535 - grey, grey // 2], axis=-1)
    return tmp_path, grey, rgb


def _image(root: Path, name: str, size: int = 32) -> np.ndarray:
    return load_image(root, Sample("x", name, "good", None), size)


def test_16_bit_greyscale_png_reads_as_its_8_bit_version(wide):
    root, grey, _ = wide
    write_png16(root / "g16.png", grey)
    # the 8-bit version of the same image: each value divided by 65535 / 255 = 257, rounded
    eight = np.rint(grey / 257).astype(np.uint8)
    Image.fromarray(eight).save(root / "g8.png")
    assert Image.open(root / "g16.png").mode == "I;16"
    read16, read8 = _image(root, "g16.png"), _image(root, "g8.png")
    assert read8.min() == 127 and read8.max() == 160
    np.testing.assert_array_equal(read16, read8)


def test_16_bit_rgb_png_reads_as_its_8_bit_version(wide):
    root, _, rgb = wide
    write_png16(root / "rgb16.png", rgb)
    Image.fromarray(np.rint(rgb / 257).astype(np.uint8)).save(root / "rgb8.png")
    # Pillow keeps the high byte (v // 256), this the rounded v / 257: they differ by at most 1
    diff = np.abs(_image(root, "rgb16.png").astype(int) - _image(root, "rgb8.png").astype(int))
    assert diff.max() <= 1


def test_float_tiff_is_scaled_and_an_unknown_range_refused(wide):
    root, grey, _ = wide
    Image.fromarray((grey / 65535).astype(np.float32)).save(root / "f.tif")
    Image.fromarray(np.rint(grey / 257).astype(np.uint8)).save(root / "g8.png")
    assert Image.open(root / "f.tif").mode == "F"
    assert np.abs(_image(root, "f.tif").astype(int) - _image(root, "g8.png").astype(int)).max() <= 1
    Image.fromarray((grey / 257).astype(np.float32)).save(root / "f255.tif")  # 0..255 floats: no known range
    with pytest.raises(DataError, match=r"f255\.tif: floating-point image with values outside 0\.\.1"):
        _image(root, "f255.tif")
    Image.fromarray(grey.astype(np.int32)).save(root / "i32.tif")
    with pytest.raises(DataError, match=r"i32\.tif: 32-bit integer image"):
        _image(root, "i32.tif")


def test_16_bit_images_in_a_data_folder(tmp_path, wide):
    """Through the reader too: a folder of 16-bit PNGs is scanned, and reads as mid-grey."""
    _, grey, _ = wide
    root = make_folders_tree(tmp_path / "f", classes={"cat": 2, "dog": 2})
    for path in (root / "cat").iterdir():
        write_png16(path, grey)
    samples, _ = scan_data(root)
    cat = next(s for s in samples if s.cls == "cat")
    assert 127 <= load_image(root, cat, 32).mean() <= 160


# A 16x24 square not aligned to JPEG's 8x8 blocks: its edges ring into grey values
SQUARE = (slice(5, 21), slice(13, 37))


def _jpeg_grey_mask(path: Path) -> int:
    """Write a 0/255 square mask through JPEG (grey values 1-254 at its edges) as ``path``;
    return the square's pixel count."""
    mask = np.zeros((64, 64), np.uint8)
    mask[SQUARE] = 255
    jpeg = path.with_suffix(".jpg")
    Image.fromarray(mask).save(jpeg, quality=75)
    values = np.asarray(Image.open(jpeg))
    assert len(np.unique(values)) > 2 and (values > 0).sum() > mask.astype(bool).sum()  # what > 0 read
    if path.suffix != ".jpg":
        Image.fromarray(values).save(path)
        jpeg.unlink()
    return int(mask.astype(bool).sum())


@pytest.fixture
def grey_masks(tmp_path):
    """An MVTec tree at 64 px whose crack-000 mask is grey (JPEG-decoded, saved as PNG)."""
    root = make_mvtec_tree(tmp_path / "c", size=64)
    planted = _jpeg_grey_mask(root / "ground_truth" / "crack" / "000_mask.png")
    return root, planted


def test_grey_mask_is_binarised_at_half_its_range(grey_masks):
    root, planted = grey_masks
    crack = next(s for s in scan_data(root)[0] if s.id == "crack-000")
    assert load_mask(root, crack, 64).sum() == planted  # not the larger > 0 count


def test_grey_masks_are_named_in_a_warning_and_the_rule_kept_in_the_manifest(grey_masks, tmp_path):
    root, planted = grey_masks
    reports = []
    samples = prepare_manifest(root, tmp_path / "manifest.csv", report=reports.append)
    assert len(reports) == 1 and reports[0].startswith("warning: 1 mask(s)")
    assert "ground_truth/crack/000_mask.png" in reports[0] and "--mask-threshold" in reports[0]
    listed = read_manifest(tmp_path / "manifest.csv")
    assert listed == samples and all(s.mask_threshold == 0.5 for s in listed if s.has_mask)
    assert ",ground_truth/crack/000_mask.png,0.5" in (tmp_path / "manifest.csv").read_text()
    # another threshold than the manifest's is refused, not silently applied
    with pytest.raises(DataError, match=r"binarises the masks at 0\.5, not --mask-threshold 0"):
        prepare_manifest(root, tmp_path / "manifest.csv", mask_threshold=0)


def test_mask_threshold_option(grey_masks, tmp_path, capsys):
    root, planted = grey_masks
    out = tmp_path / "zero.csv"
    assert cli_main(["data", "split", "--data", str(root), "--mask-threshold", "0", "--out", str(out)]) == 0
    assert "000_mask.png" in capsys.readouterr().err
    crack = next(s for s in read_manifest(out) if s.id == "crack-000")
    raw = np.asarray(Image.open(root / crack.mask_path))
    assert crack.mask_threshold == 0 and load_mask(root, crack, 64).sum() == (raw > 0).sum() > planted
    assert cli_main(["data", "split", "--data", str(root), "--mask-threshold", "1", "--out",
                     str(tmp_path / "one.csv")]) == 2
    assert "mask threshold 1 must be at least 0 and below 1" in capsys.readouterr().err


def test_manifest_without_the_threshold_column_keeps_its_rule(grey_masks, tmp_path):
    """Manifests written before the column read every value above 0, as they were made."""
    root, planted = grey_masks
    prepare_manifest(root, tmp_path / "manifest.csv")
    text = (tmp_path / "manifest.csv").read_text().splitlines()
    old = [",".join(line.split(",")[:6]) for line in text]
    (tmp_path / "old.csv").write_text("\n".join(old) + "\n")
    crack = next(s for s in read_manifest(tmp_path / "old.csv") if s.id == "crack-000")
    assert crack.mask_threshold == 0 and load_mask(root, crack, 64).sum() > planted


def test_jpeg_masks_are_found_and_binarised(tmp_path):
    root = make_mvtec_tree(tmp_path / "c", size=64)
    (root / "ground_truth" / "crack" / "000_mask.png").unlink()
    planted = _jpeg_grey_mask(root / "ground_truth" / "crack" / "000_mask.jpg")
    crack = next(s for s in scan_data(root)[0] if s.id == "crack-000")
    assert crack.mask_path == "ground_truth/crack/000_mask.jpg"
    assert load_mask(root, crack, 64).sum() == planted


@pytest.mark.parametrize("per_class, suffix, normal, masks", [(False, "", "good", "masks"),
                                                              (True, "_mask", "normal", "mask"),
                                                              (False, "", "good", "ground_truth")])
def test_good_bad_masks_folder_format_reads_as_images_with_masks(tmp_path, per_class, suffix, normal, masks):
    root = make_mask_folder_tree(tmp_path / "f", per_class=per_class, mask_suffix=suffix, normal=normal,
                                 masks=masks)
    assert layout_of(root).name == "mask-folder"
    samples, classes = scan_data(root)
    assert classes == ["bad", "good"]  # not a third class made of the masks
    assert len(samples) == 8 and all(s.has_mask == (s.cls == "bad") for s in samples)
    for s in samples:
        if s.has_mask:
            planted = np.asarray(Image.open(root / s.mask_path)) > 0
            assert s.mask_path.startswith(f"{masks}/") and Path(s.mask_path).stem == Path(s.path).stem + suffix
            assert np.array_equal(load_mask(root, s, 32), planted) and planted.sum() == 8 * 8


def test_folder_format_flat_mask_of_two_classes_and_missing_mask(tmp_path):
    root = make_mask_folder_tree(tmp_path / "f")
    (root / "crack").mkdir()
    Image.open(root / "bad" / "001.png").save(root / "crack" / "001.png")
    with pytest.raises(DataError, match=r"masks/001\.png matches both .*bad/001\.png and .*crack/001\.png; put "
                                        r"each class's masks in a folder of its own"):
        scan_data(root)
    (root / "crack" / "001.png").unlink()
    (root / "crack").rmdir()
    (root / "masks" / "002.png").rename(root / "masks" / "002-mask.png")
    with pytest.raises(DataError, match=r"bad/002\.png: defect image without its mask, expected .*masks/002_mask"
                                        r"\.png .*masks holds 002-mask\.png, "):
        scan_data(root)


def test_class_folders_beside_a_mask_folder_are_never_read_as_classes(tmp_path, capsys):
    """Without a normal folder the format is not recognised: one line, naming the nearest layout."""
    root = make_mask_folder_tree(tmp_path / "f")
    (root / "good").rename(root / "fine")
    out = tmp_path / "m.csv"
    assert cli_main(["data", "split", "--data", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a data layout this program reads" in err[0]
    assert "nearest: mask-folder" in err[0] and "would need good beside masks, */*.png" in err[0]
    assert not out.exists()

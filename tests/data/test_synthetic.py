"""Tests for pixel_evidence.data.synthetic: layout, determinism, defect placement, atomic writes."""

from __future__ import annotations

import hashlib
import inspect
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixel_evidence.data import synthetic as sy

SMALL = dict(n_good_train=6, n_good_test=2, n_per_defect=3, size=96)

# Pinned output of generate(root, seed=0, **SMALL).  If the generator changes on
# purpose, bump GENERATOR_VERSION and paste the new values here.
#  - PINNED_FINGERPRINT: sha256 over paths + PNG file bytes (what fingerprint() returns)
#  - PINNED_PIXELS: sha256 over paths + decoded pixel arrays (independent of the PNG encoder)
PINNED_FINGERPRINT = "7cf619e977159a84ca59779b3e20e213bdc530d3e7db72647090e458757d89a6"
PINNED_PIXELS = "70459a6a7c1af7f4e5d729b1b110855c7ba3db3672407b11c98000a1bf19aba0"


def _pixel_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.png"), key=lambda q: q.relative_to(root).as_posix()):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(np.asarray(Image.open(p)).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "hazelnut"
    sy.generate(root, seed=0, **SMALL)
    return root


def _expected_files() -> set[str]:
    files = {f"train/good/{i:03d}.png" for i in range(SMALL["n_good_train"])}
    files |= {f"test/good/{i:03d}.png" for i in range(SMALL["n_good_test"])}
    for cls in sy.DEFECT_CLASSES:
        for i in range(SMALL["n_per_defect"]):
            files.add(f"test/{cls}/{i:03d}.png")
            files.add(f"ground_truth/{cls}/{i:03d}_mask.png")
    return files


# --------------------------------------------------------------------------- layout


def test_layout_exact_files(small_set: Path):
    found = {p.relative_to(small_set).as_posix() for p in small_set.rglob("*") if p.is_file()}
    assert found == _expected_files()
    dirs = {p.relative_to(small_set).as_posix() for p in small_set.rglob("*") if p.is_dir()}
    assert dirs == {
        "train", "train/good", "test", "ground_truth",
        *(f"test/{c}" for c in sy.TEST_CLASSES),
        *(f"ground_truth/{c}" for c in sy.DEFECT_CLASSES),
    }
    assert not (small_set / "ground_truth" / "good").exists()


def test_images_and_masks_format(small_set: Path):
    S = SMALL["size"]
    for img_path in small_set.glob("*/*/*.png"):
        if img_path.parts[-3] == "ground_truth":
            continue
        with Image.open(img_path) as im:
            assert im.mode == "RGB" and im.size == (S, S), img_path
    for cls in sy.DEFECT_CLASSES:
        for i in range(SMALL["n_per_defect"]):
            with Image.open(small_set / "ground_truth" / cls / f"{i:03d}_mask.png") as m:
                assert m.mode == "L" and m.size == (S, S)
                a = np.asarray(m)
            assert set(np.unique(a).tolist()) <= {0, 255}
            assert (a == 255).sum() > 0, f"empty mask {cls}/{i}"


def test_files_match_render_image(small_set: Path):
    """What is on disk is exactly render_image(), i.e. independent of order and counts."""
    for split, cls, i in [("train", "good", 5), ("test", "good", 1), ("test", "hole", 2), ("test", "print", 0)]:
        picture = sy.render_image(split, cls, i, seed=0, size=SMALL["size"])
        on_disk = np.asarray(Image.open(small_set / split / cls / f"{i:03d}.png"))
        np.testing.assert_array_equal(on_disk, picture.image)
        if cls == "good":
            assert picture.mask is None
        else:
            mask = np.asarray(Image.open(small_set / "ground_truth" / cls / f"{i:03d}_mask.png"))
            np.testing.assert_array_equal(mask, picture.mask)


# ---------------------------------------------------------------- determinism


def test_same_seed_same_fingerprint_and_pinned(small_set: Path, tmp_path: Path):
    other = tmp_path / "again"
    sy.generate(other, seed=0, **SMALL)
    assert sy.fingerprint(other) == sy.fingerprint(small_set)
    pixels = _pixel_digest(small_set)
    assert pixels == PINNED_PIXELS, "generated pixels changed: bump GENERATOR_VERSION and re-pin"
    assert sy.fingerprint(small_set) == PINNED_FINGERPRINT, (
        "PNG bytes changed while pixels did not: the PNG encoder (zlib) differs; re-pin"
    )


def test_different_seed_different_fingerprint(small_set: Path, tmp_path: Path):
    other = tmp_path / "seed1"
    sy.generate(other, seed=1, **SMALL)
    assert sy.fingerprint(other) != sy.fingerprint(small_set)


def test_fingerprint_sees_content_and_names(small_set: Path, tmp_path: Path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(small_set, copy)
    base = sy.fingerprint(copy)
    (copy / "notes.txt").write_text("not a png")
    assert sy.fingerprint(copy) == base  # only PNGs count
    (copy / "test" / "good" / "001.png").rename(copy / "test" / "good" / "009.png")
    assert sy.fingerprint(copy) != base


def test_no_global_rng_touched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    sy.render_image("test", "crack", 0, size=64)
    assert np.array_equal(np.random.get_state()[1], before)


# ------------------------------------------------------ defects lie on the nut


@pytest.mark.parametrize("cls", sy.DEFECT_CLASSES)
@pytest.mark.parametrize("size", [96, 256])
def test_defect_is_painted_on_the_nut(cls: str, size: int):
    for i in range(3):
        picture = sy.render_image("test", cls, i, seed=0, size=size)
        m = picture.mask == 255
        assert m.sum() >= 0.001 * size * size
        # every mask pixel is fully covered by the nut silhouette
        assert picture.nut[m].all()
        # the painter changed nothing outside the mask ...
        diff = np.abs(picture.image.astype(int) - picture.clean.astype(int)).max(axis=-1)
        assert (diff[~m] == 0).all()
        # ... and clearly changed the pixels inside it
        assert (diff[m] > 0).mean() > 0.9
        assert diff[m].mean() > 20
        # independent of the renderer's own silhouette: under the mask the
        # defect-free picture is brown shell (red well above blue), unlike the
        # near-grey background seen along the image border
        c = picture.clean.astype(float)
        red_minus_blue = c[..., 0] - c[..., 2]
        rb_border = np.concatenate(
            [red_minus_blue[0], red_minus_blue[-1], red_minus_blue[:, 0], red_minus_blue[:, -1]]
        )
        assert (red_minus_blue[m] > np.percentile(rb_border, 99.9)).mean() > 0.97
        lum = c.mean(axis=-1)
        lum_border = np.concatenate([lum[0], lum[-1], lum[:, 0], lum[:, -1]])
        assert lum[m].mean() > 1.3 * lum_border.mean()


def test_mask_area_reasonable():
    for cls in sy.DEFECT_CLASSES:
        fr = [(sy.render_image("test", cls, i, size=128).mask > 0).mean() for i in range(6)]
        assert 0.002 <= min(fr) and max(fr) <= 0.06, (cls, fr)


def test_good_samples_have_no_mask():
    picture = sy.render_image("train", "good", 0, size=64)
    assert picture.mask is None
    np.testing.assert_array_equal(picture.image, picture.clean)


def test_render_image_rejects_bad_arguments():
    with pytest.raises(ValueError):
        sy.render_image("train", "crack", 0)
    with pytest.raises(ValueError):
        sy.render_image("test", "scratch", 0)
    with pytest.raises(ValueError):
        sy.render_image("test", "good", -1)


# --------------------------------------------------------------------- atomic


def test_generate_refuses_non_empty_root(tmp_path: Path):
    root = tmp_path / "busy"
    root.mkdir()
    (root / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        sy.generate(root, **SMALL)
    assert [p.name for p in root.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


def test_generate_into_empty_root_and_no_leftovers(tmp_path: Path):
    root = tmp_path / "empty"
    root.mkdir()
    out = sy.generate(root, n_good_train=1, n_good_test=1, n_per_defect=1, size=64)
    assert out == root
    assert (root / "test" / "cut" / "000.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no temp folder left


def test_interrupted_generate_leaves_nothing(tmp_path: Path, monkeypatch):
    calls = {"n": 0}
    real_save = sy._save_png

    def flaky_save(arr, path):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        real_save(arr, path)

    monkeypatch.setattr(sy, "_save_png", flaky_save)
    with pytest.raises(KeyboardInterrupt):
        sy.generate(tmp_path / "set", **SMALL)
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------- default data


def test_default_params_match_generate_signature():
    sig = inspect.signature(sy.generate)
    assert {k: sig.parameters[k].default for k in sy._DEFAULT_PARAMS} == sy._DEFAULT_PARAMS


def test_default_data_root_env(monkeypatch, tmp_path: Path):
    name = f"synthetic-hazelnut-v{sy.GENERATOR_VERSION}"
    monkeypatch.setenv("PIXEL_EVIDENCE_CACHE", str(tmp_path / "pe"))
    assert sy.default_data_root() == tmp_path / "pe" / name
    monkeypatch.delenv("PIXEL_EVIDENCE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert sy.default_data_root() == tmp_path / "xdg" / "pixel-evidence" / name
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert sy.default_data_root() == tmp_path / "home" / ".cache" / "pixel-evidence" / name


@pytest.fixture
def tiny_defaults(monkeypatch):
    # the real default set takes seconds; the logic under test does not depend on its size
    monkeypatch.setattr(sy, "_DEFAULT_PARAMS", dict(seed=0, n_good_train=2, n_good_test=1, n_per_defect=1, size=64))


def test_ensure_default_data_generates_once(tmp_path: Path, tiny_defaults):
    root = tmp_path / "cache" / "data"
    assert sy.ensure_default_data(root) == root
    probe = root / "test" / "hole" / "000.png"
    stamp = probe.stat().st_mtime_ns
    fp = sy.fingerprint(root)
    os.utime(probe, ns=(stamp - 10**9, stamp - 10**9))  # make any rewrite visible
    stamp = probe.stat().st_mtime_ns
    assert sy.ensure_default_data(root) == root
    assert probe.stat().st_mtime_ns == stamp
    assert sy.fingerprint(root) == fp
    assert sorted(p.name for p in root.parent.iterdir()) == ["data"]


def test_ensure_default_data_uses_env_root(tmp_path: Path, tiny_defaults, monkeypatch):
    monkeypatch.setenv("PIXEL_EVIDENCE_CACHE", str(tmp_path))
    root = sy.ensure_default_data()
    assert root == tmp_path / f"synthetic-hazelnut-v{sy.GENERATOR_VERSION}"
    assert (root / "train" / "good" / "000.png").is_file()


def test_ensure_default_data_loses_race_gracefully(tmp_path: Path, tiny_defaults, monkeypatch):
    root = tmp_path / "data"
    real_write = sy._write_set

    def write_then_get_overtaken(dest, **kw):
        real_write(dest, **kw)
        # another process finishes first
        if not root.exists():
            real_write(root, **kw)
        (root / "winner.txt").write_text("other process")

    monkeypatch.setattr(sy, "_write_set", write_then_get_overtaken)
    assert sy.ensure_default_data(root) == root
    assert (root / "winner.txt").is_file()  # the other copy was kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # ours was discarded


# -------------------------------------------------------------- contact sheet


def test_contact_sheet(small_set: Path, tmp_path: Path):
    out = sy.contact_sheet(small_set, tmp_path / "sheet" / "s.png", per_class=2)
    with Image.open(out) as im:
        assert im.mode == "RGB"
        w, h = im.size
    S = SMALL["size"]
    assert h >= len(sy.TEST_CLASSES) * S and w >= 2 * S

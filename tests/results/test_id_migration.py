"""Image ids that cannot be read as our split, and moving a folder from the earlier ids."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from pixel_evidence.cli import main
from pixel_evidence.data import DataError, Sample, dataset_fingerprint, manifest_text, read_manifest, scan_category
from pixel_evidence.data.mvtec import current_image_id
from pixel_evidence.results.id_migration import rename_image_ids


def earlier_id(sample: Sample) -> str:
    """The earlier scheme, written out independently: ``<origin>-<class>-<stem>``."""
    origin, cls, name = sample.path.split("/")
    return f"{origin}-{cls}-{name.rsplit('.', 1)[0]}"


def test_ids_name_the_class_and_only_train_images_say_train(mvtec_tree):
    samples, _ = scan_category(mvtec_tree)
    for s in samples:
        origin, cls, name = s.path.split("/")
        assert s.id == (f"{cls}-train-{name[:-4]}" if origin == "train" else f"{cls}-{name[:-4]}")
        assert not s.id.startswith(("test-", "train-"))


def test_every_earlier_id_maps_to_the_same_file(mvtec_tree):
    samples, _ = scan_category(mvtec_tree)
    assert {current_image_id(earlier_id(s)) for s in samples} == {s.id for s in samples}
    assert current_image_id("crack-003") is None and current_image_id("test-") is None


def test_two_files_with_one_id_are_an_error(mvtec_tree):
    clash = mvtec_tree / "test" / "good-train"  # its 000.png would be good-train-000, as train/good/000.png is
    clash.mkdir()
    Image.new("RGB", (32, 32)).save(clash / "000.png")
    (mvtec_tree / "ground_truth" / "good-train").mkdir()
    Image.new("L", (32, 32)).save(mvtec_tree / "ground_truth" / "good-train" / "000_mask.png")
    with pytest.raises(DataError, match=r"would both be image 'good-train-000'; rename one"):
        scan_category(mvtec_tree)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _with_earlier_ids(root: Path, models: Path, out: Path) -> Path:
    """A copy of a trained folder as the earlier code wrote it: earlier ids in the manifest,
    the seeds' validation ids and a results table, with the hashes that go with them."""
    shutil.copytree(models, out)
    current = read_manifest(out / "manifest.csv")
    to_earlier = {s.id: earlier_id(s) for s in current}
    earlier = sorted((Sample(to_earlier[s.id], s.path, s.cls, s.mask_path, s.split) for s in current),
                     key=lambda s: s.id)  # the earlier code listed its rows in id order too
    text = manifest_text(earlier)
    (out / "manifest.csv").write_text(text)
    for meta_path in out.glob("seed_*.json"):
        meta = json.loads(meta_path.read_text())
        meta.update(manifest_sha256=_sha(text), dataset_fingerprint=dataset_fingerprint(root, earlier),
                    validation_ids=[to_earlier[i] for i in meta["validation_ids"]])
        meta_path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    results = out / "results" / "per_seed"
    results.mkdir(parents=True)
    rows = "".join(f"7,test,{to_earlier[s.id]},{s.cls},0.5\n" for s in current if s.split == "test")
    (results / "seed_7_test.csv").write_text("seed,split,image_id,class,tko\n" + rows)
    (results / "seed_7_test.json").write_text(json.dumps({"manifest_sha256": _sha(text)}, indent=1) + "\n")
    return out


def test_renaming_an_earlier_folder_gives_what_training_writes_today(tiny_run, tmp_path):
    """Today's training writes current ids: moving an earlier copy of the same folder must
    give the same manifest, hashes and fingerprints byte for byte, and the engine loads it
    without a "data changed" warning."""
    root, models, *_ = tiny_run
    old = _with_earlier_ids(root, models, tmp_path / "old")
    assert main(["data", "rename-ids", "--data", str(root), "--models", str(old)]) == 0

    assert (old / "manifest.csv").read_bytes() == (models / "manifest.csv").read_bytes()
    for meta_path in models.glob("seed_*.json"):
        assert json.loads((old / meta_path.name).read_text()) == json.loads(meta_path.read_text())
    current = {s.id for s in read_manifest(models / "manifest.csv") if s.split == "test"}
    table = (old / "results" / "per_seed" / "seed_7_test.csv").read_text().splitlines()
    assert {line.split(",")[2] for line in table[1:]} == current
    sidecar = json.loads((old / "results" / "per_seed" / "seed_7_test.json").read_text())
    assert sidecar["manifest_sha256"] == _sha((models / "manifest.csv").read_text())

    from pixel_evidence.engine.explain import ExplanationEngine

    eng = ExplanationEngine(root, old, device="cpu")
    try:
        assert eng.warnings == [] and set(eng.catalogue.image_ids("test")) == current
    finally:
        eng.close()
    assert rename_image_ids(root, old, report=lambda _m: None) == 0  # a second run finds nothing to do


def test_a_run_killed_before_the_manifest_is_finished_by_the_next(tiny_run, tmp_path, monkeypatch):
    root, models, *_ = tiny_run
    old = _with_earlier_ids(root, models, tmp_path / "old")
    import pixel_evidence.results.id_migration as migration

    real_write = migration.atomic_write_text

    def killed_at_the_manifest(path, text):
        if Path(path).name == "manifest.csv":
            raise KeyboardInterrupt
        real_write(path, text)

    monkeypatch.setattr(migration, "atomic_write_text", killed_at_the_manifest)
    with pytest.raises(KeyboardInterrupt):
        rename_image_ids(root, old, report=lambda _m: None)
    monkeypatch.setattr(migration, "atomic_write_text", real_write)
    rename_image_ids(root, old, report=lambda _m: None)
    assert (old / "manifest.csv").read_bytes() == (models / "manifest.csv").read_bytes()
    for meta_path in models.glob("seed_*.json"):
        assert json.loads((old / meta_path.name).read_text()) == json.loads(meta_path.read_text())


def test_changed_data_is_not_blessed_with_a_new_fingerprint(tiny_run, tmp_path):
    root, models, *_ = tiny_run
    data = shutil.copytree(root, tmp_path / "data")
    old = _with_earlier_ids(data, models, tmp_path / "old")
    first = read_manifest(old / "manifest.csv")[0]
    Image.new("RGB", (64, 64), (1, 2, 3)).save(data / first.path)
    before = (old / "manifest.csv").read_bytes()
    with pytest.raises(DataError, match=r"seed_7\.json: the data under .* is not what this seed was trained on"):
        rename_image_ids(data, old, report=lambda _m: None)
    assert (old / "manifest.csv").read_bytes() == before

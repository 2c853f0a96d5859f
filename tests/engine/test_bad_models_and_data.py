"""What the model pool and the engine do with bad or unfinished seeds and with data changed
since training: skip what they must, say so in one line per problem, never score silently."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from PIL import Image

from pixel_evidence.data import DataError
from pixel_evidence.engine.catalogue import ImageCatalogue
from pixel_evidence.engine.explain import ExplanationEngine
from pixel_evidence.engine.model_pool import ModelPool
from pixel_evidence.models import CheckpointError


def pool_on(root, models) -> ModelPool:
    catalogue = ImageCatalogue(root, models / "manifest.csv")
    return ModelPool(models, classes=catalogue.classes, manifest_sha256=catalogue.manifest_sha256, device="cpu")


@pytest.mark.parametrize("content", [b"{}", b"[1, 2, 3]", bytes(range(256))])
def test_a_malformed_seed_is_skipped_with_one_line(tiny_run, models, content):
    (models / "seed_8.json").write_bytes(content)
    pool = pool_on(tiny_run[0], models)
    assert pool.seeds == [7] and list(pool.meta) == [7]
    assert len(pool.warnings) == 1 and "seed_8.json" in pool.warnings[0] and "\n" not in pool.warnings[0]
    pool.network(7)


def test_unfinished_and_empty_seeds_are_skipped(tiny_run, models):
    js = models / "seed_8.json"
    js.write_text(json.dumps({k: v for k, v in json.loads(js.read_text()).items() if k != "final_metrics"}))
    shutil.copy(models / "seed_7.pt", models / "seed_9.pt")  # weights whose metadata was never written
    pool = pool_on(tiny_run[0], models)
    assert pool.seeds == [7]
    assert len(pool.warnings) == 2
    assert pool.warnings[0].startswith("skipped seed 8: ") and f"{js}: unfinished training" in pool.warnings[0]
    assert pool.warnings[1].startswith("skipped seed 9: ") and "seed_9.pt: unfinished training" in pool.warnings[1]
    (models / "seed_7.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"seed_7\.pt: empty file") as err:
        pool_on(tiny_run[0], models)
    assert "\n" not in str(err.value)


def test_a_seed_of_another_manifest_is_skipped(tiny_run, models):
    js = models / "seed_8.json"
    js.write_text(json.dumps({**json.loads(js.read_text()), "manifest_sha256": "0" * 64}))
    pool = pool_on(tiny_run[0], models)
    assert pool.seeds == [7] and "seed_8.json" in pool.warnings[0] and "another split manifest" in pool.warnings[0]


def test_the_engine_exposes_skipped_seeds(tiny_run, models):
    (models / "seed_8.json").write_text("[1, 2, 3]")
    engine = ExplanationEngine(tiny_run[0], models, device="cpu")
    try:
        assert engine.pool.seeds == [7] and len(engine.warnings) == 1 and "seed_8.json" in engine.warnings[0]
    finally:
        engine.close()


def test_the_engine_warns_when_the_data_changed_since_training(data, models):
    engine = ExplanationEngine(data, models, device="cpu")
    assert engine.warnings == []
    engine.close()
    mask = next(data.glob("ground_truth/crack/*_mask.png"))
    Image.new("L", Image.open(mask).size, 255).save(mask)  # same size, other defect
    engine = ExplanationEngine(data, models, device="cpu")
    try:
        assert len(engine.warnings) == 1
        assert str(data) in engine.warnings[0] and "differ from those seeds [7, 8] were trained on" in engine.warnings[0]
    finally:
        engine.close()


def test_a_mask_replaced_after_training_is_an_error_naming_it(data, models):
    engine = ExplanationEngine(data, models, device="cpu")
    try:
        sample = next(s for s in engine.catalogue.samples if s.has_mask)
        Image.new("L", (16, 16), 255).save(data / sample.mask_path)
        with pytest.raises(DataError, match=rf"{sample.mask_path}: mask is 16x16 but its image"):
            engine.explain(7, sample.id, split=sample.split, methods=["gradcam"])
    finally:
        engine.close()


def test_the_catalogue_names_a_missing_mask(data, models):
    sample = next(s for s in ImageCatalogue(data, models / "manifest.csv").samples if s.has_mask)
    (data / sample.mask_path).unlink()
    catalogue = ImageCatalogue(data, models / "manifest.csv")  # the other images are served
    assert list(catalogue.missing) == [sample.id]
    assert re.match(rf"{re.escape(str(data / sample.mask_path))}: listed in .* but missing", catalogue.missing[sample.id])

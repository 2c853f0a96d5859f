from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from engine.models import checkpoint as ckpt
from engine.models import CheckpointError, available_seeds, load_model, save_checkpoint
from engine.cli import main, parse_seeds
from engine.data import prepare_manifest
from engine.files import file_sha256
from engine.models import MultitaskNet
from engine.models.train import TrainConfig, augment, balanced_accuracy, class_weights, train_seeds


def test_training_lowers_the_loss_and_records_metadata(tiny_run):
    root, models, manifest, cfg, meta = tiny_run
    hist = meta["history"]
    assert len(hist) == 2
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    for key in ("backbone", "classes", "image_size", "normalization", "hyperparameters",
                "dataset_fingerprint", "manifest_sha256", "final_metrics", "weights_sha256"):
        assert key in meta
    assert meta["classes"] == ["crack", "good", "hole"]
    assert meta["manifest_sha256"] == file_sha256(manifest)
    assert meta["hyperparameters"]["epochs"] == 2 and meta["seed"] == 7
    assert 1 <= meta["selected_epoch"] <= 2
    assert available_seeds(models) == [7, 8]


def test_checkpoint_loads_with_weights_only_and_reproduces_outputs(tiny_run):
    root, models, manifest, cfg, meta = tiny_run
    state = torch.load(models / "seed_7.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    net, meta2 = load_model(models, 7, classes=meta["classes"], manifest_sha256=file_sha256(manifest))
    assert meta2["weights_sha256"] == meta["weights_sha256"]
    ref = MultitaskNet(3, backbone=meta["backbone"], pretrained=False)
    ref.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x)[0], ref.eval()(x)[0])


def test_checkpoint_mismatch_is_a_clear_error(tiny_run):
    root, models, manifest, cfg, meta = tiny_run
    with pytest.raises(CheckpointError, match="model classes .* differ"):
        load_model(models, 7, classes=["crack", "good", "hole", "print"])
    with pytest.raises(CheckpointError, match="another split manifest"):
        load_model(models, 7, manifest_sha256="0" * 64)
    with pytest.raises(CheckpointError, match="no model for seed 9"):
        load_model(models, 9)


def test_finished_seed_is_skipped_and_other_settings_refused(tiny_run):
    root, models, manifest, cfg, meta = tiny_run
    before = (models / "seed_7.pt").stat().st_mtime_ns
    again = train_seeds(cfg, root, manifest, models)
    assert again[0]["weights_sha256"] == meta["weights_sha256"]
    assert (models / "seed_7.pt").stat().st_mtime_ns == before
    other = TrainConfig(**{**cfg.__dict__, "lr": 1e-4})
    with pytest.raises(ValueError, match="pass --force"):
        train_seeds(other, root, manifest, models)


def test_interrupted_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    net = MultitaskNet(2, backbone="none", pretrained=False)
    save_checkpoint(tmp_path, 1, net.state_dict(), {"classes": ["a", "b"], "backbone": "none"})
    old_pt, old_js = (tmp_path / "seed_1.pt").read_bytes(), (tmp_path / "seed_1.json").read_bytes()

    real_replace = os.replace

    def dying_replace(src, dst):
        raise KeyboardInterrupt  # killed between writing the temp file and the rename

    monkeypatch.setattr(os, "replace", dying_replace)
    other = MultitaskNet(2, backbone="none", pretrained=False)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 1, other.state_dict(), {"classes": ["a", "b"], "backbone": "none"})
    monkeypatch.setattr(os, "replace", real_replace)
    assert (tmp_path / "seed_1.pt").read_bytes() == old_pt
    assert (tmp_path / "seed_1.json").read_bytes() == old_js
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed_1.json", "seed_1.pt"]
    load_model(tmp_path, 1)


def test_balanced_accuracy_and_class_weights():
    y = np.array([0, 0, 0, 0, 1, 1])
    p = np.array([0, 0, 0, 0, 0, 1])
    assert balanced_accuracy(y, p, 2) == pytest.approx((1.0 + 0.5) / 2)
    w = class_weights(y, 3)
    assert w.tolist() == pytest.approx([6 / (3 * 4), 6 / (3 * 2), 0.0])


def test_augment_moves_mask_with_image():
    gen = torch.Generator().manual_seed(0)
    img = torch.zeros(8, 3, 16, 16)
    img[:, :, 2, 3] = 1.0
    mask = (img[:, :1] > 0).float()
    out_i, out_m = augment(img, mask, gen)
    brightest = out_i[:, 0].flatten(1).argmax(1)
    assert torch.equal(out_m.flatten(1).argmax(1), brightest)
    assert out_m.sum() == 8


def test_parse_seeds():
    assert parse_seeds("42-45,50") == [42, 43, 44, 45, 50]
    with pytest.raises(Exception):
        parse_seeds("a-b")


def test_cli_train_on_bad_data_is_one_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--models", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not an MVTec AD category folder" in err

from __future__ import annotations

import io
import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from pixel_evidence.choices import parse_seeds
from pixel_evidence.cli import main
from pixel_evidence.data import prepare_manifest, read_manifest
from pixel_evidence.files import file_sha256
from pixel_evidence.models import CheckpointError, MultitaskNet, available_seeds
from pixel_evidence.models import checkpoint as ckpt
from pixel_evidence.models import load_model, save_checkpoint
from pixel_evidence.models.train import (TrainConfig, augment, balanced_accuracy, class_weights, multitask_loss,
                                         train_seeds)
from tests.layout_trees import make_mvtec_tree


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
    # the kept epoch is the best on the validation subset, which is drawn from the train split only
    best = max(hist, key=lambda row: (row["val_balanced_accuracy"], -row["val_loss"]))
    assert meta["selected_epoch"] == best["epoch"]
    split_of = {s.id: s.split for s in read_manifest(manifest)}
    assert meta["validation_ids"] and {split_of[i] for i in meta["validation_ids"]} == {"train"}
    assert available_seeds(models) == [7, 8]


def test_multitask_loss_is_weighted_cross_entropy_plus_beta_bce():
    """Against the formulas written out: class-weighted CE normalised by the weights of the
    batch's labels, plus beta times the mean BCE of the mask logits."""
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(6, 3, generator=g), torch.tensor([0, 2, 1, 2, 2, 0])
    weights = torch.tensor([0.5, 2.0, 1.0])
    mask_logits = torch.randn(6, 1, 4, 4, generator=g) * 3
    masks = (torch.rand(6, 1, 4, 4, generator=g) > 0.7).float()
    total, ce, bce = multitask_loss(logits, mask_logits, labels, masks, weights, beta=0.7)
    log_p = logits - logits.exp().sum(1, keepdim=True).log()
    w = weights[labels]
    expected_ce = -(w * log_p[torch.arange(6), labels]).sum() / w.sum()
    z, m = mask_logits.double(), masks.double()
    expected_bce = (-(m * torch.log(torch.sigmoid(z)) + (1 - m) * torch.log(1 - torch.sigmoid(z)))).mean()
    assert float(ce) == pytest.approx(float(expected_ce), rel=1e-5)
    assert float(bce) == pytest.approx(float(expected_bce), rel=1e-5)
    assert float(total) == pytest.approx(float(expected_ce) + 0.7 * float(expected_bce), rel=1e-5)


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
    for changed in ({"kind": "classifier"}, {"mode": "fine-tune"}):
        with pytest.raises(ValueError, match=f"{next(iter(changed))} "):
            train_seeds(TrainConfig(**{**cfg.__dict__, **changed}), root, manifest, models)


def test_a_seed_recorded_before_kinds_and_modes_counts_as_trained_with_the_defaults(tiny_run, tmp_path):
    import shutil

    root, models, manifest, cfg, meta = tiny_run
    old = tmp_path / "old"
    shutil.copytree(models, old)
    js = old / "seed_7.json"
    recorded = json.loads(js.read_text())
    for key in ("kind", "mode", "cam_layer", "model_module"):
        recorded["hyperparameters"].pop(key)
        recorded.pop(key, None)
    js.write_text(json.dumps(recorded))
    again = train_seeds(TrainConfig(**{**cfg.__dict__, "seeds": [7]}), root, manifest, old)
    assert again[0]["weights_sha256"] == meta["weights_sha256"]  # skipped, not refused nor retrained


def test_interrupted_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    net = MultitaskNet(2, backbone="none", pretrained=False)
    save_checkpoint(tmp_path, 1, net.state_dict(), complete_meta())
    old_pt, old_js = (tmp_path / "seed_1.pt").read_bytes(), (tmp_path / "seed_1.json").read_bytes()

    real_replace = os.replace

    def dying_replace(src, dst):
        raise KeyboardInterrupt  # killed between writing the temp file and the rename

    monkeypatch.setattr(os, "replace", dying_replace)
    other = MultitaskNet(2, backbone="none", pretrained=False)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 1, other.state_dict(), complete_meta())
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
    assert "\n" not in err and "not a data layout this program reads (mvtec2, loco, autovi, " in err


# ---------------------------------------------------------------- resuming after a kill

@pytest.fixture(scope="module")
def quick_tree(tmp_path_factory):
    """A tiny category and its manifest, for trainings of a second (random 'none' backbone)."""
    base = tmp_path_factory.mktemp("quick")
    root = make_mvtec_tree(base / "cat")
    manifest = base / "manifest.csv"
    prepare_manifest(root, manifest)
    return root, manifest


def quick_config(seeds=(3,)) -> TrainConfig:
    return TrainConfig(seeds=list(seeds), epochs=1, batch_size=8, image_size=32, backbone="none",
                       pretrained=False, channels_last=False, device="cpu")


def kill_after_renames(monkeypatch, n: int) -> None:
    """Make the process 'die' (KeyboardInterrupt) right after its ``n``-th completed file write."""
    real_replace, done = os.replace, []

    def replace_then_die(src, dst):
        real_replace(src, dst)
        done.append(dst)
        if len(done) == n:
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", replace_then_die)


@pytest.mark.parametrize("killed_after_write", [1, 2, 3])
def test_a_killed_training_resumes_to_a_finished_seed(quick_tree, tmp_path, monkeypatch, killed_after_write):
    root, manifest = quick_tree
    models = tmp_path / "models"
    kill_after_renames(monkeypatch, killed_after_write)
    try:
        train_seeds(quick_config(), root, manifest, models)
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    # whatever the kill left, only finished seeds count
    for seed in available_seeds(models):
        assert "final_metrics" in ckpt.read_metadata(models, seed)
    results = train_seeds(quick_config(), root, manifest, models)
    assert "final_metrics" in results[0] and available_seeds(models) == [3]
    assert not [p.name for p in models.iterdir() if p.name.startswith(".")]  # no temp file left
    load_model(models, 3)


def test_a_malformed_seed_is_trained_again(quick_tree, tmp_path):
    root, manifest = quick_tree
    models = tmp_path / "models"
    train_seeds(quick_config(), root, manifest, models)
    (models / "seed_3.json").write_text("{}")
    assert available_seeds(models) == []
    results = train_seeds(quick_config(), root, manifest, models)
    assert "final_metrics" in results[0] and available_seeds(models) == [3]


def test_a_seed_trained_on_changed_data_is_refused(quick_tree, tmp_path):
    root, manifest = quick_tree
    data = tmp_path / "cat"
    shutil.copytree(root, data)
    models = tmp_path / "models"
    train_seeds(quick_config(), data, manifest, models)
    mask = data / "ground_truth" / "crack" / "000_mask.png"
    Image.new("L", (32, 32), 255).save(mask)
    with pytest.raises(ValueError, match=r"seed_3\.json: trained on other images or masks.*--force"):
        train_seeds(quick_config(), data, manifest, models)


# ---------------------------------------------------------------- malformed metadata and weights

def complete_meta(**changes) -> dict:
    """Metadata with every field the engine reads, for a 2-class 'none' model."""
    meta = {"backbone": "none", "classes": ["a", "b"], "image_size": 32,
            "normalization": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
            "manifest_sha256": "0" * 64, "dataset_fingerprint": "1" * 64,
            "final_metrics": {"test": {"balanced_accuracy": 1.0}}}
    return {**meta, **changes}


@pytest.fixture(scope="module")
def small_net():
    return MultitaskNet(2, backbone="none", pretrained=False)


@pytest.mark.parametrize("content,problem", [
    (b"{}", "missing field 'backbone'"),
    (b"[1, 2, 3]", "not a JSON object"),
    (bytes(range(256)), "not UTF-8 text"),
    (b'{"a": ', "not valid JSON"),
])
def test_malformed_metadata_is_one_line_naming_the_file(tmp_path, small_net, content, problem):
    save_checkpoint(tmp_path, 1, small_net.state_dict(), complete_meta())
    (tmp_path / "seed_1.json").write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        ckpt.read_metadata(tmp_path, 1)
    message = str(err.value)
    assert "\n" not in message and "seed_1.json" in message and problem in message
    assert f"pixel-evidence train --models {tmp_path} --seeds 1 --force" in message  # the seed's own folder
    assert available_seeds(tmp_path) == []


@pytest.mark.parametrize("change,problem", [
    ({"classes": "ab"}, "'classes' must be a list of class names"),
    ({"image_size": -3}, "'image_size' must be a positive integer"),
    ({"normalization": {"mean": [0.5]}}, "'normalization' must hold 3 numbers each for mean and std"),
    ({"weights_sha256": 5}, "'weights_sha256' must be a sha256 hex digest"),
    ({"kind": "detector"}, "'kind' must be one of multitask, classifier"),
    ({"mode": "frozen"}, "'mode' must be one of partial, fine-tune, feature-extraction"),
    ({"cam_layer": ""}, "'cam_layer' must be a module path"),
    ({"backbone": "custom"}, "a 'model_module' goes with backbone 'custom', and only with it"),
    ({"model_module": "/x/m.py:build"}, "a 'model_module' goes with backbone 'custom', and only with it"),
])
def test_metadata_fields_are_checked(tmp_path, small_net, change, problem):
    save_checkpoint(tmp_path, 1, small_net.state_dict(), complete_meta())
    js = tmp_path / "seed_1.json"
    js.write_text(json.dumps({**json.loads(js.read_text()), **change}))
    with pytest.raises(CheckpointError, match=re.escape(problem)):
        ckpt.read_metadata(tmp_path, 1)


def test_metadata_without_final_metrics_is_an_unfinished_seed(tmp_path, small_net):
    save_checkpoint(tmp_path, 1, small_net.state_dict(), complete_meta())
    js = tmp_path / "seed_1.json"
    js.write_text(json.dumps({k: v for k, v in json.loads(js.read_text()).items() if k != "final_metrics"}))
    hint = re.escape(f"pixel-evidence train --models {tmp_path} --seeds 1`")
    with pytest.raises(CheckpointError, match=rf"seed_1\.json: unfinished training.*{hint}"):
        ckpt.read_metadata(tmp_path, 1)
    assert available_seeds(tmp_path) == []


def test_empty_weights_file_is_named(tmp_path, small_net):
    save_checkpoint(tmp_path, 1, small_net.state_dict(), complete_meta())
    (tmp_path / "seed_1.pt").write_bytes(b"")
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path, 1)
    assert str(err.value) == (f"{tmp_path / 'seed_1.pt'}: empty file; "
                              f"retrain the seed with `pixel-evidence train --models {tmp_path} --seeds 1 --force`")


class NotATensor:
    pass


def test_unsafe_weights_are_refused_without_torchs_advice(tmp_path, small_net):
    save_checkpoint(tmp_path, 1, {"x": torch.zeros(1)}, complete_meta())
    buf = io.BytesIO()
    torch.save({"x": NotATensor()}, buf)
    (tmp_path / "seed_1.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path, 1)
    message = str(err.value)
    assert "\n" not in message and "seed_1.pt" in message and "weights_only" not in message
    assert "not only tensors" in message and "--seeds 1 --force" in message


def test_weights_that_do_not_fit_say_which_tensor(tmp_path):
    wider = MultitaskNet(3, backbone="none", pretrained=False)
    save_checkpoint(tmp_path, 1, wider.state_dict(), complete_meta())  # the metadata says 2 classes
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path, 1)
    message = str(err.value)
    assert "\n" not in message and "seed_1.pt: weights do not fit the model: classifier.3.weight" in message
    assert re.search(r"is \[3, ?1280\] in the file, \[2, ?1280\] in the model", message)


def test_weights_swapped_under_the_metadata_are_refused(tmp_path, small_net):
    save_checkpoint(tmp_path, 1, small_net.state_dict(), complete_meta())
    save_checkpoint(tmp_path, 2, MultitaskNet(2, backbone="none", pretrained=False).state_dict(), complete_meta())
    shutil.copy(tmp_path / "seed_2.pt", tmp_path / "seed_1.pt")
    with pytest.raises(CheckpointError, match=r"seed_1\.pt: weights are not those seed_1\.json records"):
        load_model(tmp_path, 1)

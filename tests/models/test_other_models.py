"""Backbones, model kinds, training modes and a user's own model: each builds, explains,
trains and loads; each misuse is one line naming the value and the fix."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pixel_evidence.choices import BACKBONES, KINDS
from pixel_evidence.cli import main as cli_main
from pixel_evidence.explainers import REGISTRY, get_explainer
from pixel_evidence.models import BACKBONE_SPECS, ClassifierView, ModelDefinitionError, ModelRecipe, model_description
from pixel_evidence.models.train import TrainConfig, stages_to_freeze
from tests.layout_trees import make_mvtec_tree

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "tiny_model.py"

# Every method on a 32 px image, with the fewest steps and samples it takes to run.
CHEAP = {"ig": {"n_steps": 2}, "lime": {"n_samples": 8, "n_segments": 4}, "rise": {"n_masks": 8, "grid": 2},
         "occlusion": {"window": 16, "stride": 16}, "smoothgrad": {"nt_samples": 2},
         "smoothgrad_ig": {"nt_samples": 2, "n_steps": 2}, "scorecam": {"batch_size": 256}}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_and_kind_explains_with_every_method(backbone, kind):
    torch.manual_seed(0)
    net = ModelRecipe(kind=kind, backbone=backbone).build(3, image_size=32).eval()
    x = torch.randn(1, 3, 32, 32)
    logits, mask_logits = net(x)
    assert logits.shape == (1, 3)
    assert (mask_logits.shape == (1, 1, 32, 32)) if kind == "multitask" else mask_logits is None
    assert net.gradcam_layer is net.get_submodule(f"encoder.{BACKBONE_SPECS[backbone].cam_stage}")
    norm = net.normalization
    for key in REGISTRY:
        explainer = get_explainer(key)(ClassifierView(net), net.gradcam_layer, input_mean=norm.mean,
                                       input_std=norm.std, **CHEAP.get(key, {}))
        maps = explainer.attribute(x, torch.tensor([1])).maps
        assert maps.shape == (1, 32, 32) and torch.isfinite(maps).all(), key


def test_cam_layer_by_path_and_a_missing_path_is_one_line_with_candidates():
    net = ModelRecipe(kind="classifier", backbone="resnet18", cam_layer="encoder.layer3").build(2, image_size=32)
    assert net.gradcam_layer is net.encoder.layer3
    with pytest.raises(ModelDefinitionError) as err:
        ModelRecipe(kind="classifier", backbone="resnet18", cam_layer="encoder.layer9").build(2, image_size=32)
    message = str(err.value)
    assert "\n" not in message and "'encoder.layer9' is not a module of the resnet18 network" in message
    assert "encoder.layer4" in message and "--cam-layer" in message


@pytest.mark.parametrize("kind", KINDS)
def test_feature_extraction_changes_no_encoder_parameter_in_a_training_step(kind):
    torch.manual_seed(0)
    cfg = TrainConfig(backbone="resnet18", pretrained=False, kind=kind, mode="feature-extraction")
    net = cfg.recipe.build(3, image_size=32)
    net.freeze_stages(stages_to_freeze(net, cfg))
    encoder = {k: v.clone() for k, v in net.encoder.state_dict().items()}  # BN statistics included
    head = {k: v.clone() for k, v in net.classifier.state_dict().items()}
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=0.1)
    net.train()
    logits, _ = net(torch.randn(4, 3, 32, 32))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0])).backward()
    opt.step()
    assert all(torch.equal(v, encoder[k]) for k, v in net.encoder.state_dict().items())
    assert any(not torch.equal(v, head[k]) for k, v in net.classifier.state_dict().items())


def test_modes_freeze_what_they_say():
    net = ModelRecipe(kind="classifier", backbone="resnet18").build(2, image_size=32)
    assert stages_to_freeze(net, TrainConfig(mode="fine-tune")) == 0
    assert stages_to_freeze(net, TrainConfig(mode="partial", freeze_blocks=2)) == 2
    assert stages_to_freeze(net, TrainConfig(mode="feature-extraction")) == 5
    with pytest.raises(ValueError, match="--freeze-blocks 3 applies to --mode partial only"):
        TrainConfig(mode="fine-tune", freeze_blocks=3)
    with pytest.raises(ModelDefinitionError, match="the encoder has 5 .*--freeze-blocks 0-5"):
        net.freeze_stages(6)


def _write_module(tmp_path: Path, body: str) -> str:
    path = tmp_path / "model.py"
    path.write_text("from torch import nn\nfrom pixel_evidence.models import UserModel\n\n" + textwrap.dedent(body))
    return f"{path}:build"


def test_a_user_model_whose_output_is_not_b_by_c_is_one_line(tmp_path):
    spec = _write_module(tmp_path, """
        def build(num_classes):
            model = nn.Sequential(nn.Conv2d(3, num_classes, 3))  # a map, not class logits
            return UserModel(model, cam_layer="0")
    """)
    with pytest.raises(ModelDefinitionError) as err:
        ModelRecipe(kind="classifier", model_module=spec).build(3, image_size=32)
    message = str(err.value)
    assert "\n" not in message and "returns (2, 3, 30, 30) for 2 images of 32 px, expected (2, 3)" in message


@pytest.mark.parametrize("body,expected", [
    ("def build(num_classes):\n    return nn.Linear(3, num_classes)\n", "returned Linear, not pixel_evidence.models.UserModel"),
    ("def other(num_classes):\n    pass\n", "has no function 'build'"),
    ("def build(num_classes):\n    return UserModel(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), "
     "nn.Flatten(), nn.Linear(4, num_classes)), cam_layer='9')\n", "Grad-CAM layer '9' is not a module"),
    ("def build(num_classes):\n    return UserModel(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), "
     "nn.Flatten(), nn.Linear(4, num_classes)), cam_layer='3')\n", "Grad-CAM layer '3' gives (2, 3)"),
])
def test_user_model_mistakes_are_one_line(tmp_path, body, expected):
    spec = _write_module(tmp_path, body)
    with pytest.raises(ModelDefinitionError) as err:
        ModelRecipe(kind="classifier", model_module=spec).build(3, image_size=32)
    assert "\n" not in str(err.value) and expected in str(err.value)


@pytest.mark.parametrize("body, expected", [
    ("import not_a_module_anywhere\n", "importing it failed with ModuleNotFoundError: No module named"),
    ("def build(num_classes)\n    pass\n", "importing it failed with SyntaxError: "),
    ("def build(num_classes):\n    raise RuntimeError('no weights\\nsecond line')\n",
     ":build(3) raised RuntimeError: no weights"),
])
def test_user_model_that_fails_is_one_line_naming_the_file(tmp_path, capsys, body, expected):
    """Issue 29: a failing import or build printed a 32-37 line traceback."""
    spec = _write_module(tmp_path, body)
    with pytest.raises(ModelDefinitionError) as err:
        ModelRecipe(kind="classifier", model_module=spec).build(3, image_size=32)
    assert "\n" not in str(err.value) and expected in str(err.value) and spec.rpartition(":")[0] in str(err.value)
    data = make_mvtec_tree(tmp_path / "data")
    assert cli_main(["train", "--data", str(data), "--models", str(tmp_path / "m"), "--model-module", spec,
                     "--epochs", "1", "--seeds", "1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err  # beside the progress bar
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in err and len(errors) == 1 and expected in errors[0]


def test_model_module_that_is_not_a_python_file(tmp_path):
    (tmp_path / "model.txt").write_text("def build(n): pass\n")
    with pytest.raises(ModelDefinitionError, match=r"model\.txt is not a Python file \(\.py\)"):
        ModelRecipe(kind="classifier", model_module=f"{tmp_path}/model.txt:build").build(2, image_size=32)


def test_module_spec_and_kind_errors(tmp_path):
    with pytest.raises(ModelDefinitionError, match="give a Python file and a function as path.py:function"):
        ModelRecipe(kind="classifier", model_module=str(EXAMPLE)).build(2, image_size=32)
    with pytest.raises(ModelDefinitionError, match="no file"):
        ModelRecipe(kind="classifier", model_module=f"{tmp_path}/missing.py:build").build(2, image_size=32)
    with pytest.raises(ModelDefinitionError, match="--model-module builds a classifier: pass --kind classifier"):
        ModelRecipe(kind="multitask", model_module=f"{EXAMPLE}:build")


def test_model_description_names_backbone_kind_and_mode():
    assert model_description({"backbone": "efficientnet_lite0"}) == "efficientnet_lite0, multitask, partial"
    assert model_description({"backbone": "resnet18", "kind": "classifier", "mode": "fine-tune",
                              "hyperparameters": {"pretrained": False}}) == "resnet18 (random init), classifier, fine-tune"
    assert model_description({"backbone": "custom", "kind": "classifier", "mode": "partial",
                              "model_module": "/x/tiny_model.py:build"}) == "custom tiny_model.py:build, classifier, partial"


def test_one_models_folder_mixes_a_user_model_and_a_backbone_through_train_evaluate_and_engine(tmp_path):
    from pixel_evidence.cli import main
    from pixel_evidence.dashboard.catalogue import Catalogue
    from pixel_evidence.dashboard.export import figure_png
    from pixel_evidence.dashboard.pictures import make_pictures
    from pixel_evidence.engine.explain import ExplanationEngine
    from tests.layout_trees import make_mvtec_tree

    data = make_mvtec_tree(tmp_path / "cat", size=32)
    models = tmp_path / "models"
    common = ["--data", str(data), "--models", str(models), "--epochs", "1", "--batch-size", "4",
              "--image-size", "32", "--device", "cpu"]
    module = str(EXAMPLE.relative_to(ROOT)) + ":build"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)  # a relative module path, recorded as an absolute one
        assert main(["train", *common, "--seeds", "3", "--model-module", module, "--mode", "feature-extraction"]) == 0
    assert main(["train", *common, "--seeds", "4", "--backbone", "resnet18", "--no-pretrained",
                 "--kind", "classifier", "--mode", "fine-tune", "--cam-layer", "encoder.layer3"]) == 0
    user = json.loads((models / "seed_3.json").read_text())
    assert (user["backbone"], user["kind"], user["mode"]) == ("custom", "classifier", "feature-extraction")
    assert user["model_module"] == f"{EXAMPLE}:build" and user["cam_layer"] == "features.2"
    assert user["normalization"] == {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    state = torch.load(models / "seed_3.pt", weights_only=True)
    assert set(state) and all(k.startswith("model.") for k in state)
    resnet = json.loads((models / "seed_4.json").read_text())
    assert (resnet["backbone"], resnet["kind"], resnet["mode"], resnet["cam_layer"]) == (
        "resnet18", "classifier", "fine-tune", "encoder.layer3")
    assert resnet["hyperparameters"]["pretrained"] is False

    assert main(["evaluate", "--data", str(data), "--models", str(models), "--splits", "test", "--ig-tolerance", "0", "--ig-steps", "2",
                 "--batch-size", "4", "--device", "cpu"]) == 0
    table = pd.read_csv(models / "results" / "tko_table.csv")
    assert set(table["seed"]) == {3, 4} and set(table["method"]) == {"gradcam", "saliency", "ig"}

    engine = ExplanationEngine(data, models, device="cpu", method_params={"ig": {"n_steps": 2}})
    try:
        image_id = engine.catalogue.image_ids("test", "crack")[0]
        for seed in (3, 4):
            ex = engine.explain(seed, image_id, split="test")
            assert ex.reconstruction is None and set(ex.methods) == {"gradcam", "saliency", "ig"}
            assert ex.methods["gradcam"].map.shape == (32, 32)
            pictures = make_pictures(ex)  # the dashboard's: the pane says there is no reconstruction
            assert pictures.reconstruction_title == "No reconstruction: this model has no mask decoder"
            assert np.isnan(pictures.reconstruction).all() and figure_png(ex, pictures).getvalue()
        catalogue = Catalogue.from_engine(engine)
    finally:
        engine.close()
    assert catalogue.model_note(3) == "custom tiny_model.py:build, classifier, feature-extraction · 32 px"
    assert catalogue.model_note(4) == "resnet18 (random init), classifier, fine-tune · 32 px"


def test_metadata_from_before_kinds_and_modes_loads_as_the_multitask_default(tmp_path):
    from pixel_evidence.models import load_model, save_checkpoint

    net = ModelRecipe(backbone="none").build(2, image_size=32)
    old = {"backbone": "none", "classes": ["a", "b"], "image_size": 32, "manifest_sha256": "0" * 64,
           "normalization": {"mean": [0.5] * 3, "std": [0.2] * 3}, "final_metrics": {}}
    save_checkpoint(tmp_path, 1, net.state_dict(), old)
    loaded, meta = load_model(tmp_path, 1)
    assert type(loaded).__name__ == "MultitaskNet" and loaded.cam_layer == "encoder.8"
    assert model_description(meta) == "none (random init), multitask, partial"


def test_a_moved_model_module_is_a_checkpoint_error_naming_the_file(tmp_path):
    from pixel_evidence.models import CheckpointError, load_model, save_checkpoint

    copy = tmp_path / "mine.py"
    shutil.copy(EXAMPLE, copy)
    net = ModelRecipe(kind="classifier", model_module=f"{copy}:build").build(2, image_size=32)
    meta = {"backbone": "custom", "kind": "classifier", "model_module": f"{copy}:build", "classes": ["a", "b"],
            "image_size": 32, "manifest_sha256": "0" * 64, "final_metrics": {},
            "normalization": {"mean": [0.5] * 3, "std": [0.5] * 3}}
    save_checkpoint(tmp_path, 1, net.state_dict(), meta)
    assert load_model(tmp_path, 1)[0].cam_layer == "features.2"
    copy.unlink()
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path, 1)
    assert "\n" not in str(err.value) and "seed_1.json" in str(err.value) and f"no file {copy}" in str(err.value)


@pytest.mark.parametrize("cam_layer", [None, "encoder.layer3"])
def test_the_reconstruction_reads_the_captured_layer_only_when_it_is_the_encoder_output(cam_layer):
    torch.manual_seed(0)
    net = ModelRecipe(backbone="resnet18", cam_layer=cam_layer).build(2, image_size=32).eval()
    x = torch.randn(1, 3, 32, 32)
    seen = []
    handle = net.gradcam_layer.register_forward_hook(lambda module, args, output: seen.append(output))
    with torch.no_grad():
        _, expected = net(x)
        handle.remove()
        torch.testing.assert_close(net.mask_logits(x, seen[0]), expected)

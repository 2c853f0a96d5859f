"""Each data layout from a tiny tree through the manifest, one epoch of training at 64 px,
one explained image and its scores; on mask-free data the mask scores are "needs masks"
(NaN, and said so) while agreement, deletion/insertion and the randomization check work."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from pixel_evidence.cli import main
from pixel_evidence.evaluate import NEEDS_MASKS
from tests.layout_trees import (make_bmad_tree, make_btech_tree, make_folders_tree, make_kolektor_tree, make_loco_tree,
                                make_mask_folder_tree, make_masks_tree, make_mvtec2_tree, make_realiad_tree,
                                make_visa_tree)

# 64 px, not 32: at 32 px the encoder's last map is 1x1 and after one epoch its ReLU6 outputs
# are all 0, so every map is 0 and no agreement can be measured.
SIZE = 64
BUILDERS = {"masks": lambda root: make_masks_tree(root, size=SIZE),
            "folders": lambda root: make_folders_tree(root, size=SIZE),
            "visa": lambda root: make_visa_tree(root, n_normal=6, n_anomaly=6, size=SIZE),
            # the published anomaly-inspection sets and the tools' folder format (tests/data/test_anomaly_sets.py)
            "mvtec2": lambda root: make_mvtec2_tree(root, size=SIZE),
            "loco": lambda root: make_loco_tree(root, size=SIZE),
            "autovi": lambda root: make_loco_tree(root, size=SIZE, mask_digits=4, validation=False),
            "bmad": lambda root: make_bmad_tree(root, size=SIZE),
            "btech": lambda root: make_btech_tree(root, size=SIZE),
            "kolektor": lambda root: make_kolektor_tree(root, size=SIZE),
            "realiad": lambda root: make_realiad_tree(root, size=SIZE),
            "mask-folder": lambda root: make_mask_folder_tree(root, n=6, size=SIZE)}


@pytest.fixture(scope="module")
def one_thread():
    """Tiny inputs: more torch threads only wait on each other (and on the other jobs)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def trained(request, tmp_path_factory, one_thread):
    """(layout, data folder, models folder) after one epoch of one seed, through the command line (one
    batch per epoch: a last batch of one image cannot pass batch norm's training mode)."""
    layout = request.param
    base = tmp_path_factory.mktemp(layout)
    root = BUILDERS[layout](base / "data")
    models = base / "models"
    assert main(["train", "--data", str(root), "--layout", layout, "--models", str(models), "--seeds", "3",
                 "--epochs", "1", "--image-size", str(SIZE), "--batch-size", "32", "--device", "cpu"]) == 0
    return layout, root, models


@pytest.fixture(scope="module")
def engine_on(trained):
    from pixel_evidence.engine.explain import ExplanationEngine

    layout, root, models = trained
    eng = ExplanationEngine(root, models, device="cpu", method_params={"ig": {"n_steps": 4}})
    yield layout, eng
    eng.close()


@pytest.fixture(scope="module")
def engine(engine_on):
    """The engine the ``dash`` fixture (tests/conftest.py) builds the dashboard on."""
    return engine_on[1]


def test_one_image_is_explained_and_scored(engine_on):
    layout, eng = engine_on
    assert eng.catalogue.has_masks == (layout != "folders")
    if layout == "folders":
        image_id = eng.catalogue.image_ids("test")[0]
    else:
        image_id = next(i for i in eng.catalogue.image_ids("test") if eng.catalogue.sample(i).has_mask)
    ex = eng.explain(3, image_id, split="test", methods=["saliency", "ig"])
    assert set(ex.methods) == {"saliency", "ig"}
    tkos = [r.tko for r in ex.methods.values()]
    if layout == "folders":  # no mask: needs masks, never 0
        assert ex.k == 0 and all(math.isnan(t) for t in tkos)
    else:
        assert ex.k > 0 and all(0 <= t <= 1 for t in tkos)
    spearman = ex.agreement()[0]["spearman"]
    assert -1 <= spearman <= 1


@pytest.mark.parametrize("trained", ["folders"], indirect=True)
def test_mask_free_evaluation_leaves_mask_scores_empty_and_says_why(engine_on, tmp_path, capsys):
    _, eng = engine_on
    out = tmp_path / "results"
    assert main(["evaluate", "--data", str(eng.catalogue.data_root), "--layout", "folders",
                 "--models", str(eng.pool.models_dir),
                 "--out", str(out), "--splits", "test", "--methods", "saliency", "ig", "--ig-tolerance", "0", "--ig-steps", "4",
                 "--metrics", "pointing", "auroc", "agreement", "faithfulness", "sanity", "--sanity-images", "1",
                 "--faithfulness-steps", "4", "--device", "cpu"]) == 0
    assert "needs masks" in capsys.readouterr().out
    table = pd.read_csv(out / "tko_table.csv")
    assert len(table) == 2 * len(eng.catalogue.image_ids("test"))  # every image has maps, not only masked ones
    for column in ("tko", "lift", "iou", "pointing", "auroc", "win_share"):
        assert table[column].isna().all(), column
    summary = json.loads((out / "summary.json").read_text())
    assert summary["column_notes"]["tko_table.csv"]["tko"] == NEEDS_MASKS
    assert summary["column_notes"]["win_rates.csv"]["win_rate"] == NEEDS_MASKS
    assert pd.read_csv(out / "agreement.csv")["spearman"].notna().all()
    assert pd.read_csv(out / "faithfulness.csv")[["deletion_auc", "insertion_auc"]].notna().all().all()
    assert pd.read_csv(out / "sanity.csv")["spearman"].notna().any()


def test_training_without_masks_leaves_the_mask_loss_out():
    import torch

    from pixel_evidence.models.train import multitask_loss

    logits = torch.randn(4, 3, requires_grad=True)
    mask_logits = torch.randn(4, 1, 8, 8, requires_grad=True)
    labels, masks, weights = torch.tensor([0, 1, 2, 0]), torch.zeros(4, 1, 8, 8), torch.ones(3)
    loss, ce, bce = multitask_loss(logits, mask_logits, labels, masks, weights, 1.0, has_masks=False)
    loss.backward()
    assert loss is ce and float(bce) == 0 and mask_logits.grad is None
    with_masks, _, bce = multitask_loss(logits, mask_logits, labels, masks, weights, 1.0)
    assert float(bce.detach()) > 0 and float(with_masks.detach()) > float(ce.detach())


@pytest.mark.parametrize("trained", ["loco"], indirect=True)
def test_united_masks_are_evaluated(engine_on, tmp_path):
    """LOCO's images with two masks are scored against their union, through ``evaluate``."""
    import numpy as np

    _, eng = engine_on
    out = tmp_path / "results"
    assert main(["evaluate", "--data", str(eng.catalogue.data_root), "--layout", "loco",
                 "--models", str(eng.pool.models_dir),
                 "--out", str(out), "--splits", "test", "train", "--methods", "saliency", "--device", "cpu"]) == 0
    table = pd.read_csv(out / "tko_table.csv")
    united = table[table["image_id"].isin(["logical_anomalies-000", "logical_anomalies-002",
                                           "logical_anomalies-004"])]
    assert len(united) == 3 and united["tko"].between(0, 1).all()
    for row in united.itertuples():
        files = sorted((eng.catalogue.data_root / eng.catalogue.sample(row.image_id).mask_path).iterdir())
        assert len(files) == 2
        assert row.k == eng.catalogue.load([eng.catalogue.sample(row.image_id)], SIZE)[1].sum() > 0
    assert np.isfinite(table.loc[table["k"] > 0, "tko"]).all()


@pytest.mark.parametrize("trained", ["folders", "masks", "loco", "mask-folder"], indirect=True)
def test_dashboard_hides_the_mask_scores_of_mask_free_data_behind_a_notice(trained, engine, dash):
    from pixel_evidence.dashboard.image_html import NEEDS_MASKS_NOTICE
    from pixel_evidence.dashboard.summary.view import SUMMARY_NEEDS_MASKS

    mask_free = trained[0] == "folders"
    image_id = next(i for i in engine.catalogue.image_ids("test") if mask_free or engine.catalogue.sample(i).has_mask)
    dash.state.go_to(image_id)
    assert dash.store.explanation.image_id == image_id
    view = dash.image_view
    assert view._needs_masks.visible == mask_free and view._needs_masks.object == NEEDS_MASKS_NOTICE
    assert view._ranking.visible == view._legend.visible == (not mask_free)
    assert view._rows and all(row.topk_pane.visible == (not mask_free) for row in view._rows.values())
    cards = [row.card.object for row in view._rows.values()]
    assert all(('class="pe-tko"' in card) == (not mask_free) for card in cards)
    assert ("Defect:" in view._pred.object) == (not mask_free)
    summary = dash.summary
    assert (SUMMARY_NEEDS_MASKS in summary._notice.object) == mask_free
    shown = [id(o) for o in summary._layout.objects]  # a section is shown as its column
    assert (id(summary.win._column) in shown and id(summary.tko._column) in shown) == (not mask_free)
    assert id(summary.agreement._column) in shown

"""SIDU against its formula written out channel by channel, its determinism, and the
evaluate command running it (``--methods sidu``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial.distance import cdist
from skimage.transform import resize
from torch.nn import functional as F

from pixel_evidence.cli import main
from pixel_evidence.engine.explain import ExplanationEngine
from pixel_evidence.explainers import REGISTRY
from pixel_evidence.explainers.sidu import SIDU, upsample_mirrored
from tests.explainers.nets import layer_output, make
from tests.rounding import assert_same_but_for_order, in_float64, reordering_allowance


def sidu_as_the_authors_code(net, image, target, threshold=0.1, kernel_width=0.25, p1=0.5):
    """``explain_SIDU`` and ``generate_masks_conv_output`` of SIDU_XAI.py (satyamahesh84/
    SIDU_XAI_CODE at dca19f3, 2022-02-27) transcribed to numpy in float64 for one image
    (3, H, W): every channel's mask binarised at ``> threshold`` and resized with skimage at
    full size, one forward each, scipy's cdist, their min-max with its 1e-13, and /N/p1."""
    with torch.no_grad():
        acts, scores = layer_output(net, image[None])
    conv = acts[0].double().numpy()  # (N, h, w)
    size = tuple(image.shape[-2:])
    masks = np.stack([resize((c > threshold).astype("float32"), size, order=1, mode="reflect", anti_aliasing=False)
                      for c in conv])
    with torch.no_grad():
        pred_org = scores.softmax(1).double().numpy()  # (1, C)
        preds = np.concatenate([net((image * torch.from_numpy(m))[None]).softmax(1).double().numpy() for m in masks])
    weights = np.sqrt(np.exp(-(np.abs(pred_org - preds) ** 2) / kernel_width ** 2))  # (N, C)
    totals = cdist(preds, preds).sum(axis=1)
    uniqueness = (totals - totals.min()) / (totals.max() - totals.min() + 1e-13)
    sal = (weights * uniqueness[:, None]).T.dot(masks.reshape(len(masks), -1)).reshape(-1, *size)
    return sal[target] / len(masks) / p1


@pytest.mark.parametrize("threshold, shared", [(None, False), (0.5, True)])
def test_sidu_equals_the_authors_code(net, batch, threshold, shared):
    """At the code's own settings (threshold 0.1, the default) and at its earlier 0.5."""
    net, x = in_float64(net, batch[0])
    target = batch[1]
    settings = {} if threshold is None else {"threshold": threshold}
    with torch.no_grad():
        acts, _ = layer_output(net, x)
    patterns = [len(torch.unique((a > (threshold or 0.1)).flatten(1), dim=0)) for a in acts]
    # at 0.5 most channels are empty (one pattern scored for all of them), at 0.1 none are alike
    assert all(1 < d and (d < acts.shape[1]) == shared for d in patterns)
    maps = make(SIDU, net, batch_size=3, **settings).attribute(x, target).maps
    for b in range(len(x)):
        expected = sidu_as_the_authors_code(net, x[b], int(target[b]), **settings) * 0.5  # without their /p1
        assert expected.max() > 0
        # float64 on both sides, rounded to float32 on ours; their 1e-13 in U's denominator moves
        # U by < 1e-13 / span (span > 1e-4 of the totals in the batching test's check): far below
        np.testing.assert_allclose(maps[b].numpy(), expected, rtol=0,
                                   atol=reordering_allowance(torch.from_numpy(expected)))


def test_sidu_upsamples_as_skimage_resize_with_mirrored_edges():
    # 7 -> 224 as on the shipped models, and sizes that do not divide
    for shape, size in [((7, 7), (224, 224)), ((2, 3), (16, 16)), ((5, 4), (17, 23)), ((1, 3), (8, 8))]:
        grid = np.random.default_rng(0).random(shape)
        expected = resize(grid, size, order=1, mode="reflect", anti_aliasing=False)
        np.testing.assert_allclose(upsample_mirrored(torch.from_numpy(grid), size).numpy(), expected,
                                   rtol=0, atol=1e-15)
    # and unlike torch's edge-clamped bilinear, the outer half cell differs
    grid = torch.from_numpy(np.random.default_rng(1).random((7, 7)))
    clamped = F.interpolate(grid[None, None], size=(224, 224), mode="bilinear", align_corners=False)[0, 0]
    differs = (upsample_mirrored(grid, (224, 224)) - clamped).abs() > 1e-12
    assert differs[16:208, 16:208].sum() == 0 and differs.float().mean() > 0.2


def test_sidu_is_deterministic_and_independent_of_the_batching(net, batch):
    x, target = batch
    first = make(SIDU, net).attribute(x, target).maps
    assert torch.equal(make(SIDU, net).attribute(x, target).maps, first)
    # batching independence in float64, where a reordered sum cannot move the float32 result
    # by more than one ulp (tests/rounding.py); U's min-max, which divides by the spread of the
    # channels' totals, must not amplify by more than the allowance assumes
    net64, x64 = in_float64(net, x)
    batched = make(SIDU, net64).attribute(x64, target).maps
    one_at_a_time = make(SIDU, net64, batch_size=1).attribute(x64, target).maps
    with torch.no_grad():
        acts, _ = layer_output(net64, x64)
        for image, image_acts in zip(x64, acts):
            masks = upsample_mirrored((image_acts[:, None] > 0.1).double(), tuple(image.shape[-2:]))
            totals = torch.cdist(*[net64(image * masks).softmax(1)[None]] * 2)[0].sum(1)
            assert totals.max() - totals.min() > 1e-4 * totals.max()
    assert_same_but_for_order(one_at_a_time, batched)
    # and the float32 run is the float64 one rounded, up to float32's own summation error
    # (the layer's sums of <= 54 terms and the head's of 512: well under 1e-4 of the maximum)
    torch.testing.assert_close(first, batched, rtol=0, atol=1e-4 * float(batched.max()))


def test_sidu_explains_the_class_it_is_given(net, batch):
    x, _ = batch
    by_class = [make(SIDU, net).attribute(x, torch.full((2,), c)).maps for c in range(3)]
    assert not torch.equal(by_class[0], by_class[1]) and not torch.equal(by_class[1], by_class[2])


def test_sidu_is_registered_and_checks_its_parameters(net, batch):
    x, target = batch
    assert REGISTRY["sidu"] is SIDU and SIDU.slow
    with pytest.raises(ValueError, match="sigma"):
        make(SIDU, net, sigma=0).attribute(x, target)
    with pytest.raises(ValueError, match="no parameter"):
        SIDU(net, net.block, seed=1)


def test_evaluate_cli_runs_sidu(tiny_run, tmp_path, capsys):
    root, models = tiny_run[0], tiny_run[1]
    out = tmp_path / "res"
    code = main(["evaluate", "--data", str(root), "--models", str(models), "--out", str(out), "--seeds", "7",
                 "--splits", "test", "--methods", "gradcam", "sidu", "--device", "cpu"])
    assert code == 0 and "SIDU" in capsys.readouterr().out
    table = pd.read_csv(out / "tko_table.csv")
    assert set(table.method) == {"gradcam", "sidu"}
    row = table[(table.method == "sidu") & (table.k > 0)].iloc[0]
    engine = ExplanationEngine(root, models, device="cpu")
    try:
        ex = engine.explain(7, row["image_id"], split="test", methods=["gradcam", "sidu"])
    finally:
        engine.close()
    assert row["tko"] == pytest.approx(ex.methods["sidu"].tko, abs=1e-9)
    assert ex.methods["sidu"].map.max() > 0

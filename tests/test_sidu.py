"""SIDU against its formula written out channel by channel, its determinism, and the
evaluate command running it (``--methods sidu``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from engine.cli import main
from engine.explain import ExplanationEngine
from engine.explainers import REGISTRY
from engine.explainers.sidu import SIDU
from rounding import assert_same_but_for_order, in_float64
from test_explainers_extra import batch, layer_output, make, net  # noqa: F401 - fixtures, used by name

SIGMA = 0.25


def sidu_by_hand(net, image, target, threshold):
    """The reference code's steps for one image (3, H, W), every channel on its own, no
    shortcut: a mask per channel at full size, one forward each, SD and U in float64."""
    with torch.no_grad():
        acts, scores = layer_output(net, image[None])
    p0 = scores.softmax(1)[0].double().numpy()
    masks = F.interpolate((acts[0, :, None] > threshold).float(), size=image.shape[-2:], mode="bilinear",
                          align_corners=False)[:, 0]
    with torch.no_grad():
        probs = np.stack([net((image * m)[None]).softmax(1)[0].double().numpy() for m in masks])
    n = len(probs)
    sd = np.sqrt(np.exp(-(p0[target] - probs[:, target]) ** 2 / SIGMA ** 2))
    totals = np.array([sum(np.sqrt(((probs[i] - probs[j]) ** 2).sum()) for j in range(n)) for i in range(n)])
    u = (totals - totals.min()) / (totals.max() - totals.min())
    return sum(sd[i] * u[i] * masks[i].double().numpy() for i in range(n)) / n


@pytest.mark.parametrize("threshold, shared", [(0.5, True), (0.1, False)])
def test_sidu_equals_the_formula_channel_by_channel(net, batch, threshold, shared):
    x, target = batch
    with torch.no_grad():
        acts, _ = layer_output(net, x)
    patterns = [len(torch.unique((a > threshold).flatten(1), dim=0)) for a in acts]
    # at 0.5 most channels are empty (one pattern scored for all of them), at 0.1 none are alike
    assert all(1 < d and (d < acts.shape[1]) == shared for d in patterns)
    maps = make(SIDU, net, threshold=threshold, batch_size=3).attribute(x, target).maps
    for b in range(len(x)):
        expected = sidu_by_hand(net, x[b], int(target[b]), threshold)
        # float32 forwards of the same masked images in batches of other sizes (ulps of the
        # probabilities), and float32 sums of <= 8 terms against float64: well under 1e-5
        # of the largest value
        np.testing.assert_allclose(maps[b].numpy(), expected, rtol=0, atol=1e-5 * expected.max())
        assert expected.max() > 0


def test_sidu_is_deterministic_and_independent_of_the_batching(net, batch):
    x, target = batch
    first = make(SIDU, net, threshold=0.1).attribute(x, target).maps
    assert torch.equal(make(SIDU, net, threshold=0.1).attribute(x, target).maps, first)
    # batching independence in float64, where a reordered sum cannot move the float32 result
    # by more than one ulp (tests/rounding.py); U's min-max, which divides by the spread of the
    # channels' totals, must not amplify by more than the allowance assumes
    net64, x64 = in_float64(net, x)
    batched = make(SIDU, net64, threshold=0.1).attribute(x64, target).maps
    one_at_a_time = make(SIDU, net64, threshold=0.1, batch_size=1).attribute(x64, target).maps
    with torch.no_grad():
        acts, _ = layer_output(net64, x64)
        for image, image_acts in zip(x64, acts):
            masks = F.interpolate((image_acts[:, None] > 0.1).double(), size=image.shape[-2:], mode="bilinear")
            totals = torch.cdist(*[net64(image * masks).softmax(1)[None]] * 2)[0].sum(1)
            assert totals.max() - totals.min() > 1e-4 * totals.max()
    assert_same_but_for_order(one_at_a_time, batched)
    # and the float32 run is the float64 one rounded, up to float32's own summation error
    # (the layer's sums of <= 54 terms and the head's of 512: well under 1e-4 of the maximum)
    torch.testing.assert_close(first, batched, rtol=0, atol=1e-4 * float(batched.max()))


def test_sidu_explains_the_class_it_is_given(net, batch):
    x, _ = batch
    by_class = [make(SIDU, net, threshold=0.1).attribute(x, torch.full((2,), c)).maps for c in range(3)]
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
        ex = engine.explain(7, "test", row["image_id"], ["gradcam", "sidu"])
    finally:
        engine.close()
    assert row["tko"] == pytest.approx(ex.methods["sidu"].tko, abs=1e-9)
    assert ex.methods["sidu"].map.max() > 0

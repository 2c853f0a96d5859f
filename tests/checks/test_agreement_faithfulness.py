"""Agreement metrics, deletion/insertion curves and the randomization sanity check."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from pixel_evidence.checks.faithfulness import perturbation_curve, pixel_order, reference_image
from pixel_evidence.checks.sanity import cascading_randomization
from pixel_evidence.metrics import (SANITY_PASS_THRESHOLD, agreement, curve_auc, pearson, spearman, top_fraction_iou,
                                    top_fraction_membership)

# ------------------------------------------------------------------ agreement

def test_pearson_and_spearman_against_numpy():
    rng = np.random.default_rng(0)
    a = rng.random((6, 7))
    b = a ** 3 + 0.1 * rng.random((6, 7))
    assert pearson(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    # a monotone transform keeps Spearman at 1 but not Pearson
    assert spearman(a, np.exp(5 * a)) == pytest.approx(1.0)
    assert pearson(a, np.exp(5 * a)) < 0.99
    # ties: ranks are averaged, so a two-level map against itself is still 1
    t = np.array([[0, 0, 1], [1, 1, 0]], float)
    assert spearman(t, t) == pytest.approx(1.0)
    assert spearman(t, 1 - t) == pytest.approx(-1.0)
    assert math.isnan(pearson(np.ones((3, 3)), a[:3, :3]))
    with pytest.raises(ValueError):
        pearson(np.ones((2, 2)), np.ones((3, 3)))


def test_top_fraction_iou_plain_and_tied():
    a = np.arange(10, dtype=float)            # top 20% = pixels 8, 9
    b = np.array([0, 0, 0, 0, 0, 0, 0, 9, 8, 0], float)  # top 20% = pixels 7, 8
    assert top_fraction_iou(a, b) == pytest.approx(1 / 3)
    assert top_fraction_iou(a, a) == 1.0
    const = np.zeros(10)
    w = top_fraction_membership(const)
    assert w.sum() == pytest.approx(2) and np.allclose(w, 0.2)
    # a constant map against a sharp one: min sums to 0.2 + 0.2, max to 1 + 1 + 8 * 0.2
    assert top_fraction_iou(const, a) == pytest.approx(0.4 / 3.6)


def test_agreement_lists_every_pair():
    maps = {"x": np.eye(4), "y": np.eye(4), "z": np.fliplr(np.eye(4))}
    rows = agreement(maps)
    assert [(r["a"], r["b"]) for r in rows] == [("x", "y"), ("x", "z"), ("y", "z")]
    assert rows[0]["pearson"] == pytest.approx(1) and rows[0]["top_iou"] == pytest.approx(1)


def test_agreement_equals_the_pairwise_functions():
    rng = np.random.default_rng(3)
    maps = {k: np.round(rng.gamma(1.0, size=(9, 7)), 1) for k in "abcd"}  # rounding makes ties
    for row in agreement(maps, fraction=0.3):
        a, b = maps[row["a"]], maps[row["b"]]
        assert row["pearson"] == pytest.approx(pearson(a, b), abs=1e-12)
        assert row["spearman"] == pytest.approx(spearman(a, b), abs=1e-12)
        assert row["top_iou"] == pytest.approx(top_fraction_iou(a, b, 0.3), abs=1e-12)
    assert agreement({}) == [] and agreement({"only": maps["a"]}) == []
    with pytest.raises(ValueError, match="different sizes"):
        agreement({"a": maps["a"], "b": np.zeros((3, 3))})


def test_curve_auc():
    assert curve_auc([0, 0.5, 1], [1, 1, 1]) == pytest.approx(1)
    assert curve_auc([0, 1], [1, 0]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        curve_auc([0], [1])


# ------------------------------------------------------------------ deletion / insertion

class LeftHalf(nn.Module):
    """Class-1 logit = mean of the left half of channel 0; class 0 logit fixed at 0."""

    def forward(self, x):
        left = x[:, 0, :, : x.shape[-1] // 2].mean((1, 2)) * 10
        return torch.stack([torch.zeros_like(left), left], 1)


def test_deleting_what_the_model_looks_at_drops_the_probability_fastest():
    x = torch.ones(1, 3, 8, 8)
    net = LeftHalf()
    left_map = np.zeros((8, 8))
    left_map[:, :4] = 1.0
    right_map = 1.0 - left_map
    kwargs = dict(mode="deletion", start="black", steps=8, mean=(0.5,) * 3, std=(0.5,) * 3)
    good = perturbation_curve(net, x, left_map, 1, **kwargs)
    bad = perturbation_curve(net, x, right_map, 1, **kwargs)
    assert good.probabilities[0] == pytest.approx(bad.probabilities[0])
    assert good.auc < bad.auc
    # deleting the left half (first 4 of 8 steps) takes the logit to black (-1 * 10)
    assert good.probabilities[4] == pytest.approx(torch.sigmoid(torch.tensor(-10.0)).item(), abs=1e-6)
    assert bad.probabilities[4] == pytest.approx(bad.probabilities[0])
    ins_good = perturbation_curve(net, x, left_map, 1, **{**kwargs, "mode": "insertion"})
    ins_bad = perturbation_curve(net, x, right_map, 1, **{**kwargs, "mode": "insertion"})
    assert ins_good.auc > ins_bad.auc
    assert list(good.fractions) == [i / 8 for i in range(9)]


def test_pixel_order_breaks_ties_by_seed_not_position():
    a = np.zeros(100)
    a[[5, 50]] = 1
    order = pixel_order(a, seed=1)
    assert set(order[:2]) == {5, 50}
    assert not np.array_equal(pixel_order(a, 1)[2:], np.arange(100)[~np.isin(np.arange(100), [5, 50])])
    assert np.array_equal(pixel_order(a, 1), pixel_order(a, 1))


def test_blur_reference_is_smooth():
    x = torch.zeros(1, 3, 32, 32)
    x[..., ::2, :] = 1
    blurred = reference_image(x, "blur", (0,) * 3, (1,) * 3)
    assert blurred.std() < 0.25 * x.std()
    with pytest.raises(ValueError):
        reference_image(x, "grey", (0,) * 3, (1,) * 3)


# ------------------------------------------------------------------ sanity check

@pytest.fixture(scope="module")
def trained_tiny(tiny_run):
    from pixel_evidence.data import load_image, to_normalized_tensor
    from pixel_evidence.models import load_model

    root, models = tiny_run[0], tiny_run[1]
    net, meta = load_model(models, 7)
    from pixel_evidence.data import read_manifest
    sample = next(s for s in read_manifest(tiny_run[2]) if s.cls != "good")
    x = to_normalized_tensor(load_image(root, sample, 64), **meta["normalization"])
    return net, meta, x


@pytest.mark.parametrize("method", ["saliency", "gradcam"])
def test_randomization_changes_gradient_maps(trained_tiny, method):
    net, meta, x = trained_tiny
    before = {k: v.clone() for k, v in net.state_dict().items()}
    res = cascading_randomization(net, method, x, 0, **meta["normalization"], seed=3)
    assert [s.layer for s in res.steps][:3] == ["classifier", "encoder.8", "encoder.7"]
    assert len(res.steps) == 10
    assert res.steps[-1].spearman < 0.9  # the fully random network gives another map
    assert res.passed == (abs(res.final_spearman) < SANITY_PASS_THRESHOLD)
    # the trained network itself is untouched, and the result is seeded
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    again = cascading_randomization(net, method, x, 0, **meta["normalization"], seed=3)
    assert [s.spearman for s in again.steps] == [s.spearman for s in res.steps]


def test_a_map_that_ignores_the_weights_fails(trained_tiny, monkeypatch):
    """An 'explainer' that returns the image's brightness never changes: it must fail."""
    from pixel_evidence.explainers import REGISTRY
    from pixel_evidence.explainers.base import Attribution, Explainer

    class Brightness(Explainer):
        key, label = "brightness", "Brightness"

        def _attribute(self, inputs, target):
            return Attribution(inputs.detach().mean(1).exp())  # positive, so no clamping

    monkeypatch.setitem(REGISTRY, "brightness", Brightness)
    net, meta, x = trained_tiny
    res = cascading_randomization(net, "brightness", x, 0, **meta["normalization"])
    assert res.final_spearman == pytest.approx(1.0) and not res.passed

"""Network Dissection: a planted unit that fires exactly on one class's masks, the thresholds
against numpy's percentile, the IoU sums against a direct per-image computation, and the
``dissect`` command (table, resume, a bad stage)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pixel_evidence.dissection import units as dissection
from pixel_evidence.dissection.units import DETECTOR_IOU, QUANTILE, dissect, unit_thresholds
from pixel_evidence.models.network import ExplainableNet

SIZE = 16


class ToyNet(ExplainableNet):
    """Two stages: ``encoder.0`` a 1x1 conv whose units read given input channels (full
    resolution, so upsampling is the identity), ``encoder.1`` a 2x2 average pool of it."""

    def __init__(self, weights: torch.Tensor):
        super().__init__("encoder.1")
        conv = nn.Conv2d(weights.shape[1], weights.shape[0], 1, bias=False)
        conv.weight.data = weights[:, :, None, None].float()
        self.encoder = nn.Sequential(conv, nn.AvgPool2d(2))
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(weights.shape[0], 2))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(x))

    def encoder_stages(self):
        return [(f"encoder.{name}", m) for name, m in self.encoder.named_children()]

    def head(self):
        return [("classifier", self.classifier)]


def _batches(x, masks, concepts, size):
    for i in range(0, len(x), size):
        yield x[i:i + size], masks[i:i + size], concepts[i:i + size]


def _planted_split(rng):
    """40 images: 20 of no concept, 10 "crack" and 10 "hole", each defect a 2x2 square. Input
    channel 0 is 1 on the crack masks only, channels 1-2 uniform noise everywhere."""
    n = 40
    concepts = torch.tensor([-1] * 20 + [0] * 10 + [1] * 10)
    masks = torch.zeros(n, SIZE, SIZE, dtype=torch.bool)
    for i in range(20, n):
        r, c = rng.integers(0, SIZE - 1, size=2)
        masks[i, r:r + 2, c:c + 2] = True
    x = torch.from_numpy(rng.random((n, 3, SIZE, SIZE))).float()
    x[:, 0] = (masks & (concepts == 0)[:, None, None]).float()
    return x, masks, concepts


def test_a_planted_unit_that_fires_on_the_crack_masks_scores_one_and_the_others_about_zero():
    rng = np.random.default_rng(0)
    x, masks, concepts = _planted_split(rng)
    # unit 0 = channel 0 (the planted one); units 1-3 read only the noise
    net = ToyNet(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1]])).eval()
    result = dissect(net, "encoder.0", _batches(x, masks, concepts, 7), ("crack", "hole"))
    # 40 crack pixels of 40 x 256 = 10240 positions (0.39% < 0.5%): the 99.5% quantile falls
    # among the zeros, so T_0 = 0 and unit 0 fires exactly on the crack masks
    assert result.thresholds[0] == 0.0
    assert result.iou[0, 0] == 1.0
    assert result.iou[0, 1] == 0.0  # it never fires on a hole image
    # A noise unit fires on the 52 positions above its quantile (the order statistics 10188 to
    # 10239 of 10240), wherever they fall: its hits on the 40 pixels of a class are about
    # Binomial(40, 0.005), mean 0.2, and P(>= 3 hits) is about 1e-3 per pair. Three hits would
    # give 3 / (52 + 40 - 3) = 0.034: below that, and no detector.
    assert np.all(result.iou[1:] < 0.035)
    assert result.detectors.tolist() == [[True, False]] + [[False, False]] * 3


def test_thresholds_equal_numpys_percentile(monkeypatch):
    acts = torch.from_numpy(np.random.default_rng(1).normal(size=(5, 7, 6, 9))).float()
    acts[:, 2] = 0.5  # a constant unit: ties everywhere
    monkeypatch.setattr(dissection, "UPSAMPLED_ELEMENTS", 2 * 5 * 6 * 9)  # two units per chunk
    ours = unit_thresholds(acts)
    direct = [np.percentile(acts[:, k].numpy().astype(np.float64).ravel(), 100 * QUANTILE) for k in range(7)]
    # both interpolate in float64 between the same two float32 order statistics: equal to a few ulps
    np.testing.assert_allclose(ours.numpy(), direct, rtol=1e-12, atol=0)


def test_iou_sums_equal_a_direct_per_image_computation(monkeypatch):
    rng = np.random.default_rng(2)
    n, concepts_named = 30, ("crack", "hole", "print")
    x = torch.from_numpy(rng.random((n, 3, SIZE, SIZE))).float()
    concepts = torch.from_numpy(rng.integers(-1, 3, size=n))
    masks = torch.from_numpy(rng.random((n, SIZE, SIZE)) < 0.5)
    masks[concepts == -1] = False
    net = ToyNet(torch.from_numpy(rng.normal(size=(5, 3)))).eval()
    monkeypatch.setattr(dissection, "UPSAMPLED_ELEMENTS", 3 * SIZE * SIZE)  # several chunks per batch
    result = dissect(net, "encoder.1", _batches(x, masks, concepts, 5), concepts_named)

    with torch.no_grad():
        acts = net.encoder(x)  # (n, 5, 8, 8) float32, the values the network gives
    thresholds = [np.percentile(acts[:, k].numpy().astype(np.float64).ravel(), 100 * QUANTILE) for k in range(5)]
    inter, union = np.zeros((5, 3)), np.zeros((5, 3))
    for i in range(n):
        for k in range(5):
            up = F.interpolate(acts[i, k][None, None], size=(SIZE, SIZE), mode="bilinear",
                               align_corners=False)[0, 0].numpy()
            a = up > np.float32(thresholds[k])  # float32 maps against the threshold in float32
            for c in range(3):
                s = masks[i].numpy() if concepts[i] == c else np.zeros_like(a)  # empty off its class
                inter[k, c] += np.sum(a & s)
                union[k, c] += np.sum(a | s)
    np.testing.assert_allclose(result.thresholds, thresholds, rtol=1e-12)  # see the percentile test
    assert not result.at_max.any()  # continuous values: no ties, so ">" is the whole rule
    # integer pixel counts on both sides, divided the same way: exactly equal
    np.testing.assert_array_equal(result.iou, inter / union)
    assert (result.detectors == (inter / union >= DETECTOR_IOU)).all()
    assert inter.sum() > 0  # the comparison is not vacuous


class ClampNet(ExplainableNet):
    """``encoder.0``: a strided 1x1 conv and ReLU6, so the stage is 8x8 (upsampled 2x to the
    masks) and its units are clamped at 6 like EfficientNet-lite's last block."""

    def __init__(self, weights: torch.Tensor, bias: torch.Tensor):
        super().__init__("encoder.0")
        conv = nn.Conv2d(weights.shape[1], weights.shape[0], 1, stride=2)
        conv.weight.data, conv.bias.data = weights[:, :, None, None].float(), bias.float()
        self.encoder = nn.Sequential(nn.Sequential(conv, nn.ReLU6()))
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(weights.shape[0], 2))

    def classify(self, x):
        return self.classifier(self.encoder(x))

    def encoder_stages(self):
        return [("encoder.0", self.encoder[0])]

    def head(self):
        return [("classifier", self.classifier)]


def test_a_planted_unit_that_saturates_fires_on_its_share_of_the_tie():
    # 20 crack images with a 4x4 defect and 20 of no concept: 320 of 10240 positions (3.1%)
    # read 1 on channel 0. Scaled by 10 and clamped at 6 they all sit at 6.0, so the 99.5%
    # quantile is 6.0 itself. Under ">" the unit never fires (IoU 0); under ">=" it fires on
    # all 320 (IoU 1, though 3.1% of positions is six times the budget). Tie-aware, the 320
    # share the budget of 0.5% x 10240 = 51.2 positions: intersection 51.2, union 320.
    rng = np.random.default_rng(4)
    n = 40
    concepts = torch.tensor([0] * 20 + [-1] * 20)
    masks = torch.zeros(n, SIZE, SIZE, dtype=torch.bool)
    for i in range(20):
        r, c = rng.integers(0, SIZE - 3, size=2)
        masks[i, r:r + 4, c:c + 4] = True
    x = torch.from_numpy(rng.random((n, 3, SIZE, SIZE))).float()
    x[:, 0] = masks.float()
    toy = ToyNet(torch.tensor([[10.0, 0, 0]])).eval()
    toy.encoder = nn.Sequential(nn.Sequential(toy.encoder[0], nn.ReLU6()), toy.encoder[1])  # a clamped stage
    result = dissect(toy, "encoder.0", _batches(x, masks, concepts, 8), ("crack",))
    assert result.thresholds[0] == 6.0 and result.at_max[0]
    assert result.tie_share[0] == pytest.approx(51.2 / 320, rel=1e-12)
    assert result.iou[0, 0] == pytest.approx(51.2 / 320, rel=1e-12) and result.detectors[0, 0]


def test_a_clamped_stage_equals_a_direct_tie_aware_computation():
    rng = np.random.default_rng(5)
    n, concepts_named = 24, ("crack", "hole")
    concepts = torch.from_numpy(rng.integers(-1, 2, size=n))
    masks = torch.from_numpy(rng.random((n, SIZE, SIZE)) < 0.3)
    masks[concepts == -1] = False
    x = torch.from_numpy(rng.random((n, 3, SIZE, SIZE))).float()
    # units whose values pass 6 on ~1-10% of positions: their thresholds sit on the clamp
    net = ClampNet(torch.from_numpy(rng.normal(2.0, 1.0, size=(6, 3))), torch.full((6,), 1.0)).eval()
    result = dissect(net, "encoder.0", _batches(x, masks, concepts, 5), concepts_named)
    with torch.no_grad():
        acts = net.encoder(x).double()  # (n, 6, 8, 8)
    assert result.at_max.sum() >= 3 and (result.thresholds[result.at_max] == 6.0).all()
    for k in range(6):
        values = acts[:, k].numpy().ravel()
        t = np.percentile(values, 100 * QUANTILE)
        above, tied = (values > t).sum(), (values == t).sum()
        floor = t == values.min()
        share = min(1.0, max(0.0, ((1 - QUANTILE) * values.size - above) / tied)) if tied and not floor else 0.0
        assert result.tie_share[k] == pytest.approx(share, rel=1e-12, abs=1e-15)
        inter, fired_all, mask_px = np.zeros(2), 0.0, np.zeros(2)
        for i in range(n):
            up = F.interpolate(acts[i, k][None, None], size=(SIZE, SIZE), mode="bilinear",
                               align_corners=False)[0, 0].numpy()
            fire = (up > t + 1e-9) + share * (np.abs(up - t) <= 1e-9)  # exact ties in float64
            fired_all += fire.sum()
            for c in range(2):
                if concepts[i] == c:
                    inter[c] += (fire * masks[i].numpy()).sum()
                    mask_px[c] += masks[i].numpy().sum()
        expected = inter / (fired_all + mask_px - inter)
        np.testing.assert_allclose(result.iou[k], expected, rtol=1e-12)
    # the rule this replaces (fire where > T) leaves every unit on the clamp blind
    assert (result.iou[result.at_max] > 0).any()


@pytest.mark.parametrize("union", ["all", "defect", "concept"])
def test_the_union_rules_sum_firing_over_the_images_they_name(union):
    rng = np.random.default_rng(6)
    n, concepts_named = 30, ("crack", "hole")
    x = torch.from_numpy(rng.random((n, 3, SIZE, SIZE))).float()
    concepts = torch.from_numpy(rng.integers(-1, 2, size=n))
    masks = torch.from_numpy(rng.random((n, SIZE, SIZE)) < 0.4)
    masks[concepts == -1] = False
    net = ToyNet(torch.from_numpy(rng.normal(size=(4, 3)))).eval()
    result = dissect(net, "encoder.0", _batches(x, masks, concepts, 7), concepts_named, union=union)
    with torch.no_grad():
        acts = net.encoder[0](x).numpy()  # full resolution: upsampling is the identity
    for k in range(4):
        fire = acts[:, k] > np.float32(result.thresholds[k])
        for c in range(2):
            counted = {"all": np.ones(n, bool), "defect": concepts.numpy() >= 0,
                       "concept": concepts.numpy() == c}[union]
            s = masks.numpy() & (concepts.numpy() == c)[:, None, None]
            inter = (fire & s)[counted].sum()
            assert result.iou[k, c] == inter / (fire | s)[counted].sum()


def test_a_bad_stage_is_one_line_naming_the_stages():
    net = ToyNet(torch.eye(3))
    with pytest.raises(ValueError, match=r"stage 'encoder.7' is not a stage .*encoder\.0, encoder\.1$"):
        dissect(net, "encoder.7", iter(()), ("crack",))


def test_dissect_command_writes_the_table_keeps_done_seeds_and_refuses_a_bad_stage(tiny_run, tmp_path, capsys):
    from pixel_evidence.cli import main
    from pixel_evidence.dissection.table import COLUMNS, detector_counts, read_dissection

    root, models, *_ = tiny_run
    out = tmp_path / "dissection"
    args = ["dissect", "--data", str(root), "--models", str(models), "--stage", "encoder.7", "--seeds", "7",
            "--out", str(out), "--device", "cpu"]
    assert main(args) == 0
    table = read_dissection(out)
    assert tuple(table.columns) == COLUMNS
    # the tiny set's test split has crack and hole masks; encoder.7 of lite0 has 320 units
    assert sorted(table["class"].unique()) == ["crack", "hole"]
    assert len(table) == 320 * 2 and set(table["seed"]) == {7} and set(table["split"]) == {"test"}
    assert table["iou"].between(0, 1).all()
    assert (table["detector"] == (table["iou"] >= DETECTOR_IOU)).all()
    per_seed = out / "per_seed" / "seed_7_test_encoder.7.csv"
    written = per_seed.stat().st_mtime_ns
    capsys.readouterr()

    assert main(args[:-4] + ["7", "8", "--out", str(out), "--device", "cpu"]) == 0
    assert "seed 7 encoder.7: kept" in capsys.readouterr().err
    assert per_seed.stat().st_mtime_ns == written
    table = read_dissection(out)
    assert set(table["seed"]) == {7, 8} and len(table) == 2 * 320 * 2
    counts = detector_counts(table)
    direct = table.groupby(["class", "seed"])["detector"].sum().groupby("class").agg(["mean", "std"])
    pd.testing.assert_series_equal(counts.set_index("class")["mean"], direct["mean"], check_names=False)
    assert not list(tmp_path.glob("**/*.tmp"))

    bad = args.copy()
    bad[bad.index("encoder.7")] = "encoder.99"
    assert main(bad) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --stage 'encoder.99' is not a stage of seed 7's network; choose one of encoder.0")
    assert sum(line.startswith("error:") for line in err) == 1


def test_the_units_tab_warns_where_a_threshold_sits_at_the_units_ceiling():
    from pixel_evidence.dashboard.units_view import counts_html, overlay_png, threshold_words
    from pixel_evidence.dissection.table import ceiling_shares, detector_counts

    table = pd.DataFrame({"seed": [42] * 4, "split": "test", "stage": ["encoder.8"] * 2 + ["<b>x</b>"] * 2,
                          "unit": [0, 1, 0, 1], "class": "crack", "iou": 0.05, "threshold": [6.0, 6.0, 2.5, 3.0],
                          "tie_share": [0.16, 0.5, 0.0, 0.0], "at_max": [True, False, False, False],
                          "detector": True})
    shares = ceiling_shares(table)
    assert shares.to_dict() == {"encoder.8": 0.5, "<b>x</b>": 0.0}
    page = counts_html(detector_counts(table), shares)
    assert page.count("pe-stage-at-max") == 1 and "50% of units at their ceiling" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    words = threshold_words(table.iloc[0].to_dict())
    assert "ceiling (6)" in words and "16% of the pixels" in words
    assert threshold_words(table.iloc[2].to_dict()) == "fires above 2.5"
    # a tied pixel is drawn between the image and the full firing colour
    image, mask = np.full((8, 8, 3), 128, np.uint8), np.zeros((8, 8), bool)
    strengths = [overlay_png(image, mask, np.full((8, 8), w)) for w in (0.0, 0.5, 1.0)]
    assert len(set(strengths)) == 3

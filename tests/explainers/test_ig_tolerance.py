"""Integrated Gradients to a tolerance (pixel_evidence/explainers/ig_path.py): the gap it reports
against a path integral known in closed form, the flag when the cap is reached, determinism,
the evaluate and dashboard options, and the words the page shows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from pixel_evidence import metrics
from pixel_evidence.choices import ig_params
from pixel_evidence.cli import main
from pixel_evidence.engine.explanation import PREVIOUS_MAP, _scalar_extras
from pixel_evidence.explainers.integrated_gradients import IntegratedGradients

STEEP, KNEE = 200.0, 0.04  # F rises in a width ~1/(STEEP * x) at alpha = KNEE / x: a spike in dF/dalpha


class SoftSteps(nn.Module):
    """Class 0 scores F(x) = sum_j sigmoid(STEEP (x_j - KNEE)), class 1 scores -F, like our
    network's score that stays flat, then rises steeply near the black baseline. Separable,
    so each pixel's exact IG from the zero baseline is f(x_j) - f(0)."""

    def forward(self, x):
        f = torch.sigmoid(STEEP * (x - KNEE)).flatten(1).sum(1)
        return torch.stack([f, -f], 1)


class HiddenJump(nn.Module):
    """F(x) = sum_j x_j^2 + floor(2 x_j): the floor's jumps have zero gradient, so no quadrature
    can account for them and the gap stays at their share of F(x) - F(0)."""

    def forward(self, x):
        f = (x ** 2 + torch.floor(2 * x)).flatten(1).sum(1)
        return torch.stack([f, -f], 1)


def _soft_step(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-STEEP * (v - KNEE)))


@pytest.fixture
def image():
    """Half the pixels at 0.8, half at 0.4: two soft steps on the path, at alpha 0.05 and 0.1."""
    x = torch.full((1, 3, 4, 4), 0.8)
    x[..., 2:] = 0.4
    return x


def test_the_scheme_reaches_its_tolerance_where_25_gauss_legendre_steps_do_not(image):
    target = torch.tensor([0])
    exact_pixels = (_soft_step(image[0].double().numpy()) - _soft_step(np.zeros(1))).sum(0)  # (H, W), all > 0
    change = exact_pixels.sum()

    fixed = IntegratedGradients(SoftSteps(), n_steps=25).attribute(image, target)
    fixed_gap = abs(fixed.maps.double().sum().item() - change) / change
    assert fixed_gap > 0.05  # the closed form, not the method's own bookkeeping, says 25 nodes miss

    tolerance = 0.01
    out = IntegratedGradients(SoftSteps(), tolerance=tolerance, max_steps=512).attribute(image, target)
    # every attribution is positive here, so the map's total is the signed total
    gap = abs(out.maps.double().sum().item() - change) / change
    # the reported gap is the closed-form one up to float32 sums of ~50 terms of ~1 (about 1e-6)
    assert out.extras["relative_delta"].item() == pytest.approx(gap, abs=1e-5)
    assert gap <= tolerance and out.extras["converged"].item() == 1
    assert gap <= out.extras["gap_bound"].item()
    assert 17 < out.extras["steps"].item() < 512


def cancelling_path(alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A hand-made path for ``integrate_to_tolerance``: the slope is 1 plus a narrow positive
    bump at alpha 0.578 and a narrow negative one at 0.383, the score its exact integral (erf).
    The 17-node grid misses both bumps; their errors cancel to 1.1% after the first refinement
    (which hits one of them), are 10% after the second, and settle below 1% after that."""
    bumps = ((7.0, 0.578125, 0.003), (-7.7, 0.3828125, 0.004))  # height, centre, width
    a = alphas.double()
    slope = 1 + sum(h * torch.exp(-(a - c) ** 2 / (2 * w ** 2)) for h, c, w in bumps)
    score = a + sum(h * w * math.sqrt(math.pi / 2) * (torch.erf((a - c) / (w * math.sqrt(2)))
                                                     - math.erf(-c / (w * math.sqrt(2)))) for h, c, w in bumps)
    return score, (slope / 12)[:, None, None, None].expand(-1, 3, 2, 2).clone()


def test_a_gap_that_cancels_once_is_not_taken_for_convergence():
    from pixel_evidence.explainers.ig_path import integrate_to_tolerance

    out = integrate_to_tolerance(cancelling_path, 0.05, 512)
    gaps = {steps: gap for steps, gap, _ in out.history}
    # the old rule took the grid and one refinement, 4.8% and 1.1%, as confirmed at 25 steps
    assert gaps[17] <= 0.05 and gaps[25] <= 0.05 and gaps[37] > 0.1
    # two refinements in a row must agree: 55 and 82 nodes
    assert out.converged and out.steps == 82 and out.relative_delta <= 0.05
    exact = cancelling_path(torch.tensor([0.0, 1.0]))[0]
    assert abs(float(out.attribution.sum()) - float(exact[1] - exact[0])) / float(exact[1] - exact[0]) < 0.01


def test_an_image_the_cap_cannot_fix_is_flagged_with_its_true_gap():
    x = torch.full((1, 3, 2, 2), 0.8)  # each pixel: 0.64 from the square, 1 from the hidden jump
    cap = 40
    out = IntegratedGradients(HiddenJump(), tolerance=0.01, max_steps=cap).attribute(x, torch.tensor([0]))
    assert out.extras["converged"].item() == 0 and out.extras["steps"].item() == cap
    # the trapezoid integrates the square's linear slope exactly: the gap is the jump's share
    assert out.extras["relative_delta"].item() == pytest.approx(1 / 1.64, rel=1e-5)


def test_the_scheme_is_deterministic_and_its_stability_is_the_spearman_of_the_last_two_maps(image):
    target = torch.tensor([0])
    runs = [IntegratedGradients(SoftSteps(), tolerance=0.002, max_steps=200).attribute(image, target) for _ in range(2)]
    assert torch.equal(runs[0].maps, runs[1].maps)
    assert all(torch.equal(runs[0].extras[k], runs[1].extras[k]) for k in runs[0].extras)
    out = runs[0]
    rho = spearmanr(out.maps[0].flatten().numpy(), out.extras[PREVIOUS_MAP][0].flatten().numpy()).statistic
    assert out.extras["stability_spearman"].item() == pytest.approx(rho, abs=1e-6)


def test_the_fixed_rule_reports_its_steps_and_no_convergence(image):
    out = IntegratedGradients(SoftSteps(), n_steps=25).attribute(image, torch.tensor([0]))
    assert out.extras["steps"].item() == 25
    assert math.isnan(out.extras["converged"].item()) and math.isnan(out.extras["stability_spearman"].item())
    assert PREVIOUS_MAP not in out.extras


def test_the_tko_change_is_the_final_maps_tko_minus_the_previous_maps():
    mask = np.zeros((4, 4), bool)
    mask[0, :2] = True  # K = 2
    final = np.zeros((4, 4), np.float32)
    final[0, 0], final[0, 1] = 2.0, 1.0  # both top-2 pixels on the defect: TKO 1
    previous = np.zeros((4, 4), np.float32)
    previous[0, 0], previous[3, 3] = 2.0, 1.0  # one of two: TKO 0.5
    extras = _scalar_extras({"map": final, "steps": np.float32(40), PREVIOUS_MAP: previous}, 1.0, mask)
    assert extras == {"steps": 40.0, "tko_change": 0.5}
    assert metrics.top_k_overlap(previous, mask) == 0.5


def test_ig_params_refuse_bad_words():
    assert ig_params(25, 0) == {"n_steps": 25}
    assert ig_params(25, 0.02, 300) == {"tolerance": 0.02, "max_steps": 300}
    for args, word in (((25, -0.1), "--ig-tolerance"), ((25, 0.02, 5), "--ig-max-steps"), ((0, None), "--ig-steps")):
        with pytest.raises(ValueError, match=word):
            ig_params(*args)


def test_evaluate_writes_the_convergence_columns(tiny_run, tmp_path):
    root, models = tiny_run[0], tiny_run[1]
    out = tmp_path / "res"
    tolerance, cap = 0.05, 40
    assert main(["evaluate", "--data", str(root), "--models", str(models), "--out", str(out), "--seeds", "7",
                 "--splits", "test", "--methods", "saliency", "ig", "--device", "cpu",
                 "--ig-tolerance", str(tolerance), "--ig-max-steps", str(cap)]) == 0
    table = pd.read_csv(out / "tko_table.csv")
    ig = table[(table["method"] == "ig") & (table["k"] > 0)]
    assert len(ig) > 0
    assert ig["ig_steps"].between(18, cap).all() and ig["ig_converged"].isin([0, 1]).all()
    converged = ig["ig_converged"] == 1
    assert (ig["ig_relative_delta"] <= ig["ig_gap_bound"] + 1e-12).all()
    assert (ig.loc[~converged, "ig_steps"] == cap).all()  # a flagged image used the whole cap
    assert ig["ig_stability_spearman"].between(-1, 1).all() and ig["ig_tko_change"].between(-1, 1).all()
    others = table[table["method"] != "ig"]
    assert others[["ig_relative_delta", "ig_steps", "ig_converged"]].isna().all().all()
    sidecar = pd.read_json(out / "per_seed" / "seed_7_test.json", typ="series")
    assert sidecar["methods"]["ig"]["tolerance"] == tolerance and sidecar["methods"]["ig"]["max_steps"] == cap


def test_dashboard_config_takes_the_tolerance(tmp_path):
    from pixel_evidence.dashboard.config import ConfigError, parse_args

    cfg = parse_args(["--ig-tolerance", "0.02", "--ig-max-steps", "256"])
    assert cfg.engine_kwargs()["method_params"] == {"ig": {"tolerance": 0.02, "max_steps": 256}}
    toml = tmp_path / "app.toml"
    toml.write_text("ig_tolerance = 0.05\n")
    assert parse_args(["--config", str(toml)]).engine_kwargs()["method_params"] == {
        "ig": {"tolerance": 0.05, "max_steps": 512}}
    assert "method_params" not in parse_args([]).engine_kwargs()  # the page's default: the fast fixed rule
    with pytest.raises(ConfigError, match="ig_tolerance"):
        parse_args(["--ig-tolerance", "-1"])


def test_the_page_words_the_gap_steps_and_stability_and_flags_a_map_that_did_not_converge():
    from pixel_evidence.dashboard.formatting import ig_convergence

    words, flagged = ig_convergence({"relative_delta": 0.032, "gap_bound": 0.047, "steps": 512.0, "converged": 0.0,
                                     "stability_spearman": 0.991, "tko_change": -0.004}, 0.02)
    assert flagged and words.startswith("IG convergence gap: 3.2% of the score change after 512 steps; "
                                        "map stable to ρ = 0.99")
    assert "NOT CONVERGED" in words and "2%" in words
    words, flagged = ig_convergence({"relative_delta": 0.012, "steps": 37.0, "converged": 1.0,
                                     "stability_spearman": 0.998}, 0.02)
    assert not flagged and "within the 2% tolerance" in words and "NOT" not in words
    words, flagged = ig_convergence({"relative_delta": 0.086, "steps": 25.0, "converged": math.nan,
                                     "stability_spearman": math.nan})
    assert not flagged and "after 25 steps (fixed rule" in words and "stable to" not in words

"""The stochastic methods' own noise: spreads, neighbour gaps and winners over draws, on planted tables."""

import math

import numpy as np
import pandas as pd
import pytest

from pixel_evidence.metrics.draw_noise import draw_spread, neighbour_gaps, noise_summary, winner_noise

# Two deterministic methods (a, b) and one stochastic (s) with three draws. Planted answers:
# - one: a wins draw 0 by 0.1 over s, whose draws spread 0.2 -> a tie within noise, and draw 2's
#   s (0.6) takes the win: one change, not robust;
# - two: s wins by 0.4 with a spread of 0.02 -> robust, no tie within noise;
# - three: a and b tie exactly for first; s cannot reach them -> robust, and an exact tie is
#   no tie *within noise* (neither leader has a spread);
# - four: b has no score, so the image is not ranked at all.
FIELD = pd.DataFrame(
    [("one", "a", 0.5), ("one", "b", 0.2), ("one", "s", 0.4),
     ("two", "a", 0.1), ("two", "b", 0.3), ("two", "s", 0.7),
     ("three", "a", 0.2), ("three", "b", 0.2), ("three", "s", 0.1),
     ("four", "a", 0.9), ("four", "b", math.nan), ("four", "s", 0.1)],
    columns=["image_id", "method", "tko"])
S_DRAWS = {"one": [0.4, 0.45, 0.6], "two": [0.7, 0.69, 0.71], "three": [0.1, 0.1, 0.1], "four": [0.1, 0.2, 0.3]}
DRAWS = pd.DataFrame([(image, "s", d, v) for image, values in S_DRAWS.items() for d, v in enumerate(values)],
                     columns=["image_id", "method", "draw", "tko"])


def test_spread_is_the_range_over_draws():
    spread = draw_spread(DRAWS).set_index("image_id")
    for image, values in S_DRAWS.items():
        assert spread.at[image, "spread"] == pytest.approx(np.ptp(values))
        assert spread.at[image, "std"] == pytest.approx(np.std(values, ddof=1))
        assert spread.at[image, "n_draws"] == 3


def test_winners_margins_and_ties_within_noise():
    wins = winner_noise(FIELD, DRAWS).set_index("image_id")
    assert list(wins.index) == ["one", "three", "two"]  # "four" is not ranked
    assert wins.at["one", "winner"] == "a" and wins.at["one", "runner_up"] == "s"
    assert wins.at["one", "margin"] == pytest.approx(0.1)
    assert wins.at["one", "noise_band"] == pytest.approx(0.2)
    assert wins.at["one", "tie_within_noise"] and not wins.at["one", "robust"]
    assert wins.at["one", "winners"] == "a|a|s" and wins.at["one", "winner_changes"] == 1
    assert wins.at["two", "winner"] == "s" and wins.at["two", "margin"] == pytest.approx(0.4)
    assert not wins.at["two", "tie_within_noise"] and wins.at["two", "robust"]
    assert wins.at["three", "winner"] == "a+b" and wins.at["three", "margin"] == 0
    assert wins.at["three", "noise_band"] == 0 and not wins.at["three", "tie_within_noise"]
    assert wins.at["three", "robust"]


def test_spread_against_the_nearest_neighbour():
    gaps = neighbour_gaps(FIELD, DRAWS).set_index("image_id")
    assert gaps.at["one", "gap"] == pytest.approx(0.1) and gaps.at["one", "exceeds"]
    assert gaps.at["two", "gap"] == pytest.approx(0.4) and not gaps.at["two", "exceeds"]
    assert gaps.at["three", "gap"] == pytest.approx(0.1) and not gaps.at["three", "exceeds"]


def test_summary_counts_shared_and_robust_wins():
    summary = noise_summary(FIELD, DRAWS)
    assert summary["n_images"] == 3 and summary["n_draws"] == 3
    assert summary["wins"] == {"a": 1.5, "s": 1.0, "b": 0.5}
    assert summary["robust_wins"] == {"a": 0.5, "s": 1.0, "b": 0.5}
    assert summary["winner_changes"] == 1 and summary["ties_within_noise"] == 1 and summary["robust_images"] == 2
    s = summary["methods"]["s"]
    assert s["max_spread"] == pytest.approx(0.2) and s["spread_exceeds_gap"] == 1
    assert s["median_spread"] == pytest.approx(0.02)  # of the ranked images' spreads 0.2, 0.02, 0


def test_a_draw_missing_an_image_is_named():
    with pytest.raises(ValueError, match="draw 1 lacks"):
        winner_noise(FIELD, DRAWS[~((DRAWS["draw"] == 1) & (DRAWS["image_id"] == "two"))])

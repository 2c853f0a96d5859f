"""pixel_evidence.metrics.scores: the registry of localisation scores that evaluation, results and the dashboard read."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from pixel_evidence.metrics.scores import EXTRA_SCORES, LOCALISATION_SCORES, Score, by_key, score

# Hand-made (map, mask) pairs: ties at the top-K cut-off, a tied maximum, a zero background.
CASES = {
    "tie at the cut-off": (np.array([[0.9, 0.2, 0.2], [0.2, 0.0, 0.5]]), np.array([[1, 0, 1], [0, 0, 1]])),
    "tied maximum": (np.array([[0.7, 0.1, 0.7], [0.0, 0.3, 0.3]]), np.array([[1, 1, 0], [0, 0, 0]])),
    "clear winner": (np.array([[0.0, 0.0, 0.0], [0.0, 4.0, 1.0]]), np.array([[0, 0, 0], [0, 1, 0]])),
}


# ----------------------------------------------------------------------------- independent references
# Each averages the plain definition over every order of the pixels, i.e. over every tie-break.


def _orders(a):
    for perm in itertools.permutations(range(a.size)):
        yield sorted(range(a.size), key=lambda i: (-a[i], perm[i]))


def tko_by_orders(a, mask):
    a, s = np.ravel(a), np.ravel(mask) > 0
    k = int(s.sum())
    hits = [sum(bool(s[i]) for i in order[:k]) for order in _orders(a)]
    return float(Fraction(sum(hits), len(hits) * k))


def pointing_by_orders(a, mask):
    a, s = np.ravel(a), np.ravel(mask) > 0
    hits = [bool(s[order[0]]) for order in _orders(a)]
    return sum(hits) / len(hits)


def relevance_mass_by_sums(a, mask):
    inside = sum(v for v, m in zip(np.ravel(a), np.ravel(mask)) if m > 0)
    return inside / sum(np.ravel(a))


def auroc_by_pairs(a, mask):
    a, s = np.ravel(a), np.ravel(mask) > 0
    wins = [(p > q) + 0.5 * (p == q) for p in a[s] for q in a[~s]]
    return sum(wins) / len(wins)


INDEPENDENT = {"tko": tko_by_orders, "pointing": pointing_by_orders, "relevance_mass": relevance_mass_by_sums,
               "auroc": auroc_by_pairs}


def test_every_registered_score_has_an_independent_reference():
    assert set(LOCALISATION_SCORES) == set(INDEPENDENT)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("key", LOCALISATION_SCORES)
def test_registered_function_agrees_with_the_definition(key, case):
    a, mask = CASES[case]
    entry = LOCALISATION_SCORES[key]
    assert entry(a, mask) == entry.function(a, mask)
    assert entry(a, mask) == pytest.approx(INDEPENDENT[key](a, mask), abs=1e-12)


def test_the_hand_made_cases_mean_what_they_say():
    a, mask = CASES["tie at the cut-off"]
    # K = 3: 0.9 and 0.5 hit; three pixels tied at 0.2 share the last slot, one of them on the defect
    assert LOCALISATION_SCORES["tko"](a, mask) == pytest.approx((2 + 1 / 3) / 3)
    a, mask = CASES["tied maximum"]
    assert LOCALISATION_SCORES["pointing"](a, mask) == 0.5


# ----------------------------------------------------------------------------- the table itself


def test_keys_names_and_extras():
    entries = list(LOCALISATION_SCORES.values())
    assert [s.key for s in entries] == list(LOCALISATION_SCORES)
    for field in ("key", "label", "short"):
        values = [getattr(s, field) for s in entries]
        assert len(set(values)) == len(values), f"{field} repeats: {values}"
    assert all(s.note.strip() for s in entries)
    assert list(LOCALISATION_SCORES)[0] == "tko"
    assert EXTRA_SCORES == tuple(list(LOCALISATION_SCORES)[1:])


def test_a_key_registered_twice_is_refused():
    twice = [Score("x", "x one", "x", "note", np.max), Score("x", "x two", "x", "note", np.min)]
    with pytest.raises(ValueError, match="more than once: x"):
        by_key(*twice)


def test_every_score_is_higher_is_better_as_win_rates_assumes():
    # win_rates gives the image to the highest score; a lower-is-better score would crown the loser
    assert all(s.higher_is_better for s in LOCALISATION_SCORES.values())


def test_lookup_and_a_one_line_error_naming_the_valid_keys():
    assert score("auroc") is LOCALISATION_SCORES["auroc"]
    with pytest.raises(ValueError) as info:
        score("bad")
    message = str(info.value)
    assert "\n" not in message and "'bad'" in message
    assert all(key in message for key in LOCALISATION_SCORES)

"""The README's Python API example runs as written, on the shipped default, and its numbers
agree with each other (the ranking with the TKOs, the recomputed TKO with the engine's)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def api_block() -> str:
    """The first ```python block after the "## Python API" heading."""
    text = README.read_text()
    section = text[text.index("## Python API"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's Python API section has no python block"
    return match.group(1)


def test_the_block_names_an_image_without_its_split():
    # the example relies on explain() finding the split; a split-first call would hide a regression
    assert re.search(r"engine\.explain\(42, image_id=", api_block())


@pytest.fixture(scope="module")
def namespace():
    names: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(api_block(), str(README), "exec"), names)  # noqa: S102 - the README's own code
    yield names, out.getvalue()
    names["engine"].close()


def test_the_example_runs_and_finds_the_split(namespace):
    names, printed = namespace
    ex, engine = names["ex"], names["engine"]
    assert ex.split == engine.catalogue.sample(ex.image_id).split == "test"
    assert list(ex.methods) == ["gradcam", "saliency", "ig"]
    assert printed.count("TKO ") == 3


def test_the_example_numbers_agree(namespace):
    names, _ = namespace
    ex = names["ex"]
    # rank 1 is the largest TKO, and so on (ties share a rank)
    tkos = [ex.methods[m].tko for m, _ in ex.ranking]
    assert tkos == sorted(tkos, reverse=True)
    assert names["metrics"].top_k_overlap(ex.methods["gradcam"].map, ex.mask) == ex.methods["gradcam"].tko
    curve = names["curves"]["ig"]["deletion"]
    assert 0.0 <= curve.auc <= 1.0
    assert set(names["checks"]) == {"saliency"}


def test_a_named_split_is_still_checked(namespace):
    names, _ = namespace
    engine, ex = names["engine"], names["ex"]
    with pytest.raises(KeyError, match="in the test split, not train"):
        engine.explain(ex.seed, ex.image_id, split="train", methods=["saliency"])
    # the short form explain(seed, image_id) takes the image's own split too
    assert engine.explain(ex.seed, ex.image_id, methods=["saliency"]).split == "test"

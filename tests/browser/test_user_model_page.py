"""A user's own network (examples/tiny_model.py), trained through the command line and served:
the page names the model under the seed, says it has no mask decoder, and shows the
engine's numbers. The server and browser fixtures are tests/browser/conftest.py's, over this
module's engine; every wait is for a state of the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.pages import require_browser

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "tiny_model.py"


@pytest.fixture(scope="module", autouse=True)
def _browser_present():
    require_browser()


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """The example module trained for one epoch at 32 px on a tiny tree, as the README says to."""
    from pixel_evidence.cli import main
    from pixel_evidence.engine.explain import ExplanationEngine
    from tests.layout_trees import make_mvtec_tree

    base = tmp_path_factory.mktemp("user_model")
    data = make_mvtec_tree(base / "cat", size=32)
    models = base / "models"
    assert main(["train", "--data", str(data), "--models", str(models), "--seeds", "5", "--epochs", "1",
                 "--batch-size", "4", "--image-size", "32", "--device", "cpu",
                 "--model-module", f"{EXAMPLE}:build"]) == 0
    eng = ExplanationEngine(data, models, device="cpu", method_params={"ig": {"n_steps": 4}})
    yield eng
    eng.close()


def test_a_served_user_model_shows_its_name_its_maps_and_the_engines_numbers(web, server, engine):
    from playwright.sync_api import expect

    from pixel_evidence.dashboard.formatting import fmt

    web.goto(server)
    image_id = engine.catalogue.image_ids("test", "crack")[0]
    web.locator(".pe-title-text", has_text=image_id).wait_for()
    expect(web.locator(".pe-model-text")).to_have_text("custom tiny_model.py:build, classifier, partial · 32 px")
    ex = engine.explain(5, image_id, split="test")
    for key, result in ex.methods.items():
        expect(web.locator(f".pe-tko[data-method={key}]")).to_have_text(fmt(result.tko))
    web.wait_for_function("""() => [...Bokeh.documents[0].all_models].some(m => m.title && m.title.text
        && m.title.text.startsWith('No reconstruction: this model has no mask decoder'))""")

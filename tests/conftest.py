"""Shared fixtures: tiny MVTec-layout trees built on the fly."""

from __future__ import annotations

import shutil

import pytest

from pixel_evidence.data import prepare_manifest
from pixel_evidence.models.train import TrainConfig, train_seeds
from tests.layout_trees import make_mvtec_tree


@pytest.fixture
def mvtec_tree(tmp_path):
    return make_mvtec_tree(tmp_path / "cat")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """Two epochs of two seeds on a tiny tree, 64 px, from the (offline) ImageNet lite0
    weights: fast, and unlike a random-init backbone, whose scores barely depend on the
    image, the models' gradients and maps are far from zero."""
    base = tmp_path_factory.mktemp("run")
    root = make_mvtec_tree(base / "cat", n_train_good=10, n_test={"good": 4, "crack": 8, "hole": 8}, size=64)
    models = base / "models"
    manifest = models / "manifest.csv"
    prepare_manifest(root, manifest)
    cfg = TrainConfig(seeds=[7, 8], epochs=2, batch_size=8, lr=1e-3, image_size=64,
                      backbone="efficientnet_lite0", pretrained=True, channels_last=False, device="cpu")
    metas = train_seeds(cfg, root, manifest, models)
    return root, models, manifest, cfg, metas[0]


@pytest.fixture
def models(tiny_run, tmp_path):
    """A copy of the tiny run's models (seeds 7 and 8), free to break (without its results)."""
    copy = tmp_path / "models"
    shutil.copytree(tiny_run[1], copy, ignore=shutil.ignore_patterns("results"))
    return copy


@pytest.fixture
def data(tiny_run, tmp_path):
    """A copy of the tiny run's category, free to change."""
    return shutil.copytree(tiny_run[0], tmp_path / "cat")


@pytest.fixture(scope="module")
def engine(tiny_run):
    """An engine on the tiny models (IG with 4 steps), one per test module; modules that
    need another set-up define their own ``engine``."""
    from pixel_evidence.engine.explain import ExplanationEngine

    root, models, *_ = tiny_run
    eng = ExplanationEngine(root, models, device="cpu", method_params={"ig": {"n_steps": 4}})
    yield eng
    eng.close()


@pytest.fixture
def dash(engine):
    """The dashboard built in-process on the module's ``engine`` (no browser, no server)."""
    import panel as pn

    from pixel_evidence.dashboard.app import create_app

    # with a server session's document current, create_app would defer the view to its page load
    assert pn.state.curdoc is None, "a server session's document is still Bokeh's current document"
    return create_app(engine=engine).dashboard

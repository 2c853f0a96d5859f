"""``pixel-evidence noise`` on the tiny models: the draws are the method's own seeds, and the study's
spreads and winners equal those of maps computed directly with each seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dask.distributed import Client, LocalCluster

from pixel_evidence.cli import main
from pixel_evidence.engine.explain import ExplanationEngine
from pixel_evidence.methods import METHODS, STOCHASTIC_METHODS
from pixel_evidence.metrics.draw_noise import count_curve
from pixel_evidence.results.noise_study import draw_store, read_study
from pixel_evidence.results.sweep_store import read_store
from pixel_evidence.sweep.plan import plan
from pixel_evidence.sweep.run import run_sweep
from pixel_evidence.sweep.spec import Category, SweepSpec

FIELD_METHODS = ("gradcam", "saliency", "smoothgrad")


@pytest.fixture(scope="module")
def field_store(tiny_run, tmp_path_factory) -> Path:
    """A whole-field store of the tiny models: two deterministic methods and SmoothGrad with its defaults."""
    root, models, *_ = tiny_run
    out = tmp_path_factory.mktemp("field") / "store"
    spec = SweepSpec(categories=(Category("cat", Path(root), Path(models)),), out=out, seeds=(7,), splits=("test",),
                     methods=FIELD_METHODS, chunk=8)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        assert run_sweep(client, plan(spec), spec, progress=False).complete
    return out


def test_the_registry_marks_exactly_the_methods_with_a_seed():
    for key, m in METHODS.items():
        defaults = m.explainer().defaults
        assert m.stochastic == ("seed" in defaults), key
        if m.stochastic:
            assert m.random_samples in defaults, key
    assert "occlusion" not in STOCHASTIC_METHODS  # its windows slide over a fixed grid: no dice


def test_study_equals_maps_computed_with_each_seed(tiny_run, field_store, tmp_path):
    root, models, *_ = tiny_run
    out = tmp_path / "study"
    code = main(["noise", "--data", str(root), "--models", str(models), "--field", str(field_store),
                 "--out", str(out), "--seed", "7", "--draws", "3", "--methods", "smoothgrad", "--workers", "1",
                 "--counts", "--count-images", "2"])
    assert code == 0
    study = read_study(out)
    # independent: TKO of every image under SmoothGrad seeds 0, 1, 2, straight from the engine
    direct = {}
    for draw in range(3):
        engine = ExplanationEngine(root, models, device="cpu", method_params={"smoothgrad": {"seed": draw}})
        ids = [i for i in engine.catalogue.image_ids("test") if engine.catalogue.sample(i).has_mask]
        direct[draw] = {ex.image_id: ex for ex in engine.explain_many(7, ids, list(FIELD_METHODS))}
        engine.close()
    # every mapped image of draws 1 and 2 (misclassified ones too) as computed directly with that seed
    for draw in (1, 2):
        rows = read_store(draw_store(out, draw)).category("cat").set_index("image_id")
        assert sorted(rows.index[rows["tko"].notna()]) == sorted(direct[draw])  # defect-free images get no map
        for image_id, ex in direct[draw].items():
            assert rows.at[image_id, "tko"] == pytest.approx(ex.methods["smoothgrad"].tko, abs=1e-9)
    assert any(direct[1][i].methods["smoothgrad"].tko != direct[2][i].methods["smoothgrad"].tko for i in direct[1])
    ranked = [i for i, ex in direct[0].items() if ex.correct]
    assert sorted(study.images["image_id"]) == sorted(ranked) and ranked
    tkos = {i: [direct[d][i].methods["smoothgrad"].tko for d in range(3)] for i in ranked}
    gaps = pd.read_csv(out / "noise_gaps.csv", dtype={"image_id": str}).set_index("image_id")
    for image_id, values in tkos.items():
        assert gaps.at[image_id, "spread"] == pytest.approx(np.ptp(values), abs=1e-9)
        row = study.image(image_id)
        per_draw = []
        for d in range(3):
            scores = {m: direct[0][image_id].methods[m].tko for m in FIELD_METHODS}
            scores["smoothgrad"] = values[d]
            best = max(scores.values())
            per_draw.append("+".join(sorted(m for m, v in scores.items() if v == best)))
        assert row["winners"] == "|".join(per_draw)
        assert row["robust"] == (len(set(per_draw)) == 1)
    summary = json.loads((out / "noise_summary.json").read_text())
    assert summary["seed"] == 7 and summary["n_draws"] == 3 and summary["methods_studied"] == ["smoothgrad"]
    curve = count_curve(study.counts)
    assert list(curve["count"]) == [4, 8, 16, 32] and (curve["images"] == min(2, len(ranked))).all()
    assert curve["median_pearson"].between(-1, 1).all()


def test_field_rows_made_with_other_settings_are_refused(tiny_run, field_store, tmp_path, capsys):
    root, models, *_ = tiny_run
    other = tmp_path / "other"
    spec = SweepSpec(categories=(Category("cat", Path(root), Path(models)),), out=other, seeds=(7,), splits=("test",),
                     methods=("smoothgrad",), chunk=8, method_params={"smoothgrad": {"nt_samples": 4}})
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        assert run_sweep(client, plan(spec), spec, progress=False).complete
    code = main(["noise", "--data", str(root), "--models", str(models), "--field", str(other),
                 "--out", str(tmp_path / "study"), "--methods", "smoothgrad", "--workers", "1"])
    assert code == 2
    assert "smoothgrad were made with other settings than the defaults" in capsys.readouterr().err
    assert not (tmp_path / "study" / "noise_summary.json").exists()

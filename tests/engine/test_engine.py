from __future__ import annotations

import json
import math
import threading

import numpy as np
import pandas as pd
import pytest
import torch

from pixel_evidence import metrics
from pixel_evidence.cli import main
from pixel_evidence.data import load_image, to_normalized_tensor
from pixel_evidence.engine.cache import ByteLRU, SingleFlight
from pixel_evidence.engine.explain import ExplanationEngine
from pixel_evidence.evaluate import evaluate
from pixel_evidence.explainers import get_explainer
from pixel_evidence.explainers.integrated_gradients import IntegratedGradients
from pixel_evidence.models import ClassifierView, load_model, prepare_for_inference
from pixel_evidence.significance_tables import SIGNIFICANCE_SUBDIR
from tests.significance_checks import assert_ranked_as_pandas


@pytest.fixture
def engine(tiny_run):
    root, models, manifest, cfg, meta = tiny_run
    eng = ExplanationEngine(root, models, device="cpu", method_params={"ig": {"n_steps": 8}})
    yield eng
    eng.close()


def _defect_id(engine, split="test"):
    return next(i for i in engine.catalogue.image_ids(split) if engine.catalogue.sample(i).cls != "good")


def test_explain_returns_maps_scores_and_prediction(engine, tiny_run):
    root = tiny_run[0]
    image_id = _defect_id(engine)
    ex = engine.explain(7, image_id, split="test")
    assert ex.image.shape == (64, 64, 3) and ex.image.dtype == np.uint8
    assert ex.mask.shape == (64, 64) and ex.mask.dtype == bool and ex.k == int(ex.mask.sum()) > 0
    assert ex.reconstruction.shape == (64, 64) and 0 <= ex.reconstruction.min() <= ex.reconstruction.max() <= 1
    assert ex.probabilities.sum() == pytest.approx(1, abs=1e-5)
    assert set(ex.methods) == {"gradcam", "saliency", "ig"}
    for r in ex.methods.values():
        assert r.map.shape == (64, 64) and r.map.dtype == np.float32 and (r.map >= 0).all()
        assert r.tko == metrics.top_k_overlap(r.map, ex.mask)
        assert r.iou == metrics.top_k_iou(r.map, ex.mask)
        assert r.lift == pytest.approx(r.tko / (ex.k / ex.n))
    assert sum(r.win_share for r in ex.methods.values()) == pytest.approx(1)
    assert "relative_delta" in ex.methods["ig"].extras

    # Independent check: the model as the engine prepares it (BatchNorm folded, channels-last),
    # loaded and called directly with the explainer, gives the same IG map. Folding is not
    # compared here: it moves the ReLU6 kinks by float rounding, which flips gates along IG's
    # path and changes maps by up to ~0.5% of their maximum on this tiny net (a property of
    # the network, tested in test_model). On the same network and input the two runs differ
    # at most in summation order: float32 rounding (eps 1.2e-7) over a few hundred terms.
    net, meta = load_model(tiny_run[1], 7)
    net = prepare_for_inference(net, "cpu").requires_grad_(False)
    x = to_normalized_tensor(load_image(root, engine.catalogue.sample(image_id), 64), **meta["normalization"])
    x = x.contiguous(memory_format=net.input_memory_format)
    target = torch.tensor([engine.catalogue.classes.index(ex.target_class)])
    direct = IntegratedGradients(ClassifierView(net), input_mean=meta["normalization"]["mean"],
                                 input_std=meta["normalization"]["std"], n_steps=8).attribute(x, target)
    ig = ex.methods["ig"].map
    np.testing.assert_allclose(direct.maps[0].numpy(), ig, rtol=1e-5, atol=1e-5 * ig.max())
    # F(x) for the convergence gap came from the engine's prediction, F(b) from its memo
    assert ex.methods["ig"].extras["relative_delta"] == pytest.approx(float(direct.extras["relative_delta"]), rel=1e-3)


def test_every_backward_runs_under_the_model_lock(tiny_run):
    """Between a forward and its backward the graph keeps every activation. The backward runs
    under the model lock too, so that concurrent requests hold one such graph at a time, not
    one each (what the server's memory under ten sessions depends on)."""
    root, models = tiny_run[0], tiny_run[1]
    eng = ExplanationEngine(root, models, device="cpu", method_params={"ig": {"n_steps": 8}})
    stem = eng.pool.network(7)[0].encoder[0]
    held = []
    handle = stem.register_full_backward_hook(lambda module, grad_in, grad_out: held.append(eng.pool.lock.held_here))
    try:
        eng.explain(7, _defect_id(eng), split="test", methods=["gradcam", "saliency", "ig"])
    finally:
        handle.remove()
    assert len(held) == 3  # the shared Grad-CAM/Saliency pass and IG's two chunks
    assert all(held)
    eng.close()


@pytest.mark.parametrize("target", ["predicted", "true"])
def test_cold_prediction_rides_on_the_shared_gradient_pass(tiny_run, target):
    """On a cold image, Grad-CAM and Saliency's pass is the prediction forward as well: the
    encoder runs once for prediction, reconstruction and both maps, and every output equals
    an independent computation with the model as the engine prepares it (separate forward,
    solo explainers; folding itself is tested in test_model)."""
    root, models = tiny_run[0], tiny_run[1]
    eng = ExplanationEngine(root, models, device="cpu", method_params={"ig": {"n_steps": 8}})
    image_id = _defect_id(eng)
    stem = eng.pool.network(7)[0].encoder[0]
    runs = []
    handle = stem.register_forward_hook(lambda module, args, output: runs.append(len(args[0])))
    try:
        ex = eng.explain(7, image_id, split="test", methods=["gradcam", "saliency"], target=target)
        assert runs == [1]
        runs.clear()
        other = next(i for i in eng.catalogue.image_ids("test") if i != image_id)
        eng.explain(7, other, split="test", methods=["gradcam", "saliency", "ig"], target=target)
        eng.explain(7, image_id, split="test", methods=["gradcam", "saliency", "ig"], target=target)
    finally:
        handle.remove()
    # 8 IG steps make two chunks of 4 on a CPU; the black image's scores are taken once per
    # process (after the first image's path), and F(x) comes from the prediction: the second
    # image runs the shared pass and its IG chunks, the first (prediction and shared maps
    # cached) only its IG chunks.
    assert runs == [1, 4, 4, 1, 4, 4]
    eng.close()

    net, meta = load_model(tiny_run[1], 7)
    net = prepare_for_inference(net, "cpu").requires_grad_(False)
    norm = meta["normalization"]
    x = to_normalized_tensor(load_image(root, eng.catalogue.sample(image_id), 64), **norm)
    x = x.contiguous(memory_format=net.input_memory_format)
    with torch.no_grad():
        logits, mask_logits = net(x)
    assert np.allclose(ex.probabilities, torch.softmax(logits, 1)[0].numpy(), atol=1e-5)
    assert np.allclose(ex.reconstruction, torch.sigmoid(mask_logits[0, 0]).numpy(), atol=1e-5)
    true_index = eng.catalogue.classes.index(eng.catalogue.sample(image_id).cls)
    expected = int(logits.argmax()) if target == "predicted" else true_index
    assert ex.target_class == eng.catalogue.classes[expected]
    for key in ("gradcam", "saliency"):
        solo = get_explainer(key)(ClassifierView(net), net.gradcam_layer, input_mean=norm["mean"],
                                  input_std=norm["std"]).attribute(x, torch.tensor([expected]))
        assert np.allclose(ex.methods[key].map, solo.maps[0].numpy(), rtol=1e-4, atol=1e-6), key


def test_ig_with_known_scores_equals_ig_that_runs_its_own_forward(engine, tiny_run):
    net, meta = load_model(tiny_run[1], 7)
    norm = meta["normalization"]
    samples = [engine.catalogue.sample(i) for i in engine.catalogue.image_ids("test")[:2]]
    x = torch.cat([to_normalized_tensor(load_image(tiny_run[0], s, 64), **norm) for s in samples])
    target = torch.tensor([engine.catalogue.classes.index(s.cls) for s in samples])
    make = lambda: IntegratedGradients(ClassifierView(net), input_mean=norm["mean"], input_std=norm["std"], n_steps=4)
    with torch.no_grad():
        scores = ClassifierView(net)(x)
        gap = scores.gather(1, target[:, None])[:, 0] - ClassifierView(net)(make().black_baseline(x)).gather(
            1, target[:, None])[:, 0]
    assert (gap.abs() > 1e-3).all()
    ig = make()
    given, own, again = ig.attribute(x, target, scores), make().attribute(x, target), ig.attribute(x, target)
    for out in (given, own, again):  # the memoized black-image scores serve the later calls
        assert torch.allclose(out.maps, own.maps)
        assert torch.allclose(out.extras["delta"], own.extras["delta"], atol=1e-5)
        assert torch.allclose(out.extras["relative_delta"], out.extras["delta"].abs() / gap.abs(), atol=1e-6)


def test_good_images_are_not_ranked(engine):
    good = next(i for i in engine.catalogue.image_ids("test", "good"))
    ex = engine.explain(7, good, split="test", methods=["gradcam", "saliency"])
    assert not ex.rankable and ex.k == 0
    assert all(math.isnan(r.tko) for r in ex.methods.values())
    assert ex.winners == [] and ex.ranking == []


def test_target_true_class_and_split_guard(engine):
    image_id = _defect_id(engine)
    ex = engine.explain(7, image_id, split="test", methods=["saliency"], target="true")
    assert ex.target_class == engine.catalogue.sample(image_id).cls
    with pytest.raises(KeyError, match="is in the test split, not train"):
        engine.explain(7, image_id, split="train")
    with pytest.raises(ValueError, match="unknown method"):
        engine.explain(7, image_id, split="test", methods=["nope"])


def test_cache_hit_returns_identical_arrays_without_recomputing(engine):
    image_id = _defect_id(engine)
    first = engine.explain(8, image_id, split="test")
    calls = engine.compute_calls
    assert calls == 4  # one forward for the prediction, one call per method
    second = engine.explain(8, image_id, split="test")
    assert engine.compute_calls == calls
    for m in first.methods:
        assert second.methods[m].map is first.methods[m].map


def test_lru_respects_its_byte_bound():
    lru = ByteLRU(max_mb=1)
    for i in range(10):
        lru.put(i, np.zeros(200_000, np.uint8))  # 0.2 MB each
        assert lru.size_bytes <= 1024 * 1024
    assert len(lru) == 5 and lru.get(0) is None and lru.get(9) is not None
    lru.put("huge", np.zeros(2_000_000, np.uint8))
    assert lru.get("huge") is None


def test_engine_cache_bound(tiny_run):
    root, models = tiny_run[0], tiny_run[1]
    eng = ExplanationEngine(root, models, device="cpu", cache_mb=0.2, method_params={"ig": {"n_steps": 4}})
    for image_id in eng.catalogue.image_ids("test")[:6]:
        eng.explain(7, image_id, split="test", methods=["saliency", "gradcam"])
    assert 0 < eng.store.size_bytes <= 0.2 * 1024 * 1024


def test_eight_threads_compute_one_item_once(engine):
    image_id = _defect_id(engine)
    barrier = threading.Barrier(8)
    results, errors = [], []

    def ask():
        try:
            barrier.wait()
            results.append(engine.explain(7, image_id, split="test"))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 8
    assert engine.compute_calls == 4
    assert all(r.methods["ig"].map is results[0].methods["ig"].map for r in results)


def test_single_flight_shares_failures():
    flight = SingleFlight()
    with pytest.raises(ZeroDivisionError):
        flight.run("k", lambda: 1 / 0)
    assert flight.run("k", lambda: 5) == 5  # a failure is not remembered


def test_disk_cache_warm_restart_and_corrupt_file(tiny_run, tmp_path):
    root, models = tiny_run[0], tiny_run[1]
    disk = tmp_path / "cache"
    eng = ExplanationEngine(root, models, device="cpu", disk_cache=disk, method_params={"ig": {"n_steps": 4}})
    image_id = _defect_id(eng)
    first = eng.explain(7, image_id, split="test")
    files = sorted(disk.rglob("*.npz"))
    assert len(files) == 3

    warm = ExplanationEngine(root, models, device="cpu", disk_cache=disk, method_params={"ig": {"n_steps": 4}})
    again = warm.explain(7, image_id, split="test")
    assert warm.compute_calls == 1  # only the prediction forward; maps came from disk
    for m in first.methods:
        assert np.array_equal(first.methods[m].map, again.methods[m].map)

    files[0].write_bytes(b"garbage")
    cold = ExplanationEngine(root, models, device="cpu", disk_cache=disk, method_params={"ig": {"n_steps": 4}})
    cold.explain(7, image_id, split="test")
    assert cold.compute_calls == 2

    # other IG settings are another key: nothing stale is served
    other = ExplanationEngine(root, models, device="cpu", disk_cache=disk, method_params={"ig": {"n_steps": 6}})
    other.explain(7, image_id, split="test", methods=["ig"])
    assert other.compute_calls == 2


def test_precompute_reports_progress(engine):
    seen = []
    fut = engine.precompute(7, "test", ["saliency"], progress=lambda d, t: seen.append((d, t)))
    n = fut.result(timeout=600)  # a cap for a broken test, far above any machine's time
    assert n == len(engine.catalogue.image_ids("test")) and seen[-1] == (n, n)
    calls = engine.compute_calls
    engine.explain(7, engine.catalogue.image_ids("test")[0], split="test", methods=["saliency"])
    assert engine.compute_calls == calls


def test_evaluate_agrees_with_engine_and_resumes(engine, tmp_path):
    out = tmp_path / "results"
    summary = evaluate(engine, out, progress=False)
    table = pd.read_csv(out / "tko_table.csv")
    n_images = len(engine.catalogue.samples)
    assert len(table) == n_images * 2 * 3  # two seeds, three methods
    for image_id in [_defect_id(engine), _defect_id(engine, "train")]:
        split = engine.catalogue.sample(image_id).split
        ex = engine.explain(8, image_id, split=split)
        rows = table[(table.seed == 8) & (table.image_id == image_id)].set_index("method")
        for m, r in ex.methods.items():
            assert rows.loc[m, "tko"] == pytest.approx(r.tko, abs=1e-6)
            assert rows.loc[m, "rank"] == r.rank
        assert rows["predicted"].iloc[0] == ex.predicted_class
    good = table[table["class"] == "good"]
    assert good["tko"].isna().all() and good["rank"].isna().all()
    assert {r["split"] for r in summary["win_rates_across_seeds"]} == {"train", "test"}
    saved = json.loads((out / "summary.json").read_text())
    assert saved["seeds"] == [7, 8]
    assert_ranked_as_pandas(table, out / SIGNIFICANCE_SUBDIR, summary["significance_notes"])

    calls = engine.compute_calls
    evaluate(engine, out, progress=False)  # resumes: both seeds already done
    assert engine.compute_calls == calls


def test_evaluate_cli(tiny_run, tmp_path, capsys):
    root, models = tiny_run[0], tiny_run[1]
    out = tmp_path / "res"
    code = main(["evaluate", "--data", str(root), "--models", str(models), "--out", str(out),
                 "--seeds", "7", "--methods", "gradcam", "saliency", "--device", "cpu",
                 "--metrics", "pointing", "auroc"])
    assert code == 0
    text = capsys.readouterr().out
    assert "Grad-CAM" in text and "Saliency" in text
    table = pd.read_csv(out / "tko_table.csv")
    assert set(table.method) == {"gradcam", "saliency"} and set(table.seed) == {7}
    eng = ExplanationEngine(root, models, device="cpu")
    row = table[table["k"] > 0].iloc[0]
    ex = eng.explain(7, row["image_id"], split=row["split"], methods=[row["method"]])
    assert row["auroc"] == pytest.approx(metrics.auroc(ex.methods[row["method"]].map, ex.mask), abs=1e-9)
    assert row["pointing"] == pytest.approx(metrics.pointing_game(ex.methods[row["method"]].map, ex.mask))
    assert table.loc[table["k"] == 0, "auroc"].isna().all()


def test_explanation_agreement_matches_the_metric_functions(engine):
    ex = engine.explain(7, _defect_id(engine), split="test")
    rows = ex.agreement(fraction=0.2)
    assert [(r["a"], r["b"]) for r in rows] == [("gradcam", "saliency"), ("gradcam", "ig"), ("saliency", "ig")]
    for r in rows:
        a, b = ex.methods[r["a"]].map, ex.methods[r["b"]].map
        assert r["pearson"] == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1], abs=1e-9)
        assert r["spearman"] == metrics.spearman(a, b)
        assert r["top_iou"] == metrics.top_fraction_iou(a, b, 0.2)


def test_engine_faithfulness_equals_a_direct_curve_and_is_cached(engine, tiny_run):
    from pixel_evidence.checks.faithfulness import perturbation_curve

    image_id = _defect_id(engine)
    ex = engine.explain(7, image_id, split="test", methods=["saliency", "gradcam"])
    curves = engine.faithfulness(ex, start="blur", steps=5)
    assert set(curves) == {"saliency", "gradcam"}
    net, meta = load_model(tiny_run[1], 7)
    norm = meta["normalization"]
    x = to_normalized_tensor(load_image(tiny_run[0], engine.catalogue.sample(image_id), 64), **norm)
    target = engine.catalogue.classes.index(ex.target_class)
    for mode in ("deletion", "insertion"):
        direct = perturbation_curve(ClassifierView(net.eval()), x, ex.methods["saliency"].map, target, mode=mode,
                                    start="blur", steps=5, mean=norm["mean"], std=norm["std"])
        got = curves["saliency"][mode]
        assert got.fractions.tolist() == pytest.approx(direct.fractions.tolist())
        assert np.allclose(got.probabilities, direct.probabilities, atol=1e-4)
        assert got.auc == pytest.approx(direct.auc, abs=1e-4)
    calls = engine.compute_calls
    again = engine.faithfulness(ex, start="blur", steps=5)
    assert engine.compute_calls == calls and again["saliency"] is curves["saliency"]
    with pytest.raises(ValueError, match="start must be one of"):
        engine.faithfulness(ex, start="grey")


def test_engine_sanity_randomizes_a_copy_and_reports_every_stage(engine):
    ex = engine.explain(7, _defect_id(engine), split="test", methods=["saliency"])
    net, _ = engine.pool.network(7)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = engine.sanity(ex)["saliency"]
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the served model is untouched
    stages = [s.layer for s in result.steps]
    assert stages[0] == "classifier" and stages[-1] == "encoder.0" and len(stages) == 1 + len(net.encoder)
    # the fully randomized network gives a different saliency map on this trained model
    assert result.steps[-1].spearman < 0.9
    assert result.passed == (abs(result.final_spearman) < 0.5)
    with pytest.raises(KeyError, match="not among"):
        engine.sanity(ex, ["ig"])


def test_evaluate_analyses_agree_with_the_engine_and_resume_on_their_own(engine, tmp_path):
    from pixel_evidence.analyses import ANALYSES, AnalysisSettings

    out = tmp_path / "res"
    settings = AnalysisSettings(agreement_fraction=0.1, faithfulness_start="blur", faithfulness_steps=4,
                                sanity_images=2)
    methods = ["gradcam", "saliency"]
    evaluate(engine, out, seeds=[7], splits=["test"], methods=methods, progress=False,
             extra_metrics=["pointing"], settings=settings)
    main_csv = out / "per_seed" / "seed_7_test.csv"
    stamp = main_csv.stat().st_mtime_ns
    summary = evaluate(engine, out, seeds=[7], splits=["test"], methods=methods, progress=False,
                       extra_metrics=["agreement", "faithfulness", "sanity"], settings=settings)
    assert main_csv.stat().st_mtime_ns == stamp  # the main table had what was asked (a superset): reused
    defects = [i for i in engine.catalogue.image_ids("test") if engine.catalogue.sample(i).has_mask]

    agreement = pd.read_csv(out / "agreement.csv")
    assert len(agreement) == len(defects)  # one pair of methods per image
    faith = pd.read_csv(out / "faithfulness.csv")
    assert len(faith) == len(defects) * 2 and set(faith["start"]) == {"blur"}
    sanity = pd.read_csv(out / "sanity.csv")
    n_stages = 1 + len(engine.pool.network(7)[0].encoder)
    assert len(sanity) == 2 * len(methods) * n_stages and sanity["image_id"].nunique() == 2
    assert sanity.groupby(["image_id", "method"])["final"].sum().eq(1).all()
    # each table has its registered columns, every one filled by the analysis's row function
    for name, table in (("agreement", agreement), ("faithfulness", faith), ("sanity", sanity)):
        assert tuple(table.columns) == ANALYSES[name].columns and table.notna().any().all(), name
    recorded = {a: json.loads((out / "per_seed" / f"seed_7_test.{a}.json").read_text())["settings"] for a in ANALYSES}
    assert recorded == {"agreement": {"fraction": 0.1}, "faithfulness": {"start": "blur", "steps": 4},
                        "sanity": {"images": 2}}

    # an image whose Grad-CAM map is not all zero, so that the rank correlation is a number
    ex = next(e for e in (engine.explain(7, i, methods=methods) for i in defects) if e.methods["gradcam"].map.std() > 0)
    image_id = ex.image_id
    row = agreement[agreement["image_id"] == image_id].iloc[0]
    pair = ex.agreement(0.1)[0]
    assert (row["method_a"], row["method_b"]) == (pair["a"], pair["b"])
    # evaluation maps come from batches, ``explain``'s from single images: equal up to float rounding
    assert row["spearman"] == pytest.approx(pair["spearman"], abs=2e-3)
    assert row["top_iou"] == pytest.approx(pair["top_iou"], abs=2e-3)
    curves = engine.faithfulness(ex, start="blur", steps=4)
    got = faith[faith["image_id"] == image_id].set_index("method")
    for m in methods:
        assert got.loc[m, "deletion_auc"] == pytest.approx(curves[m]["deletion"].auc, abs=2e-3)
        assert got.loc[m, "insertion_auc"] == pytest.approx(curves[m]["insertion"].auc, abs=2e-3)

    agg = {(r["method_a"], r["method_b"]): r for r in summary["agreement"]}
    assert agg[("gradcam", "saliency")]["spearman_mean"] == pytest.approx(agreement["spearman"].mean())
    assert {r["method"] for r in summary["sanity"]} == set(methods)
    assert set(json.loads((out / "summary.json").read_text())) >= {"agreement", "faithfulness", "sanity"}

    calls = engine.compute_calls
    evaluate(engine, out, seeds=[7], splits=["test"], methods=methods, progress=False,
             extra_metrics=["agreement", "faithfulness", "sanity"], settings=settings)
    assert engine.compute_calls == calls  # every unit and analysis reused
    changed = AnalysisSettings(agreement_fraction=0.1, faithfulness_start="black", faithfulness_steps=4,
                               sanity_images=2)
    evaluate(engine, out, seeds=[7], splits=["test"], methods=methods, progress=False,
             extra_metrics=["faithfulness"], settings=changed)
    assert set(pd.read_csv(out / "faithfulness.csv")["start"]) == {"black"}  # other settings: recomputed
    assert main_csv.stat().st_mtime_ns == stamp


def test_evaluate_rejects_agreement_of_one_method(engine, tmp_path):
    with pytest.raises(ValueError, match="at least two"):
        evaluate(engine, tmp_path, seeds=[7], splits=["test"], methods=["gradcam"], progress=False,
                 extra_metrics=["agreement"])
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(engine, tmp_path, seeds=[7], splits=["test"], progress=False, extra_metrics=["fidelity"])


def test_tables_cover_every_finished_unit_with_the_same_settings(engine, tmp_path):
    out = tmp_path / "res"
    evaluate(engine, out, seeds=[7, 8], splits=["test"], methods=["gradcam", "saliency"], progress=False)
    # Analyses for one seed only: the tables keep seed 8's rows, the agreement table has seed 7's.
    evaluate(engine, out, seeds=[7], splits=["test"], methods=["gradcam", "saliency"], progress=False,
             extra_metrics=["agreement"])
    assert set(pd.read_csv(out / "tko_table.csv")["seed"]) == {7, 8}
    assert set(pd.read_csv(out / "agreement.csv")["seed"]) == {7}
    # Another method list is another evaluation: its tables hold only its own units,
    # and an analysis table made with other methods is not kept beside them.
    evaluate(engine, out, seeds=[8], splits=["test"], methods=["saliency"], progress=False)
    table = pd.read_csv(out / "tko_table.csv")
    assert set(table["seed"]) == {8} and set(table["method"]) == {"saliency"}
    assert not (out / "agreement.csv").exists()


def test_explain_needs_the_image_and_takes_the_split_by_name_only(engine):
    """No call shifts its arguments: the id is the second argument, the split a keyword."""
    image_id = _defect_id(engine)
    with pytest.raises(TypeError):
        engine.explain(7)
    with pytest.raises(TypeError):
        engine.explain(7, "test", image_id)  # the old split-first order is refused, not reinterpreted
    with pytest.raises(KeyError, match="unknown image id 'test'"):
        engine.explain(7, "test")
    assert engine.explain(7, image_id, split="test", methods=["saliency"]).image_id == image_id


def test_the_shared_pass_hands_its_maps_to_explain_even_without_room_to_keep_them(tiny_run):
    """With no memory to keep maps in (and no disk), the maps that rode on the prediction's
    pass are the ones explain() returns: the encoder runs once, not again for the maps."""
    root, models = tiny_run[0], tiny_run[1]
    eng = ExplanationEngine(root, models, device="cpu", cache_mb=0)
    image_id = _defect_id(eng)
    stem = eng.pool.network(7)[0].encoder[0]
    runs = []
    handle = stem.register_forward_hook(lambda module, args, output: runs.append(len(args[0])))
    try:
        ex = eng.explain(7, image_id, methods=["gradcam", "saliency"])
    finally:
        handle.remove()
        eng.close()
    assert runs == [1] and eng.compute_calls == 3  # one prediction, two maps
    assert list(ex.methods) == ["gradcam", "saliency"] and all(r.map.shape == (64, 64) for r in ex.methods.values())


def test_method_results_carry_the_registered_scores_asked_for(engine):
    """``scores`` is keyed by the score registry: TKO always, the others when asked for, each
    equal to a computation written here from its definition."""
    ids = [i for i in engine.catalogue.image_ids("test") if engine.catalogue.sample(i).has_mask][:2]
    assert set(engine.explain(7, ids[0], methods=["saliency"]).methods["saliency"].scores) == {"tko"}
    with pytest.raises(ValueError, match="unknown score 'nope'"):
        next(engine.explain_many(7, ids, ["saliency"], scores=["nope"]))
    for ex in engine.explain_many(7, ids, ["gradcam", "saliency"], scores=["pointing", "auroc"]):
        for r in ex.methods.values():
            a, s = r.map.ravel().astype(np.float64), ex.mask.ravel()
            at_max = a == a.max()
            inside, outside = a[s], a[~s]
            wins = (inside[:, None] > outside[None, :]).sum() + 0.5 * (inside[:, None] == outside[None, :]).sum()
            assert set(r.scores) == {"tko", "pointing", "auroc"} and r.tko == r.scores["tko"]
            assert r.scores["pointing"] == pytest.approx((at_max & s).sum() / at_max.sum())
            assert r.scores["auroc"] == pytest.approx(wins / (len(inside) * len(outside)))


def test_the_engine_offers_everything_the_dashboard_asks_of_it(engine):
    """Every member of the contract exists on the engine (or its part), each method with the
    contract's parameters: the dashboard can rely on the Protocol alone."""
    import inspect

    from pixel_evidence.engine.contract import Engine, Models, UnitPictures

    for protocol, part in ((Engine, engine), (Models, engine.pool), (UnitPictures, engine.dissector)):
        members = {k: v for k, v in vars(protocol).items() if not k.startswith("_")}
        assert members
        for name, member in members.items():
            assert hasattr(part, name), f"{type(part).__name__} has no {name}"
            if inspect.isfunction(member):
                wanted = list(inspect.signature(member).parameters)[1:]  # without self
                assert list(inspect.signature(getattr(part, name)).parameters) == wanted, name

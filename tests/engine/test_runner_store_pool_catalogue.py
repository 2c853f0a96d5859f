"""Contracts of the engine's parts on their own: the pass runner, the map store, the model
pool and the image catalogue."""

from __future__ import annotations

import json
import shutil
import threading
import time

import numpy as np
import pytest
import torch

from pixel_evidence.data import DataError
from pixel_evidence.engine.catalogue import ImageCatalogue
from pixel_evidence.engine.map_store import MapKey, MapStore
from pixel_evidence.engine.model_pool import ModelPool
from pixel_evidence.engine.pass_runner import PassRunner, pass_groups
from pixel_evidence.engine.priority_lock import (BACKGROUND, INTERACTIVE, SLOW, PriorityLock, background,
                                                 current_priority)
from pixel_evidence.explainers import get_explainer
from pixel_evidence.models import CheckpointError, save_checkpoint
from tests.explainers.nets import TinyNet
from tests.rounding import assert_same_but_for_order, in_float64


@pytest.fixture
def net():
    return TinyNet().eval()


@pytest.fixture
def batch():
    torch.manual_seed(1)
    return torch.randn(3, 3, 12, 12), torch.tensor([0, 2, 1])


# ---------------------------------------------------------------- runner

def test_runner_groups_pass_sharing_methods_and_keeps_each_solo_result(net, batch):
    net, x = in_float64(net, batch[0])
    target = batch[1]
    keys = ["saliency", "ig", "gradcam", "xgradcam"]
    explainers = [get_explainer(k)(net, net.body[2], **({"n_steps": 4} if k == "ig" else {})) for k in keys]
    assert pass_groups(explainers) == [[0, 2, 3], [1]]
    calls: list[int] = []
    together = PassRunner(calls.append).attribute(explainers, x, target)
    # one shared call for the three pass-sharing maps; IG batches its steps, so one call per image
    assert calls == [3, 1, 1, 1]
    for key, explainer, got in zip(keys, explainers, together):
        alone = explainer.attribute(x, target)
        assert got.maps.shape == (3, 12, 12), key
        assert_same_but_for_order(got.maps, alone.maps)
        assert set(got.extras) == set(alone.extras)


def test_runner_passes_known_scores_to_methods_that_need_them(net, batch):
    x, target = batch
    ig = get_explainer("ig")(net, None, n_steps=4)
    scores = net(x).detach()
    with_scores = PassRunner().attribute([ig], x, target, scores)[0]
    without = PassRunner().attribute([ig], x, target)[0]
    torch.testing.assert_close(with_scores.maps, without.maps)
    torch.testing.assert_close(with_scores.extras["delta"], without.extras["delta"])


def test_predict_with_returns_the_scores_and_counts_the_prediction(net, batch):
    net, x = in_float64(net, batch[0])
    calls: list[int] = []
    explainers = [get_explainer(k)(net, net.body[2]) for k in ("gradcam", "saliency")]
    p, maps = PassRunner(calls.append).predict_with(explainers, x, None)
    assert calls == [3]
    torch.testing.assert_close(p.scores, net(x).detach())
    assert torch.equal(p.target, net(x).argmax(1))
    for e, got in zip(explainers, maps):
        assert_same_but_for_order(got.maps, e.attribute(x, p.target).maps)


def test_predict_with_refuses_methods_that_cannot_share_a_pass(net, batch):
    x, _ = batch
    with pytest.raises(ValueError, match="pass-sharing"):
        PassRunner().predict_with([get_explainer("ig")(net, None)], x, None)


# ---------------------------------------------------------------- map store

def _key(method="saliency", params="p1", target=0, weights="w1"):
    return MapKey(seed=1, image_id="crack-000", method=method, params=params, target=target,
                  weights=weights, image_size=8)


def _value(fill: float) -> dict[str, np.ndarray]:
    return {"map": np.full((8, 8), fill, np.float32)}


def test_map_store_computes_only_the_missing_methods_in_one_call():
    store = MapStore(cache_mb=1)
    asked: list[list[str]] = []

    def compute(todo):
        asked.append(list(todo))
        return {m: _value(i + 1) for i, m in enumerate(todo)}

    first = store.maps({"a": _key("a"), "b": _key("b")}, compute)
    second = store.maps({"a": _key("a"), "b": _key("b"), "c": _key("c")}, compute)
    assert asked == [["a", "b"], ["c"]]
    assert second["a"] is first["a"] and second["b"] is first["b"]
    assert list(second) == ["a", "b", "c"]


def test_map_store_memo_runs_once_for_concurrent_callers():
    store = MapStore(cache_mb=1)
    runs = []

    def compute():  # whether a caller arrives during or after the leader's run, nobody runs it again
        runs.append(1)
        return _value(3.0)

    results = [None] * 6

    def call(i):
        results[i] = store.memo(("prediction", 1, "x"), compute)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(runs) == 1
    assert all(r is results[0] for r in results)


def test_map_store_reads_disk_after_a_restart_and_recomputes_a_corrupt_file(tmp_path):
    disk = tmp_path / "maps"
    MapStore(1, disk).maps({"a": _key("a")}, lambda todo: {"a": _value(5.0)})
    restarted = MapStore(1, disk)
    assert restarted.on_disk([_key("a")]) and not restarted.on_disk([_key("a", params="p2")])
    got = restarted.maps({"a": _key("a")}, lambda todo: pytest.fail("computed although on disk"))
    np.testing.assert_array_equal(got["a"]["map"], _value(5.0)["map"])
    # another checkpoint (weights hash) never reads this map
    assert not restarted.on_disk([_key("a", weights="w2")])
    path = next(disk.rglob("*.npz"))
    path.write_bytes(b"not an npz")
    fresh = MapStore(1, disk).maps({"a": _key("a")}, lambda todo: {"a": _value(7.0)})
    assert fresh["a"]["map"][0, 0] == 7.0


def test_map_store_memory_stays_within_its_bound():
    store = MapStore(cache_mb=600 / 2**20)  # 600 bytes: one 8x8 float32 map (256 bytes + overhead) fits, not two
    for m in "abc":
        store.maps({m: _key(m)}, lambda todo: {todo[0]: _value(1.0)})
    assert 0 < store.size_bytes <= 600
    store.clear_memory()
    assert store.size_bytes == 0


# ---------------------------------------------------------------- pool and catalogue

def test_model_pool_loads_once_counts_calls_and_names_unknown_seeds(tiny_run):
    root, models, manifest, *_ = tiny_run
    catalogue = ImageCatalogue(root, manifest)
    pool = ModelPool(models, classes=catalogue.classes, manifest_sha256=catalogue.manifest_sha256, device="cpu",
                     method_params={"ig": {"n_steps": 3}})
    network, meta = pool.network(7)
    assert pool.network(7)[0] is network and meta["image_size"] == 64
    assert pool.params_of("ig")["n_steps"] == 3
    first = pool.explainers(7, ["ig", "saliency"])
    assert pool.explainers(7, ["saliency", "ig"]) == first[::-1]
    with pool.running(3):
        pass
    assert pool.compute_calls == 3
    x = pool.input_batch(7, np.zeros((2, 64, 64, 3), np.uint8))
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32
    with pytest.raises(KeyError, match="no model for seed 99"):
        pool.network(99)


def test_model_pool_refuses_models_of_another_manifest(tiny_run):
    root, models, manifest, *_ = tiny_run
    catalogue = ImageCatalogue(root, manifest)
    with pytest.raises(ValueError, match="another split manifest"):
        ModelPool(models, classes=catalogue.classes, manifest_sha256="0" * 64, device="cpu")


def test_catalogue_names_a_missing_image_and_checks_the_split(tiny_run, tmp_path):
    root, models, manifest, *_ = tiny_run
    catalogue = ImageCatalogue(root, manifest)
    first = catalogue.samples[0]
    images, masks = catalogue.load([first], 16)
    assert images.shape == (1, 16, 16, 3) and images.dtype == np.uint8 and masks.dtype == bool
    assert set(catalogue.image_ids("train")) | set(catalogue.image_ids("test")) == {s.id for s in catalogue.samples}
    with pytest.raises(ValueError, match="split must be"):
        catalogue.image_ids("validation")
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / first.path).unlink()
    # one lost file is that image's problem only: named, and refused when loaded
    damaged = ImageCatalogue(copy, manifest)
    assert list(damaged.missing) == [first.id] and first.path in damaged.missing[first.id]
    with pytest.raises(DataError, match=first.path.split("/")[-1]):
        damaged.load([first], 16)


# ---------------------------------------------------------------- priority lock

def _wait_until(condition, cap_s: float = 600.0) -> None:
    """Poll a state until it holds; the cap only stops a broken test from hanging."""
    deadline = time.monotonic() + cap_s
    while not condition():
        assert time.monotonic() < deadline, "state never reached"
        time.sleep(0.001)


def test_priority_lock_serves_a_waiting_click_before_earlier_background_work():
    lock = PriorityLock()
    order: list[str] = []

    def take(name: str, priority: int):
        with lock if priority == INTERACTIVE else _in_background(lock):
            order.append(name)

    lock.acquire()
    threads = []
    for n, (name, priority) in enumerate([("fill-1", BACKGROUND), ("fill-2", BACKGROUND), ("click", INTERACTIVE)]):
        threads.append(threading.Thread(target=take, args=(name, priority)))
        threads[-1].start()
        _wait_until(lambda n=n: lock.waiting == n + 1)
    lock.release()
    for t in threads:
        t.join()
    assert order == ["click", "fill-1", "fill-2"]  # the click first, background work in arrival order


class _in_background:
    def __init__(self, lock):
        self.lock = lock

    def __enter__(self):
        with background():
            self.lock.acquire()

    def __exit__(self, *exc):
        self.lock.release()


def test_priority_lock_is_reentrant_and_owned():
    lock = PriorityLock()
    with lock:
        with lock:
            assert lock.waiting == 0
        errors = []
        t = threading.Thread(target=lambda: errors.append(pytest.raises(RuntimeError, lock.release)))
        t.start()
        t.join()
        assert errors and "does not hold" in str(errors[0].value)
    lock.acquire()  # free again after the nested exits
    lock.release()


def test_precompute_calls_the_model_at_background_priority_and_clicks_at_interactive(engine, monkeypatch):
    seen: dict[str, set[int]] = {}
    original = PriorityLock.acquire

    def spy(self, priority=None):
        seen.setdefault(threading.current_thread().name.split("_")[0], set()).add(current_priority())
        return original(self, priority)

    monkeypatch.setattr(PriorityLock, "acquire", spy)
    engine.clear_cache()
    engine.precompute(7, "test", ["saliency", "ig"]).result()
    engine.clear_cache()
    engine.explain(7, engine.catalogue.image_ids("test")[0], split="test", methods=["saliency", "ig"])
    assert seen["precompute"] == {BACKGROUND}
    assert seen["MainThread"] == {INTERACTIVE}


def test_runner_runs_slow_methods_forwards_at_slow_priority(net, batch):
    """A quick request's forward goes before the next forward of a slow method."""
    seen: list[tuple[str, int]] = []

    class Recording(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.lock, self.method = inner, PriorityLock(), ""

        def forward(self, x):
            seen.append((self.method, current_priority()))
            with self.lock:
                return self.inner(x)

    classifier = Recording(net)
    x, target = batch
    for key, params in (("rise", {"n_masks": 8, "batch_size": 4}), ("saliency", {}), ("scorecam", {})):
        classifier.method = key
        PassRunner().attribute([get_explainer(key)(classifier, net.body[2], **params)], x[:1], target[:1])
    # grouped with Saliency, Score-CAM's share of the pass is quick; its own forwards are slow
    classifier.method = "group"
    PassRunner().attribute([get_explainer(k)(classifier, net.body[2]) for k in ("saliency", "scorecam")],
                           x[:1], target[:1])
    by_method = {m: {p for k, p in seen if k == m} for m in ("rise", "saliency", "scorecam", "group")}
    assert by_method == {"rise": {SLOW}, "saliency": {INTERACTIVE}, "scorecam": {SLOW}, "group": {INTERACTIVE, SLOW}}
    with background():  # never raised above what the caller had
        classifier.method = "rise-bg"
        PassRunner().attribute([get_explainer("rise")(classifier, None, n_masks=4, batch_size=4)], x[:1], target[:1])
    assert {p for k, p in seen if k == "rise-bg"} == {BACKGROUND}


def test_precompute_stops_after_the_image_in_hand(engine):
    stop = threading.Event()
    done: list[int] = []

    def progress(i: int, total: int) -> None:
        done.append(i)
        if i == 2:
            stop.set()

    engine.clear_cache()
    assert engine.precompute(7, "test", ["saliency"], progress=progress, stop=stop).result() == 2
    assert done == [1, 2]


# ---------------------------------------------------------------- disk cache and replaced checkpoints

def _perturbed_weights(models, seed):
    """The seed's stored weights with seeded noise of 5% of each conv or linear weight's
    spread (BatchNorm statistics kept: a variance must stay positive): another model."""
    generator = torch.Generator().manual_seed(seed)
    state = torch.load(models / f"seed_{seed}.pt", weights_only=True)
    return {k: v.float() + 0.05 * v.float().std() * torch.randn(v.shape, generator=generator)
            if v.is_floating_point() and v.ndim >= 2 else v for k, v in state.items()}


def _copy_of_models(tiny_run, tmp_path):
    root, models, *_ = tiny_run
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    return root, copy


def test_disk_cache_recomputes_after_a_checkpoint_is_replaced_and_reads_an_unchanged_one(tiny_run, tmp_path):
    from pixel_evidence.engine.explain import ExplanationEngine
    from pixel_evidence.models import read_metadata, save_checkpoint

    root, models = _copy_of_models(tiny_run, tmp_path)
    disk = tmp_path / "cache"

    def open_engine(disk_cache=disk):
        return ExplanationEngine(root, models, device="cpu", disk_cache=disk_cache, method_params={"ig": {"n_steps": 4}})

    first = open_engine()
    image_id = next(s.id for s in first.catalogue.samples if s.split == "test" and s.has_mask)
    old7 = first.explain(7, image_id, split="test")
    cold = first.compute_calls  # what an image costs with nothing cached
    old8 = first.explain(8, image_id, split="test")
    assert first.compute_calls == 2 * cold and len(list(disk.rglob("*.npz"))) == 6
    first.close()

    # seed 7 retrained: other weights, saved the way training saves them
    meta = read_metadata(models, 7)
    save_checkpoint(models, 7, _perturbed_weights(models, 7),
                    {k: v for k, v in meta.items() if k not in ("seed", "weights_file", "weights_sha256")})
    assert read_metadata(models, 7)["weights_sha256"] != meta["weights_sha256"]

    second = open_engine()
    new7 = second.explain(7, image_id, split="test")
    assert second.compute_calls == cold  # every map computed again, none read from disk
    fresh = open_engine(disk_cache=None).explain(7, image_id, split="test")  # the new model's maps, no disk at all
    for m in old7.methods:
        assert not np.array_equal(new7.methods[m].map, old7.methods[m].map), m
        assert np.array_equal(new7.methods[m].map, fresh.methods[m].map), m
    # the unchanged seed 8 costs its prediction forward only: its maps come from disk
    calls = second.compute_calls
    again8 = second.explain(8, image_id, split="test")
    assert second.compute_calls == calls + 1
    for m in old8.methods:
        assert np.array_equal(again8.methods[m].map, old8.methods[m].map), m
    assert len(list(disk.rglob("*.npz"))) == 9
    second.close()


def test_a_retrain_killed_before_its_metadata_leaves_no_seed_to_read_old_maps_for(tiny_run, tmp_path, monkeypatch):
    # A retrain killed before its metadata is written leaves the new weights and no metadata:
    # the seed is unfinished, so no engine serves the old maps the disk cache keeps for it.
    from pixel_evidence.engine.explain import ExplanationEngine
    from pixel_evidence.models import checkpoint, read_metadata

    root, models = _copy_of_models(tiny_run, tmp_path)
    disk = tmp_path / "cache"
    first = ExplanationEngine(root, models, device="cpu", disk_cache=disk, method_params={"ig": {"n_steps": 4}})
    image_id = next(s.id for s in first.catalogue.samples if s.split == "test" and s.has_mask)
    first.explain(7, image_id, split="test")
    first.close()

    meta = read_metadata(models, 7)

    def killed(path, text):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "atomic_write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(models, 7, _perturbed_weights(models, 7), {"classes": meta["classes"]})
    monkeypatch.undo()
    assert not (models / "seed_7.json").exists()

    second = ExplanationEngine(root, models, device="cpu", disk_cache=disk, method_params={"ig": {"n_steps": 4}})
    assert 7 not in second.pool.seeds and any(w.startswith("skipped seed 7:") for w in second.warnings)
    with pytest.raises(KeyError, match="no model for seed 7"):
        second.explain(7, image_id, split="test")
    second.close()


def test_a_seed_retrained_after_the_engine_started_is_refused_not_mixed(tiny_run, tmp_path):
    """Caches are keyed by the weights' hash read at start; weights replaced before the seed's
    first use must not be served under that hash."""
    root, models, manifest, *_ = tiny_run
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    catalogue = ImageCatalogue(root, manifest)
    pool = ModelPool(copy, classes=catalogue.classes, manifest_sha256=catalogue.manifest_sha256, device="cpu")
    state = torch.load(copy / "seed_7.pt", weights_only=True)
    meta = json.loads((copy / "seed_7.json").read_text())
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] = state[first] + 1
    save_checkpoint(copy, 7, state, {k: v for k, v in meta.items() if k != "weights_sha256"})
    with pytest.raises(CheckpointError, match="retrained since this engine started"):
        pool.network(7)
    pool.network(8)  # the other seed is untouched


def test_background_work_gives_way_while_clicks_keep_coming():
    """After an interactive forward, lower-priority callers wait out the grace period, so
    they cannot slip into the gaps between a click's forwards; a new click still goes at once."""
    lock = PriorityLock(grace=3600)  # longer than any test: only the state decides below
    got: list[str] = []
    with lock:  # a click's forward
        pass
    fill = threading.Thread(target=lambda: (_in_background(lock).__enter__(), got.append("fill"), lock.release()))
    fill.start()
    _wait_until(lambda: lock.waiting == 1)
    with lock:  # the click's next forward is not held up by the waiting fill
        got.append("click")
    assert got == ["click"] and lock.waiting == 1
    lock.grace = 0  # the clicks stop: end the grace now instead of waiting an hour
    fill.join()
    assert got == ["click", "fill"]


def test_engine_options_stand_in_classes_prepare_and_an_unshared_prediction(tiny_run):
    """What the benchmark's ablation builds its configurations from, instead of patching the
    engine: a stand-in class computes its method, ``prepare`` readies every network, and
    without a shared pass the prediction costs a forward of its own (one more model call)."""
    import numpy as np

    from pixel_evidence.engine.explain import ExplanationEngine
    from pixel_evidence.explainers.saliency import Saliency
    from pixel_evidence.models import prepare_for_inference

    class DoubledSaliency(Saliency):
        def from_pass(self, p):
            return type(super().from_pass(p))(2 * super().from_pass(p).maps)

    prepared = []

    def prepare(net, device):
        prepared.append(device)
        return prepare_for_inference(net, device)

    root, models, *_ = tiny_run
    plain = ExplanationEngine(root, models, device="cpu")
    other = ExplanationEngine(root, models, device="cpu", explainer_classes={"saliency": DoubledSaliency},
                              prepare=prepare, share_prediction_pass=False)
    try:
        seed = plain.pool.seeds[0]
        image_id = next(i for i in plain.catalogue.image_ids("test") if plain.catalogue.sample(i).has_mask)
        forwards = {"plain": 0, "other": 0}
        for name, eng in (("plain", plain), ("other", other)):
            eng.pool.network(seed)[0].register_forward_hook(
                lambda *_a, name=name: forwards.__setitem__(name, forwards[name] + 1))
        a = plain.explain(seed, image_id, methods=["saliency"]).methods["saliency"].map
        b = other.explain(seed, image_id, methods=["saliency"]).methods["saliency"].map
        np.testing.assert_allclose(b, 2 * a, rtol=1e-6)
        assert prepared == [other.pool.device]
        # whole-network calls: the unshared prediction adds its own forward (the pass runs the parts)
        assert forwards["other"] == forwards["plain"] + 1
        with pytest.raises(ValueError, match="unknown method"):
            ExplanationEngine(root, models, device="cpu", explainer_classes={"nope": DoubledSaliency})
    finally:
        plain.close()
        other.close()

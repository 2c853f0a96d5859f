"""``ExplanationEngine``: models, explanations, metrics and caches behind one object.

Everything the dashboard and the evaluate command show comes from here::

    engine = load_engine()                      # built-in data and shipped models
    ex = engine.explain(42, "test", "test-crack-003")
    ex.methods["gradcam"].tko, ex.ranking

Thread-safety: one lock serialises model calls (captum's hooks are not thread-safe);
concurrent requests for the same item share one computation; results are kept in a
byte-bounded LRU and, optionally, on disk keyed by the checkpoint hash.

Speed: methods that need only one forward/backward of the class score (Grad-CAM,
Saliency) are computed from one shared pass when they are asked for together, and on a
cold image that pass is the prediction forward too (the reconstruction is decoded from the
features it captured); Integrated Gradients takes F(x) for its convergence gap from that
forward. Models run with BatchNorm folded into the convolutions and in channels-last layout
(see ``model.prepare_for_inference``); the inputs of a cold request are built from the
cached prediction's image, not read from disk again.
"""

from __future__ import annotations

import copy
import functools
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from . import metrics
from .cache import ByteLRU, DiskCache, SingleFlight, digest
from .models import CheckpointError, available_seeds, load_model, read_metadata
from .data import DataError, Sample, load_image, load_mask, read_manifest, to_normalized_tensor
from .explanation import Explanation, MethodResult, Prediction
from .files import file_sha256
from .device import pick_device
from .explainers import DEFAULT_METHODS, REGISTRY, get_explainer
from .explainers.base import ACTIVATION, Attribution, Explainer, attribute_group, pass_groups, shared_pass
from .metrics.faithfulness import MODES, STARTS, Curve, perturbation_curve
from .models import ClassifierView, prepare_for_inference
from .metrics.sanity import SanityResult, cascading_randomization

log = logging.getLogger("pixel_evidence.engine")

TARGETS = ("predicted", "true")


class ExplanationEngine:
    """Lazy models per seed, cached explanations, metrics.

    Parameters
    ----------
    data_root: MVTec-layout category folder.
    models_dir: folder of ``seed_<n>.pt/.json`` checkpoints and ``manifest.csv``.
    manifest: split manifest (default ``<models_dir>/manifest.csv``).
    device: "auto" (CUDA, then MPS, then CPU) or a torch device string.
    cache_mb: bound of the in-memory cache.
    disk_cache: folder for a persistent map cache, or None.
    method_params: per-method settings, e.g. ``{"ig": {"n_steps": 32}}``.
    """

    def __init__(self, data_root: Path, models_dir: Path, *, manifest: Path | None = None,
                 device: str | None = "auto", cache_mb: float = 256, disk_cache: Path | None = None,
                 method_params: dict[str, dict[str, Any]] | None = None):
        self.data_root = Path(data_root)
        self.models_dir = Path(models_dir)
        self.manifest_path = Path(manifest) if manifest else self.models_dir / "manifest.csv"
        self.samples: list[Sample] = read_manifest(self.manifest_path)
        self.manifest_sha256 = file_sha256(self.manifest_path)
        self._by_id = {s.id: s for s in self.samples}
        self.classes = tuple(sorted({s.cls for s in self.samples}))
        self.seeds = available_seeds(self.models_dir)
        if not self.seeds:
            raise CheckpointError(f"{self.models_dir}: no trained models (seed_<n>.pt + .json); "
                                  "train them with `pixel-evidence train`")
        self.meta = {seed: read_metadata(self.models_dir, seed) for seed in self.seeds}
        for seed, meta in self.meta.items():
            if tuple(meta["classes"]) != self.classes:
                raise CheckpointError(f"{self.models_dir}/seed_{seed}.json: model classes {meta['classes']} "
                                      f"differ from the manifest's {list(self.classes)}")
            if meta.get("manifest_sha256") != self.manifest_sha256:
                raise CheckpointError(f"{self.models_dir}/seed_{seed}.json: trained on another split manifest "
                                      f"than {self.manifest_path}; use the manifest shipped with the models")
        missing = next((s for s in self.samples if not (self.data_root / s.path).is_file()), None)
        if missing is not None:
            raise DataError(f"{self.data_root / missing.path}: listed in {self.manifest_path} but missing; "
                            "point --data at the category the models were trained on")
        self.device = pick_device(device)
        self.method_params = {k: dict(v) for k, v in (method_params or {}).items()}
        for key in self.method_params:
            get_explainer(key)
        self.metrics = metrics
        self._model_lock = threading.RLock()
        self._models: dict[int, tuple[torch.nn.Module, dict]] = {}
        # per seed: one classifier view, and the explainers made on it (see ``_explainers``)
        self._views: dict[int, ClassifierView] = {}
        self._explainer_objects: dict[int, dict[str, Explainer]] = {}
        self._cache = ByteLRU(cache_mb)
        self._flight = SingleFlight()
        self._disk = DiskCache(disk_cache) if disk_cache else None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="precompute")
        # Prediction forwards plus method maps actually computed, not served from a cache
        # (maps that share one gradient pass count one each); for tests and stats.
        self.compute_calls = 0

    # ------------------------------------------------------------ catalogue

    def image_size(self, seed: int) -> int:
        return int(self.meta[seed]["image_size"])

    def sample(self, image_id: str) -> Sample:
        try:
            return self._by_id[image_id]
        except KeyError:
            raise KeyError(f"unknown image id {image_id!r}") from None

    def image_ids(self, split: str, cls: str | None = None) -> list[str]:
        """Ids of ``split`` ("train"/"test"), optionally one class, in manifest order."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return [s.id for s in self.samples if s.split == split and (cls is None or s.cls == cls)]

    def method_labels(self) -> dict[str, str]:
        return {k: cls.label for k, cls in REGISTRY.items()}

    def params_of(self, method: str) -> dict[str, Any]:
        cls = get_explainer(method)
        return {**cls.defaults, **self.method_params.get(method, {})}

    # ------------------------------------------------------------ models

    def model(self, seed: int) -> tuple[torch.nn.Module, dict]:
        """The network of ``seed``, loaded once per process, on the engine's device."""
        if seed not in self.meta:
            raise KeyError(f"no model for seed {seed}; available: {self.seeds}")
        with self._model_lock:
            if seed not in self._models:
                net, meta = load_model(self.models_dir, seed, device=self.device, classes=self.classes,
                                       manifest_sha256=self.manifest_sha256)
                # BatchNorm folded, channels-last; attributions need input gradients only
                net = prepare_for_inference(net, self.device).requires_grad_(False)
                self._models[seed] = (net, meta)
                self._views[seed] = ClassifierView(net)
                self._explainer_objects[seed] = {}
                log.info("loaded model seed %d on %s", seed, self.device)
            return self._models[seed]

    def _inputs(self, seed: int, samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        size = self.image_size(seed)
        images = np.stack([load_image(self.data_root, s, size) for s in samples])
        masks = np.stack([load_mask(self.data_root, s, size) for s in samples])
        return images, masks, self._tensor(seed, images)

    def _tensor(self, seed: int, images: np.ndarray) -> torch.Tensor:
        """uint8 images (N, H, W, 3) -> normalized batch on the device, in the model's layout."""
        norm = self.meta[seed]["normalization"]
        x = to_normalized_tensor(images, norm["mean"], norm["std"]).to(self.device)
        return x.contiguous(memory_format=self._memory_format(seed))

    def _memory_format(self, seed: int) -> torch.memory_format:
        net, _ = self.model(seed)
        return getattr(net, "input_memory_format", torch.contiguous_format)

    def clear_cache(self) -> None:
        """Forget every cached prediction and map held in memory (the disk cache stays)."""
        self._cache = ByteLRU(self._cache.max_bytes / (1024 * 1024))

    # ------------------------------------------------------------ cached pieces

    def _cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        hit = self._cache.get(key)
        if hit is not None:
            return hit

        def fill():
            again = self._cache.get(key)
            if again is not None:
                return again
            value = compute()
            self._cache.put(key, value)
            return value

        return self._flight.run(key, fill)

    def _forward_batch(self, seed: int, samples: Sequence[Sample],
                       loaded: tuple[np.ndarray, np.ndarray, torch.Tensor] | None = None,
                       fuse: Sequence[str] = (), target: str = "predicted"
                       ) -> tuple[list[Prediction], dict[str, list[dict[str, np.ndarray]]]]:
        """The prediction of each image (``image``, ``mask``, ``logits`` (C,),
        ``probabilities`` (C,), ``reconstruction`` (H, W)) and the maps of ``fuse``.

        ``fuse`` lists pass-sharing methods (see ``explainers.base.shared_pass``) to compute
        in the same forward, for ``target``: their gradient pass yields the class scores, and
        the decoder reads the encoder features that pass captured, so no separate
        prediction forward runs. Maps come back as ``{method: [per-image dict]}``; they
        explain the class ``_target_index`` gives (for "predicted", the top class of the
        returned logits).
        """
        images, masks, x = loaded if loaded is not None else self._inputs(seed, samples)
        net, _ = self.model(seed)
        fused: dict[str, list[dict[str, np.ndarray]]] = {}
        if fuse:
            explainers = self._explainers(seed, fuse)
            known = None if target == "predicted" else torch.tensor(
                [self.classes.index(s.cls) for s in samples], device=self.device)
            with self._model_lock:
                self.compute_calls += 1 + len(fuse)
                p, attributions = shared_pass(explainers, x, known, also=frozenset({ACTIVATION}))
                with torch.inference_mode():
                    # the captured layer is the encoder's last block: its output is what the decoder reads
                    logits, mask_logits = p.scores, net.decoder(p.activation)
            fused = {m: _per_image(a) for m, a in zip(fuse, attributions)}
        else:
            with self._model_lock, torch.inference_mode():
                self.compute_calls += 1
                logits, mask_logits = net(x)
        probs = torch.softmax(logits, 1).float().cpu().numpy()
        recon = torch.sigmoid(mask_logits[:, 0]).float().cpu().numpy()
        logits = logits.float().cpu().numpy()
        bases = [Prediction(image=images[i], mask=masks[i], logits=logits[i], probabilities=probs[i],
                            reconstruction=recon[i]) for i in range(len(samples))]
        return bases, fused

    def prediction(self, seed: int, image_id: str) -> Prediction:
        """The model's prediction of one image (cached), with the image and mask it saw."""
        return self._predict(seed, self.sample(image_id), (), "predicted")

    def input_batch(self, seed: int, images: np.ndarray) -> torch.Tensor:
        """uint8 images (N, H, W, 3) as ``seed``'s network takes them: normalized, on the
        engine's device, in the network's memory layout."""
        return self._tensor(seed, images)

    @contextmanager
    def exclusive(self):
        """Hold the model lock: no other engine call runs a network meanwhile (for timing)."""
        with self._model_lock:
            yield

    def _predict(self, seed: int, sample: Sample, methods: Sequence[str], target: str) -> Prediction:
        """The cached prediction of ``sample``; on a miss, those of ``methods`` that share a
        gradient pass and are not on disk are computed in the same forward and cached."""
        def compute() -> Prediction:
            fuse = [m for m in methods if REGISTRY[m].pass_needs and not self._on_disk(seed, sample.id, m)]
            bases, fused = self._forward_batch(seed, [sample], fuse=fuse, target=target)
            for m in fuse:
                self._store(seed, sample.id, m, self._target_index(bases[0], sample, target), fused[m][0])
            return bases[0]

        return self._cached(("base", seed, sample.id), compute)

    def _target_index(self, base: Prediction, sample: Sample, target: str) -> int:
        """The class index the maps explain; ``target`` was checked by ``_requested``."""
        if target == "predicted":
            return int(np.argmax(base.logits))
        return self.classes.index(sample.cls)

    def _disk_key(self, seed: int, image_id: str, method: str, target_idx: int) -> str:
        return digest(self.meta[seed]["weights_sha256"], image_id, self.image_size(seed), method,
                      self.params_of(method), target_idx)

    def _explainers(self, seed: int, methods: Sequence[str]) -> list[Explainer]:
        """The explainers of ``methods`` on ``seed``'s network, made once per process (they
        may memoize network constants, such as the black image's scores for IG), all on one
        classifier view so that pass-sharing methods can be grouped."""
        net, meta = self.model(seed)
        norm = meta["normalization"]
        made = self._explainer_objects[seed]
        with self._model_lock:
            for m in methods:
                if m not in made:
                    made[m] = get_explainer(m)(self._views[seed], net.gradcam_layer, input_mean=norm["mean"],
                                               input_std=norm["std"], **self.method_params.get(m, {}))
            return [made[m] for m in methods]

    def _attribute_batch(self, seed: int, x: torch.Tensor, methods: Sequence[str], targets: Sequence[int],
                         scores: np.ndarray | None = None) -> dict[str, list[dict[str, np.ndarray]]]:
        """Maps of several methods on the images of ``x``: {method: [{"map": (H, W), extra: ()}]}.

        ``scores`` (N, C): the images' logits, if known (see ``Explainer.attribute``).
        Methods that can share a gradient pass get one pass; the lock is taken per pass so
        interactive requests wait for at most one of them. Methods that batch internally
        (``batch_images`` False) run one image per call.
        """
        explainers = self._explainers(seed, methods)
        target = torch.tensor(list(targets), device=self.device)
        known = torch.as_tensor(scores, device=self.device) if scores is not None else None
        out: dict[str, list[dict[str, np.ndarray]]] = {}
        for group in pass_groups(explainers):
            members = [explainers[i] for i in group]
            step = len(x) if all(e.batch_images for e in members) else 1
            parts: list[list[Attribution]] = [[] for _ in members]
            for j in range(0, len(x), step):
                with self._model_lock:
                    self.compute_calls += len(members)
                    results = attribute_group(members, x[j:j + step], target[j:j + step],
                                              known[j:j + step] if known is not None else None)
                for part, r in zip(parts, results):
                    part.append(r)
            for i, part in zip(group, parts):
                out[methods[i]] = _per_image(Attribution(torch.cat([r.maps for r in part]),
                                                         {k: torch.cat([r.extras[k] for r in part])
                                                          for k in part[0].extras}))
        return out

    def _store(self, seed: int, image_id: str, method: str, target_idx: int, value: dict[str, np.ndarray]) -> None:
        """Keep one computed map in the memory cache and, if there is one, on disk."""
        if self._disk:
            self._disk.put(self._disk_key(seed, image_id, method, target_idx), value)
        self._cache.put(self._map_key(seed, image_id, method, target_idx), value)

    def _on_disk(self, seed: int, image_id: str, method: str) -> bool:
        """Whether the disk cache holds ``method``'s map of the image for any target class."""
        return bool(self._disk) and any(self._disk.has(self._disk_key(seed, image_id, method, t))
                                        for t in range(len(self.classes)))

    def _map_key(self, seed: int, image_id: str, method: str, target_idx: int) -> tuple:
        return ("map", seed, image_id, method, digest(self.params_of(method)), target_idx)

    def _maps(self, seed: int, sample: Sample, base: Prediction, methods: Sequence[str],
              target_idx: int) -> dict[str, dict[str, np.ndarray]]:
        """Every method's map of one image: from the LRU, else the disk cache, else computed,
        all missing methods in one call so that they can share passes."""
        keys = {m: self._map_key(seed, sample.id, m, target_idx) for m in methods}
        found = {m: v for m in methods if (v := self._cache.get(keys[m])) is not None}
        missing = [m for m in methods if m not in found]
        if missing:
            flight_key = ("maps", seed, sample.id, target_idx) + tuple(keys[m] for m in missing)
            found.update(self._flight.run(flight_key, lambda: self._fill(seed, sample, base, missing, target_idx, keys)))
        return {m: found[m] for m in methods}

    def _fill(self, seed: int, sample: Sample, base: Prediction, methods: Sequence[str], target_idx: int,
              keys: dict[str, tuple]) -> dict[str, dict[str, np.ndarray]]:
        got: dict[str, dict[str, np.ndarray]] = {}
        for m in methods:  # another request may have filled some meanwhile
            hit = self._cache.get(keys[m])
            if hit is not None:
                got[m] = hit
        dkeys = {m: self._disk_key(seed, sample.id, m, target_idx) for m in methods} if self._disk else {}
        for m in methods:
            if m not in got and self._disk:
                stored = self._disk.get(dkeys[m])
                if stored is not None and "map" in stored:
                    got[m] = stored
                    self._cache.put(keys[m], stored)
        todo = [m for m in methods if m not in got]
        if todo:
            x = self._tensor(seed, base.image[None])
            computed = self._attribute_batch(seed, x, todo, [target_idx], base.logits[None])
            for m in todo:
                got[m] = computed[m][0]
                self._store(seed, sample.id, m, target_idx, got[m])
        return got

    # ------------------------------------------------------------ public API

    def explain(self, seed: int, split: str, image_id: str, methods: Iterable[str] = DEFAULT_METHODS,
                target: str = "predicted") -> Explanation:
        """Image, mask, reconstruction, prediction and every method's map with its scores.

        ``split`` must be the image's split (a guard against stale dashboard state).
        ``target`` is "predicted" (default) or "true": the class the maps explain.
        """
        sample = self.sample(image_id)
        if sample.split != split:
            raise KeyError(f"image {image_id!r} is in the {sample.split} split, not {split}")
        methods = _requested(methods, target)
        base = self._predict(seed, sample, methods, target)
        target_idx = self._target_index(base, sample, target)
        maps = self._maps(seed, sample, base, methods, target_idx)
        return self._assemble(seed, sample, base, maps, target, target_idx)

    def _assemble(self, seed: int, sample: Sample, base: Prediction, maps: dict[str, dict], target: str,
                  target_idx: int) -> Explanation:
        mask = base.mask
        scores = {m: metrics.localisation_scores(v["map"], mask) for m, v in maps.items()}
        tkos = {m: s["tko"] for m, s in scores.items()}
        ranks = metrics.rank_methods(tkos)
        shares = metrics.win_shares(tkos)
        results = {
            m: MethodResult(key=m, label=REGISTRY[m].label, map=v["map"], tko=scores[m]["tko"],
                            chance=scores[m]["chance"], lift=scores[m]["lift"], iou=scores[m]["iou"],
                            rank=ranks[m], win_share=shares[m],
                            extras={k: float(x) for k, x in v.items() if k != "map"})
            for m, v in maps.items()}
        return Explanation(seed=seed, split=sample.split, image_id=sample.id, true_class=sample.cls,
                           image=base.image, mask=mask, reconstruction=base.reconstruction,
                           classes=self.classes, probabilities=base.probabilities, target_mode=target,
                           target_class=self.classes[target_idx], methods=results,
                           k=int(mask.sum()), n=int(mask.size))

    def explain_many(self, seed: int, image_ids: Sequence[str], methods: Iterable[str] = DEFAULT_METHODS,
                     target: str = "predicted", batch_size: int = 8,
                     progress: Callable[[int], None] | None = None) -> Iterable[Explanation]:
        """Explanations for many images, computed in batches (for evaluation).

        Yields in ``image_ids`` order; ``progress(n)`` is called after each batch with its size.
        Batched results are not pushed through the LRU, so a long run cannot evict what
        interactive users are looking at.
        """
        methods = _requested(methods, target)
        for start in range(0, len(image_ids), batch_size):
            chunk = [self.sample(i) for i in image_ids[start:start + batch_size]]
            loaded = self._inputs(seed, chunk)
            # a separate prediction forward: fusing it into the gradient pass saves nothing
            # measurable on a batch (a few percent either way, within the noise)
            bases, _ = self._forward_batch(seed, chunk, loaded)
            targets = [self._target_index(b, s, target) for b, s in zip(bases, chunk)]
            per_method = self._attribute_batch(seed, loaded[2], methods, targets,
                                               np.stack([b.logits for b in bases]))
            for i, (sample, base) in enumerate(zip(chunk, bases)):
                yield self._assemble(seed, sample, base, {m: per_method[m][i] for m in methods}, target, targets[i])
            if progress:
                progress(len(chunk))

    def precompute(self, seed: int, split: str, methods: Iterable[str] = DEFAULT_METHODS,
                   target: str = "predicted", progress: Callable[[int, int], None] | None = None) -> Future:
        """Fill the cache for a whole split in the background; ``progress(done, total)``.

        Images are computed one by one through ``explain``, so interactive requests wait
        at most one model call for the lock.
        """
        ids = self.image_ids(split)
        methods = list(methods)

        def run() -> int:
            for i, image_id in enumerate(ids, 1):
                self.explain(seed, split, image_id, methods, target)
                if progress:
                    progress(i, len(ids))
            return len(ids)

        return self._executor.submit(run)

    # ------------------------------------------------------------ model-side checks of a map

    def faithfulness(self, ex: Explanation, *, start: str = "black", steps: int = 20) -> dict[str, dict[str, Curve]]:
        """Deletion and insertion curves of every map in ``ex``: ``{method: {"deletion": Curve,
        "insertion": Curve}}``, for the class the maps explain.

        ``start``: "black" or "blur", what removed pixels become (deletion) and what the
        insertion starts from; ``steps``: points per curve after the first. Each curve is one
        batched forward under ``torch.inference_mode``; results are cached like maps.
        """
        if start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}, got {start!r}")
        net, meta = self.model(ex.seed)
        norm = meta["normalization"]
        target_idx = self.classes.index(ex.target_class)
        view = self._views[ex.seed]
        inputs = functools.cache(lambda: self._tensor(ex.seed, ex.image[None]))  # built once, on a cache miss
        out = {}
        for m, r in ex.methods.items():
            def compute(r=r) -> dict[str, Curve]:
                x = inputs()
                with self._model_lock:
                    self.compute_calls += 1
                    return {mode: perturbation_curve(view, x, r.map, target_idx, mode=mode, start=start, steps=steps,
                                                     mean=norm["mean"], std=norm["std"]) for mode in MODES}
            key = ("faithfulness", ex.seed, ex.image_id, m, digest(self.params_of(m)), target_idx, start, steps)
            out[m] = self._cached(key, compute)
        return out

    def sanity(self, ex: Explanation, methods: Iterable[str] | None = None) -> dict[str, SanityResult]:
        """Cascading randomization of ``ex``'s model for each method (default: all in ``ex``).

        The maps of ``ex`` are the references; each method is recomputed after re-initialising
        the classifier head, then every encoder stage from the top down. Runs on a private
        copy of the network, so other requests are not blocked while it runs.
        """
        net, meta = self.model(ex.seed)
        norm = meta["normalization"]
        target_idx = self.classes.index(ex.target_class)
        inputs = functools.cache(lambda: self._tensor(ex.seed, ex.image[None]))  # built once, on a cache miss
        out = {}
        for m in (list(methods) if methods is not None else list(ex.methods)):
            if m not in ex.methods:
                raise KeyError(f"{m!r} is not among the explanation's methods {list(ex.methods)}")

            def compute(m=m) -> SanityResult:
                with self._model_lock:  # a copy taken while no other call has hooks on the network
                    self.compute_calls += 1
                    work = copy.deepcopy(net)
                return cascading_randomization(work, m, inputs(), target_idx, params=self.params_of(m), mean=norm["mean"],
                                               std=norm["std"], original=ex.methods[m].map)
            key = ("sanity", ex.seed, ex.image_id, m, digest(self.params_of(m)), target_idx)
            out[m] = self._cached(key, compute)
        return out

    def history(self, seed: int) -> list[dict[str, Any]]:
        """Per-epoch training history recorded in the checkpoint metadata."""
        return list(self.meta[seed].get("history", []))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def load_engine(data: Path | str | None = None, models: Path | str | None = None, **kwargs: Any) -> ExplanationEngine:
    """The engine on ``data`` (default: the built-in synthetic set, generated on first use)
    and ``models`` (default: the shipped ``pretrained_models/``)."""
    from .data.synthetic import ensure_default_data

    root = Path(data) if data else ensure_default_data()
    models_dir = Path(models) if models else Path(__file__).resolve().parent.parent / "pretrained_models"
    return ExplanationEngine(root, models_dir, **kwargs)


def _per_image(a: Attribution) -> list[dict[str, np.ndarray]]:
    """A batch's attribution as one ``{"map": (H, W) float32, extra: ()}`` per image."""
    maps = np.ascontiguousarray(a.maps.cpu().numpy(), dtype=np.float32)
    extras = {k: v.float().cpu().numpy() for k, v in a.extras.items()}
    return [{"map": maps[n], **{k: np.asarray(v[n]) for k, v in extras.items()}} for n in range(len(maps))]


def _requested(methods: Iterable[str], target: str) -> list[str]:
    """``methods`` without repeats, each checked to exist, and ``target`` checked."""
    methods = list(dict.fromkeys(methods))
    for m in methods:
        get_explainer(m)
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    return methods

"""``ExplanationEngine``: the front that composes the engine's parts.

Everything the dashboard and the evaluate command show comes from here::

    engine = load_engine()                      # built-in data and shipped models
    ex = engine.explain(42, image_id="hole-000")
    ex.methods["gradcam"].tko, ex.ranking

The parts: ``ImageCatalogue`` (which images, read at model size), ``ModelPool`` (one
network per seed, one lock for all model calls), ``PassRunner`` (methods grouped into
shared gradient passes), ``MapStore`` (memory LRU + disk + single-flight),
``explanation.assemble`` (scores and ranking), ``Dissector`` (Network Dissection of a
stage) and ``ImportedMaps`` (maps made elsewhere, served beside the computed ones). One
request flows image -> tensor (built once) -> prediction -> maps -> scores. On a cold image
the prediction rides on the gradient pass that Saliency and the CAM family share, and the
reconstruction is decoded from the encoder features that pass captured. A network without a
mask decoder (a plain classifier, a user's model) has no reconstruction.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from pixel_evidence.checks.results import Curve, SanityResult
from pixel_evidence.data import DataError, Sample
from pixel_evidence.engine.cache import digest
from pixel_evidence.engine.catalogue import ImageCatalogue
from pixel_evidence.engine.dissector import Dissector
from pixel_evidence.engine.explanation import TARGETS, Explanation, Prediction, assemble
from pixel_evidence.engine.map_store import MapKey, MapStore, MapValue
from pixel_evidence.engine.model_checks import ModelChecks
from pixel_evidence.engine.model_pool import ModelPool
from pixel_evidence.engine.pass_runner import PassRunner
from pixel_evidence.engine.priority_lock import background
from pixel_evidence.explainers import REGISTRY, Explainer
from pixel_evidence.explainers.base import ACTIVATION
from pixel_evidence.imported_maps import ImportedMaps
from pixel_evidence.methods import DEFAULT_METHODS, method_labels
from pixel_evidence.run_folders import SHIPPED_MODELS

log = logging.getLogger("pixel_evidence.engine")


class ExplanationEngine:
    """Lazy models per seed, cached explanations, metrics.

    Parameters
    ----------
    data_root: data folder in any layout ``data.layouts`` reads (the manifest lists its files).
    models_dir: folder of ``seed_<n>.pt/.json`` checkpoints and ``manifest.csv``.
    manifest: split manifest (default ``<models_dir>/manifest.csv``).
    device: "auto" (CUDA, then MPS, then CPU) or a torch device string.
    cache_mb: bound of the in-memory cache.
    disk_cache: folder for a persistent map cache, or None.
    method_params: per-method settings, e.g. ``{"ig": {"n_steps": 32}}``.
    explainer_classes, prepare: stand-in method classes and network preparation, see ``ModelPool``.
    share_prediction_pass: let the methods that read one gradient pass ride on the prediction's
        forward (the default); False gives the prediction a forward of its own.
    """

    def __init__(self, data_root: Path, models_dir: Path, *, manifest: Path | None = None,
                 device: str | None = "auto", cache_mb: float = 256, disk_cache: Path | None = None,
                 method_params: dict[str, dict[str, Any]] | None = None,
                 explainer_classes: Mapping[str, type[Explainer]] | None = None,
                 prepare: Callable[[torch.nn.Module, torch.device], torch.nn.Module] | None = None,
                 share_prediction_pass: bool = True):
        self.catalogue = ImageCatalogue(data_root, manifest or Path(models_dir) / "manifest.csv")
        self.pool = ModelPool(models_dir, classes=self.catalogue.classes, device=device,
                              manifest_sha256=self.catalogue.manifest_sha256, method_params=method_params,
                              explainer_classes=explainer_classes, **({"prepare": prepare} if prepare else {}))
        self.share_prediction_pass = share_prediction_pass
        # for the dashboard: one line per seed left out, one for images whose files are missing,
        # one per change of the data since training
        self.warnings: list[str] = [*self.pool.warnings, *self.catalogue.missing_note(),
                                    *self.catalogue.changes_since_training(self.pool.meta)]
        # methods whose maps were imported (`pixel-evidence import-maps`): read, never computed
        self.imported = ImportedMaps(self.pool.models_dir, self.pool.meta, self.catalogue.manifest_sha256)
        self.warnings += self.imported.warnings
        self.store = MapStore(cache_mb, disk_cache)
        self.runner = PassRunner(self.pool.count)
        self.checks = ModelChecks(self.pool, self.store, self.params_of)
        self.dissector = Dissector(self.pool, self.catalogue, self.store)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="precompute")

    @property
    def compute_calls(self) -> int:
        """Model calls made so far: prediction forwards plus method maps actually computed,
        not served from a cache (maps that share one gradient pass count one each)."""
        return self.pool.compute_calls

    def method_labels(self) -> dict[str, str]:
        """Every method's label: the registry's, then the imported ones."""
        return {**method_labels(), **self.imported.labels()}

    def params_of(self, method: str) -> dict[str, Any]:
        """The settings a computed method runs with; an imported one's content hash."""
        return self.imported.params(method) if method in self.imported.methods else self.pool.params_of(method)

    def faithfulness(self, ex: Explanation, *, start: str = "black", steps: int = 20) -> dict[str, dict[str, Curve]]:
        """Deletion and insertion curves of every map in ``ex`` (see ``ModelChecks.faithfulness``)."""
        return self.checks.faithfulness(ex, start=start, steps=steps)

    def sanity(self, ex: Explanation, methods: Iterable[str] | None = None) -> dict[str, SanityResult]:
        """The randomization check of ``ex``'s computed methods (see ``ModelChecks.sanity``):
        an imported map does not come from the model, so randomizing the model cannot move it."""
        methods = [m for m in (ex.methods if methods is None else methods) if m not in self.imported.methods]
        return self.checks.sanity(ex, methods)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the model lock: no other engine call runs a network meanwhile (for timing)."""
        with self.pool.lock:
            yield

    def clear_cache(self) -> None:
        """Forget every cached prediction and map held in memory (the disk cache stays)."""
        self.store.clear_memory()

    def history(self, seed: int) -> list[dict[str, Any]]:
        """Per-epoch training history recorded in the checkpoint metadata."""
        return list(self.pool.metadata(seed).get("history", []))

    # ------------------------------------------------------------ one image

    def prediction(self, seed: int, image_id: str) -> Prediction:
        """The model's prediction of one image (cached), with the image and mask it saw."""
        return self._prediction(seed, self.catalogue.sample(image_id), (), "predicted")[0]

    def explain(self, seed: int, image_id: str, *, split: str | None = None,
                methods: Iterable[str] = DEFAULT_METHODS, target: str = "predicted") -> Explanation:
        """Image, mask, reconstruction, prediction and every method's map with its scores.

        ``split``, when given, must be the image's own (a guard against stale dashboard state).
        ``target`` is "predicted" (default) or "true": the class the maps explain.
        """
        sample = self.catalogue.sample(image_id)
        if split is not None and sample.split != split:
            raise KeyError(f"image {image_id!r} is in the {sample.split} split, not {split}")
        methods = self._requested(methods, target)
        computed = [m for m in methods if m in REGISTRY]
        prediction, fused = self._prediction(seed, sample, computed, target)
        t = prediction.target_index(target, self.catalogue.classes.index(sample.cls))
        keys = {m: self._map_key(seed, sample.id, m, t) for m in computed}

        def compute(todo: list[str]) -> dict[str, MapValue]:
            x = self.pool.input_batch(seed, prediction.image[None])
            maps = self.runner.attribute(self.pool.explainers(seed, todo), x, torch.tensor([t]),
                                         torch.as_tensor(prediction.logits[None], device=self.pool.device))
            return {m: a.per_image()[0] for m, a in zip(todo, maps)}

        maps = {m: fused[k] for m, k in keys.items() if k in fused}
        maps.update(self.store.maps({m: k for m, k in keys.items() if m not in maps}, compute))
        return self._assemble(seed, sample, prediction, self._with_imported(seed, sample.id, methods, maps), target, t)

    def _with_imported(self, seed: int, image_id: str, methods: Sequence[str],
                       computed: dict[str, MapValue]) -> dict[str, MapValue]:
        """Every method's map in ``methods`` order: the computed ones, and the imported ones read."""
        return {m: computed[m] if m in computed else {"map": self.imported.map(m, seed, image_id)} for m in methods}

    def _prediction(self, seed: int, sample: Sample, methods: Sequence[str],
                    target: str) -> tuple[Prediction, dict[MapKey, MapValue]]:
        """The cached prediction of ``sample``, and the maps that rode on its forward.

        On a miss, the requested methods that share a gradient pass (and are not on disk) ride
        on the prediction's forward: their maps come back by their keys (and go to the store
        too, for later requests). On a hit, or for a caller that waited for another's
        computation, no maps come back: the store has them."""
        fused: dict[MapKey, MapValue] = {}

        def compute() -> Prediction:
            fuse = [m for m in methods if self.share_prediction_pass and self.pool.explainer_class(m).pass_needs
                    and not self.store.on_disk([self._map_key(seed, sample.id, m, t)
                                                for t in range(len(self.catalogue.classes))])]
            images, masks = self.catalogue.load([sample], self.pool.image_size(seed))
            x = self.pool.input_batch(seed, images)
            net, _ = self.pool.network(seed)
            if not fuse:
                with self.pool.running(), torch.inference_mode():
                    logits, mask_logits = net(x)
                return _predictions(images, masks, logits, mask_logits)[0]
            known = None if target == "predicted" else torch.tensor([self.catalogue.classes.index(sample.cls)])
            p, maps = self.runner.predict_with(self.pool.explainers(seed, fuse), x, known, also=frozenset({ACTIVATION}))
            with self.pool.running(0), torch.inference_mode():
                # by default the captured layer is the encoder's last block, which the decoder reads
                mask_logits = net.mask_logits(x, p.activation)
            for m, a in zip(fuse, maps):
                key = self._map_key(seed, sample.id, m, int(p.target[0]))
                fused[key] = a.per_image()[0]
                self.store.put_map(key, fused[key])
            return _predictions(images, masks, p.scores, mask_logits)[0]

        return self.store.memo(("prediction", seed, sample.id), compute), fused

    def _requested(self, methods: Iterable[str], target: str) -> list[str]:
        """``methods`` without repeats, each checked to exist, and ``target`` checked."""
        methods = list(dict.fromkeys(methods))
        unknown = [m for m in methods if m not in REGISTRY and m not in self.imported.methods]
        if unknown:
            imported = f"; imported: {', '.join(self.imported.methods)}" if self.imported.methods else ""
            raise ValueError(f"unknown method(s) {', '.join(map(repr, unknown))}; choose from {', '.join(REGISTRY)}"
                             f"{imported}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        return methods

    def _map_key(self, seed: int, image_id: str, method: str, target_index: int) -> MapKey:
        return MapKey(seed, image_id, method, digest(self.params_of(method)), target_index,
                      self.pool.maps_key(seed), self.pool.image_size(seed))

    def _assemble(self, seed: int, sample: Sample, prediction: Prediction, maps: dict[str, MapValue],
                  target: str, target_index: int, scores: Sequence[str] = ()) -> Explanation:
        ex = assemble(seed, sample, prediction, maps, classes=self.catalogue.classes, labels=self.method_labels(),
                      target=target, target_index=target_index, scores=scores)
        if sample.has_mask and not ex.rankable:
            return replace(ex, empty_mask=self.catalogue.empty_mask(sample))
        return ex

    # ------------------------------------------------------------ many images

    def explain_many(self, seed: int, image_ids: Sequence[str], methods: Iterable[str] = DEFAULT_METHODS,
                     target: str = "predicted", batch_size: int = 8,
                     progress: Callable[[int], None] | None = None,
                     scores: Sequence[str] = ()) -> Iterator[Explanation]:
        """Explanations for many images, computed in batches (for evaluation).

        Yields in ``image_ids`` order; ``progress(n)`` is called after each batch with its size.
        ``scores``: registered scores each method result carries besides TKO.
        Batched results bypass the store, so a long run cannot evict what interactive
        users are looking at. Each batch has a prediction forward of its own: fusing it
        into the gradient pass saves nothing measurable on a batch.
        """
        methods = self._requested(methods, target)
        computed = [m for m in methods if m in REGISTRY]
        explainers = self.pool.explainers(seed, computed)
        for start in range(0, len(image_ids), batch_size):
            chunk = [self.catalogue.sample(i) for i in image_ids[start:start + batch_size]]
            images, masks = self.catalogue.load(chunk, self.pool.image_size(seed))
            x = self.pool.input_batch(seed, images)
            net, _ = self.pool.network(seed)
            with self.pool.running(), torch.inference_mode():
                logits, mask_logits = net(x)
            predictions = _predictions(images, masks, logits, mask_logits)
            targets = [p.target_index(target, self.catalogue.classes.index(s.cls)) for p, s in zip(predictions, chunk)]
            logits = torch.as_tensor(np.stack([p.logits for p in predictions]), device=self.pool.device)
            maps = self.runner.attribute(explainers, x, torch.tensor(targets), logits)
            per_method = {m: a.per_image() for m, a in zip(computed, maps)}
            for i, (sample, p) in enumerate(zip(chunk, predictions)):
                own = {m: per_method[m][i] for m in computed}
                yield self._assemble(seed, sample, p, self._with_imported(seed, sample.id, methods, own), target,
                                     targets[i], scores)
            if progress:
                progress(len(chunk))

    def precompute(self, seed: int, split: str, methods: Iterable[str] = DEFAULT_METHODS,
                   target: str = "predicted", progress: Callable[[int, int], None] | None = None,
                   stop: threading.Event | None = None) -> Future[int]:
        """Fill the cache for a whole split in the background; ``progress(done, total)``.
        Setting ``stop`` ends the fill after the image in hand; the future's result is the
        number of images done.

        Images are computed one by one through ``explain`` at background priority, so an
        interactive request waits for at most one forward. An image whose files cannot be read
        is skipped with one logged line (the page says it when someone opens the image).
        """
        ids = self.catalogue.image_ids(split)
        methods = list(methods)

        def run() -> int:
            with background():  # a person's click goes first, at every forward
                for i, image_id in enumerate(ids, 1):
                    if stop is not None and stop.is_set():
                        return i - 1
                    try:
                        self.explain(seed, image_id, split=split, methods=methods, target=target)
                    except DataError as err:
                        log.warning("background fill skipped image %s: %s", image_id, err)
                    if progress:
                        progress(i, len(ids))
            return len(ids)

        return self._executor.submit(run)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.imported.close()


def load_engine(data: Path | str | None = None, models: Path | str | None = None, **kwargs: Any) -> ExplanationEngine:
    """The engine on ``data`` (default: the built-in synthetic set, generated on first use)
    and ``models`` (default: the shipped ``pretrained_models/``)."""
    from pixel_evidence.data.synthetic import ensure_default_data

    root = Path(data) if data else ensure_default_data()
    models_dir = Path(models) if models else SHIPPED_MODELS
    return ExplanationEngine(root, models_dir, **kwargs)


def _predictions(images: np.ndarray, masks: np.ndarray, logits: torch.Tensor,
                 mask_logits: torch.Tensor | None) -> list[Prediction]:
    """One ``Prediction`` per image of a batch's forward; no reconstruction without mask logits."""
    probs = torch.softmax(logits, 1).float().cpu().numpy()
    recon = [None] * len(images) if mask_logits is None else torch.sigmoid(mask_logits[:, 0]).float().cpu().numpy()
    logits = logits.float().cpu().numpy()
    return [Prediction(image=images[i], mask=masks[i], logits=logits[i], probabilities=probs[i],
                       reconstruction=recon[i]) for i in range(len(images))]



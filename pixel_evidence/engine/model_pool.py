"""The networks an engine runs: one per seed, loaded on first use, and one lock for all calls.

Hooks on a network are not thread-safe, so every forward of every request holds the pool's
lock: the classifiers the pool hands out take it per forward, and a hooked pass holds it
while its hook is on (see ``explainers.base.network_lock``). The lock serves a person's
click before background work (``priority_lock``), one forward at a time. The pool also
counts model calls, which the tests and the benchmark read to tell computed results from
cached ones.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from pixel_evidence.data import to_normalized_tensor
from pixel_evidence.device import pick_device
from pixel_evidence.engine.cache import digest
from pixel_evidence.engine.priority_lock import PriorityLock
from pixel_evidence.explainers import Explainer, get_explainer
from pixel_evidence.models import CheckpointError, ClassifierView, load_model, prepare_for_inference
from pixel_evidence.models.checkpoint import check_trained_on, scan_seeds
from pixel_evidence.run_folders import train_command

log = logging.getLogger("pixel_evidence.engine")


class ModelPool:
    """Checkpoints ``seed_<n>.pt/.json`` of ``models_dir``, checked against the manifest.

    Seeds that are unfinished, malformed or trained on other classes or another manifest
    are left out, each with a line in ``warnings``; with no usable seed left the first
    problem is a ``CheckpointError``.

    Parameters
    ----------
    models_dir: folder of the checkpoints.
    classes: the manifest's classes; every model must have been trained on exactly these.
    manifest_sha256: the manifest's hash; every model must have been trained on it.
    device: "auto" (CUDA, then MPS, then CPU) or a torch device string.
    method_params: per-method settings, e.g. ``{"ig": {"n_steps": 32}}``.
    explainer_classes: classes that stand in for registered methods' own, by key (the
        benchmark's ablation times earlier versions of a method this way); None: the registry's.
    prepare: how a loaded network is made ready for inference on the device (default
        ``models.prepare_for_inference``: eval mode, BatchNorm folded, channels-last).
    """

    def __init__(self, models_dir: Path, *, classes: Sequence[str], manifest_sha256: str,
                 device: str | None = "auto", method_params: dict[str, dict[str, Any]] | None = None,
                 explainer_classes: Mapping[str, type[Explainer]] | None = None,
                 prepare: Callable[[torch.nn.Module, torch.device], torch.nn.Module] = prepare_for_inference):
        self.models_dir = Path(models_dir)
        self._classes_by_key = dict(explainer_classes or {})
        self._prepare = prepare
        self.classes = tuple(classes)
        self.manifest_sha256 = manifest_sha256
        finished, problems = scan_seeds(self.models_dir)
        self.meta: dict[int, dict[str, Any]] = {}
        for seed, meta in finished.items():
            try:
                check_trained_on(self.models_dir, seed, meta, classes=self.classes, manifest_sha256=manifest_sha256)
            except CheckpointError as err:
                problems[seed] = str(err)
            else:
                self.meta[seed] = meta
        self.seeds = sorted(self.meta)
        if not self.seeds and problems:
            more = f" ({len(problems) - 1} other seed(s) unusable too)" if len(problems) > 1 else ""
            raise CheckpointError(problems[min(problems)] + more)
        if not self.seeds:
            raise CheckpointError(f"{self.models_dir}: no trained models (seed_<n>.pt + .json); "
                                  f"train them with `{train_command(self.models_dir)}`")
        # why each seed with files is left out, and one line per seed for the engine's warnings
        self.left_out: dict[int, str] = dict(sorted(problems.items()))
        self.warnings = [f"skipped seed {seed}: {why}" for seed, why in self.left_out.items()]
        for warning in self.warnings:
            log.warning("%s", warning)
        self.device = pick_device(device)
        self.method_params = {k: dict(v) for k, v in (method_params or {}).items()}
        for key in [*self.method_params, *self._classes_by_key]:
            get_explainer(key)  # a registered method, or a one-line error naming the choices
        self.lock = PriorityLock()
        self.compute_calls = 0
        self._count_lock = threading.Lock()
        self._networks: dict[int, tuple[torch.nn.Module, dict]] = {}
        self._views: dict[int, LockedClassifier] = {}
        self._explainers: dict[int, dict[str, Explainer]] = {}

    def count(self, calls: int) -> None:
        """Record ``calls`` computed results (maps, predictions, curves)."""
        with self._count_lock:
            self.compute_calls += calls

    @contextmanager
    def running(self, calls: int = 1) -> Iterator[None]:
        """Hold the lock for a model call that computes ``calls`` results, and count them."""
        self.count(calls)
        with self.lock:
            yield

    def metadata(self, seed: int) -> dict[str, Any]:
        """``seed``'s checkpoint metadata; an unknown seed is a ``KeyError`` listing the seeds."""
        try:
            return self.meta[seed]
        except KeyError:
            raise KeyError(f"no model for seed {seed}; available: {self.seeds}") from None

    def maps_key(self, seed: int) -> str:
        """What ``seed``'s maps depend on besides method, image and target: the weights' hash,
        with the Grad-CAM layer when the metadata names one (the same weights read at
        another layer give other maps; metadata from before that choice keeps its keys)."""
        meta = self.metadata(seed)
        return digest(meta["weights_sha256"], meta["cam_layer"]) if "cam_layer" in meta else meta["weights_sha256"]

    def image_size(self, seed: int) -> int:
        return int(self.metadata(seed)["image_size"])

    def normalization(self, seed: int) -> dict[str, Sequence[float]]:
        return self.metadata(seed)["normalization"]

    def params_of(self, method: str) -> dict[str, Any]:
        """The settings ``method`` runs with: its defaults, overridden by ``method_params``."""
        return {**self.explainer_class(method).defaults, **self.method_params.get(method, {})}

    def network(self, seed: int) -> tuple[torch.nn.Module, dict]:
        """The network of ``seed`` and its metadata, loaded once per process on the device,
        BatchNorm folded and channels-last (see ``models.prepare_for_inference``)."""
        self.metadata(seed)
        with self.lock:
            if seed not in self._networks:
                net, meta = load_model(self.models_dir, seed, device=self.device, classes=self.classes,
                                       manifest_sha256=self.manifest_sha256)
                if meta["weights_sha256"] != self.meta[seed]["weights_sha256"]:
                    # caches are keyed by the hash read at start: new weights must not meet old maps
                    raise CheckpointError(f"{self.models_dir}/seed_{seed}.pt: retrained since this engine started; "
                                          "restart it to use the new model")
                # attributions need input gradients only
                net = self._prepare(net, self.device).requires_grad_(False)
                self._networks[seed] = (net, meta)
                self._views[seed] = LockedClassifier(ClassifierView(net), self.lock)
                self._explainers[seed] = {}
                log.info("loaded model seed %d on %s", seed, self.device)
            return self._networks[seed]

    def classifier(self, seed: int) -> LockedClassifier:
        """``seed``'s network as a classifier ``(B, 3, H, W) -> (B, C)`` logits, each forward
        under the pool's lock."""
        self.network(seed)
        return self._views[seed]

    def explainer_class(self, method: str) -> type[Explainer]:
        """The class that computes ``method`` here: a stand-in given to the pool, else the registry's."""
        return self._classes_by_key.get(method) or get_explainer(method)

    def explainers(self, seed: int, methods: Sequence[str]) -> list[Explainer]:
        """The explainers of ``methods`` on ``seed``'s classifier, made once per process (they
        may memoize network constants, such as the black image's scores for IG), all on one
        classifier so that pass-sharing methods can be grouped."""
        net, meta = self.network(seed)
        norm = meta["normalization"]
        made = self._explainers[seed]
        with self.lock:
            for m in methods:
                if m not in made:
                    made[m] = self.explainer_class(m)(self._views[seed], net.gradcam_layer, input_mean=norm["mean"],
                                               input_std=norm["std"], **self.method_params.get(m, {}))
            return [made[m] for m in methods]

    def input_batch(self, seed: int, images: np.ndarray) -> torch.Tensor:
        """uint8 images (N, H, W, 3) -> the normalized batch ``seed``'s network takes, on the
        device, in the network's memory layout."""
        net, meta = self.network(seed)
        norm = meta["normalization"]
        x = to_normalized_tensor(images, norm["mean"], norm["std"]).to(self.device)
        return x.contiguous(memory_format=getattr(net, "input_memory_format", torch.contiguous_format))


class LockedClassifier(torch.nn.Module):
    """``classifier`` with every forward under ``lock``, which it also exposes for hooked
    passes (``explainers.base.network_lock``). Between two forwards of a long method other
    requests get their turn."""

    def __init__(self, classifier: torch.nn.Module, lock: PriorityLock):
        super().__init__()
        self.classifier = classifier
        self.lock = lock

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.lock:
            return self.classifier(x)

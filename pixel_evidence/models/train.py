"""Seeded training: class-weighted cross-entropy, + beta * BCE-with-logits on the mask for a
network with a mask decoder (the mask term left out when the data has no masks at all).

Three modes say what is trained: "partial" freezes the first ``freeze_blocks`` encoder
stages (the shipped models' recipe), "fine-tune" trains everything, "feature-extraction"
freezes the whole encoder and trains the head (classifier, and decoder if any). Frozen
stages keep their BatchNorm statistics.

Model selection uses a validation subset held out of the train split (stratified, seeded
by the split seed, so every seed sees the same one); the test split is logged for the
curves but never used to choose an epoch.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from pixel_evidence.choices import CUSTOM_BACKBONE, TRAINING_MODES
from pixel_evidence.data import (Sample, dataset_fingerprint, load_arrays, read_manifest, stratified_split,
                                 to_normalized_tensor)
from pixel_evidence.device import pick_device
from pixel_evidence.files import file_sha256, remove_stale_temp_files
from pixel_evidence.metrics import balanced_accuracy
from pixel_evidence.models.checkpoint import read_metadata, save_checkpoint, scan_seeds, stored_state, widened
from pixel_evidence.models.network import ExplainableNet
from pixel_evidence.models.recipe import DEFAULT_KIND, DEFAULT_MODE, ModelRecipe
from pixel_evidence.models.user_model import resolve_module_spec

log = logging.getLogger("pixel_evidence.train")

DEFAULT_SEEDS = tuple(range(42, 52))


@dataclass
class TrainConfig:
    """Hyperparameters; defaults follow the original study (30 epochs, batch 32, lr 1e-3, beta 1)."""

    seeds: Sequence[int] = DEFAULT_SEEDS
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    beta: float = 1.0
    image_size: int = 224
    backbone: str = "efficientnet_lite0"
    pretrained: bool = True
    kind: str = DEFAULT_KIND
    mode: str = DEFAULT_MODE
    freeze_blocks: int = 0
    cam_layer: str | None = None
    model_module: str | None = None
    val_fraction: float = 0.15
    split_seed: int = 0
    channels_last: bool = True
    device: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in TRAINING_MODES:
            raise ValueError(f"unknown training mode {self.mode!r}; choose one of {', '.join(TRAINING_MODES)}")
        if self.freeze_blocks and self.mode != "partial":
            raise ValueError(f"--freeze-blocks {self.freeze_blocks} applies to --mode partial only; "
                             f"--mode {self.mode} decides what is frozen itself")
        if self.model_module:
            # recorded as an absolute path: evaluate and the dashboard may run from elsewhere
            self.model_module = resolve_module_spec(self.model_module)
            self.backbone, self.pretrained = CUSTOM_BACKBONE, False

    @property
    def recipe(self) -> ModelRecipe:
        return ModelRecipe(kind=self.kind, backbone=self.backbone, cam_layer=self.cam_layer,
                           model_module=self.model_module)

    def hyperparameters(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("seeds", "device", "extra"):
            d.pop(k)
        return d


# What a seed trained before a setting existed was trained with (see ``_trained_otherwise``).
SETTINGS_BEFORE_RECORDED = {"kind": DEFAULT_KIND, "mode": DEFAULT_MODE, "cam_layer": None, "model_module": None}


def stages_to_freeze(net: ExplainableNet, cfg: TrainConfig) -> int:
    """How many of ``net``'s encoder stages ``cfg.mode`` freezes."""
    return {"partial": cfg.freeze_blocks, "fine-tune": 0,
            "feature-extraction": len(net.encoder_stages())}[cfg.mode]


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, N / (C * n_c), so each class weighs the same in the loss."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def augment(images: torch.Tensor, masks: torch.Tensor, gen: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Training-only augmentation of float images (B, 3, H, W) in [0, 1] and masks (B, 1, H, W).

    Random flips and quarter turns (applied to image and mask alike) and a small
    brightness/contrast jitter (image only).
    """
    b = images.shape[0]
    flips = torch.rand(b, 2, generator=gen) < 0.5
    turns = torch.randint(0, 4, (b,), generator=gen)
    out_i, out_m = [], []
    for i in range(b):
        im, mk = images[i], masks[i]
        if flips[i, 0]:
            im, mk = im.flip(-1), mk.flip(-1)
        if flips[i, 1]:
            im, mk = im.flip(-2), mk.flip(-2)
        if turns[i]:
            im, mk = torch.rot90(im, int(turns[i]), (-2, -1)), torch.rot90(mk, int(turns[i]), (-2, -1))
        out_i.append(im)
        out_m.append(mk)
    images, masks = torch.stack(out_i), torch.stack(out_m)
    gain = 1 + (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.3
    bias = (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.1
    return (images * gain + bias).clamp_(0, 1), masks


def multitask_loss(logits, mask_logits, labels, masks, weights, beta, has_masks: bool = True):
    """(loss, cross-entropy, mask BCE). The mask term is left out, its BCE reported as 0, for a
    network without a decoder (``mask_logits`` None) and for data without masks (``has_masks``
    False: all-empty masks would only teach the decoder to draw nothing)."""
    ce = F.cross_entropy(logits, labels, weight=weights)
    if mask_logits is None or not has_masks:
        return ce, ce, torch.zeros_like(ce)
    bce = F.binary_cross_entropy_with_logits(mask_logits, masks)
    return ce + beta * bce, ce, bce


@torch.no_grad()
def evaluate_split(net: ExplainableNet, images: np.ndarray, masks: np.ndarray, labels: np.ndarray,
                   norm, weights: torch.Tensor, beta: float, device, batch_size: int = 32,
                   channels_last: bool = False, has_masks: bool = True) -> dict[str, Any]:
    """Loss and balanced accuracy of ``net`` (in eval mode) on preloaded arrays."""
    net.eval()
    preds, total, n = [], 0.0, 0
    for i in range(0, len(images), batch_size):
        x = to_normalized_tensor(images[i:i + batch_size], *norm).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(labels[i:i + batch_size]).to(device)
        m = torch.from_numpy(masks[i:i + batch_size]).float().unsqueeze(1).to(device)
        logits, mask_logits = net(x)
        loss, _, _ = multitask_loss(logits, mask_logits, y, m, weights.to(device), beta, has_masks)
        total += float(loss) * len(x)
        n += len(x)
        preds.append(logits.argmax(1).cpu().numpy())
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    num_classes = len(weights)
    return {"loss": total / max(n, 1), "balanced_accuracy": balanced_accuracy(labels, pred, num_classes),
            "accuracy": float(np.mean(pred == labels)) if n else float("nan"), "predictions": pred}


def _seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def train_seed(seed: int, cfg: TrainConfig, data_root: Path, samples: Sequence[Sample],
               classes: Sequence[str], out_dir: Path, provenance: dict[str, Any]) -> dict[str, Any]:
    """Train one model and save it; return its metadata."""
    device = pick_device(cfg.device)
    gen = _seed_everything(seed)
    train_all = [s for s in samples if s.split == "train"]
    test = [s for s in samples if s.split == "test"]
    held = stratified_split(train_all, test_fraction=cfg.val_fraction, split_seed=cfg.split_seed)
    fit = [s for s in held if s.split == "train"]
    val = [s for s in held if s.split == "test"]

    arrays = {name: load_arrays(data_root, part, classes, cfg.image_size)
              for name, part in (("fit", fit), ("val", val), ("test", test))}
    weights = class_weights(arrays["fit"][2], len(classes))
    has_masks = any(s.has_mask for s in samples)

    net = cfg.recipe.build(len(classes), image_size=cfg.image_size, pretrained=cfg.pretrained)
    norm = net.normalization
    net.freeze_stages(stages_to_freeze(net, cfg))
    net.to(device)
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr)

    x_fit, m_fit, y_fit = arrays["fit"]
    history: list[dict[str, Any]] = []
    best: tuple[float, float] | None = None
    best_state, best_epoch = None, -1
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        t0 = time.perf_counter()
        order = torch.randperm(len(x_fit), generator=gen).numpy()
        run_loss, seen, correct = 0.0, 0, 0
        bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"seed {seed} epoch {epoch}/{cfg.epochs}",
                   leave=False, unit="batch")
        for start in bar:
            idx = np.sort(order[start:start + cfg.batch_size])
            imgs = torch.from_numpy(x_fit[idx]).permute(0, 3, 1, 2).float().div_(255)
            msk = torch.from_numpy(m_fit[idx]).float().unsqueeze(1)
            imgs, msk = augment(imgs, msk, gen)
            mean = torch.tensor(norm.mean).view(1, 3, 1, 1)
            std = torch.tensor(norm.std).view(1, 3, 1, 1)
            x = ((imgs - mean) / std).to(device)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(y_fit[idx]).to(device)
            logits, mask_logits = net(x)
            loss, _, _ = multitask_loss(logits, mask_logits, y, msk.to(device), weights.to(device), cfg.beta,
                                        has_masks)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run_loss += float(loss.detach()) * len(idx)
            seen += len(idx)
            correct += int((logits.argmax(1) == y).sum())
            bar.set_postfix(loss=f"{run_loss / seen:.3f}")
        ev = {name: evaluate_split(net, *arrays[name], norm, weights, cfg.beta, device,
                                   channels_last=cfg.channels_last, has_masks=has_masks) for name in ("val", "test")}
        row = {"epoch": epoch, "train_loss": run_loss / max(seen, 1),
               "train_accuracy": correct / max(seen, 1),
               "val_loss": ev["val"]["loss"], "val_balanced_accuracy": ev["val"]["balanced_accuracy"],
               "test_loss": ev["test"]["loss"], "test_balanced_accuracy": ev["test"]["balanced_accuracy"],
               "seconds": round(time.perf_counter() - t0, 2)}
        history.append(row)
        log.info("seed %d epoch %d/%d  train loss %.4f  val loss %.4f bacc %.3f  test loss %.4f bacc %.3f  (%.0fs)",
                 seed, epoch, cfg.epochs, row["train_loss"], row["val_loss"], row["val_balanced_accuracy"],
                 row["test_loss"], row["test_balanced_accuracy"], row["seconds"])
        score = (row["val_balanced_accuracy"], -row["val_loss"])
        if best is None or score > best:
            best, best_epoch = score, epoch
            best_state = copy.deepcopy(net.state_dict())

    meta = {
        **cfg.recipe.metadata(net), "mode": cfg.mode,
        "classes": list(classes), "image_size": cfg.image_size,
        "normalization": {"mean": list(norm.mean), "std": list(norm.std)},
        "hyperparameters": cfg.hyperparameters(), "history": history, "selected_epoch": best_epoch,
        "validation_ids": [s.id for s in val], "device": str(device),
        "torch_version": torch.__version__, **provenance,
    }
    # Final numbers come from the weights as stored (fp16), exactly what users will load;
    # the checkpoint is written once, finished, so a kill before this point leaves no seed.
    stored = stored_state(best_state)
    net.load_state_dict(widened(stored))
    final = {}
    for name, (x, m, y) in (("train", load_arrays(data_root, train_all, classes, cfg.image_size)),
                            ("test", arrays["test"])):
        ev = evaluate_split(net, x, m, y, norm, weights, cfg.beta, device, channels_last=cfg.channels_last,
                            has_masks=has_masks)
        final[name] = {"loss": ev["loss"], "balanced_accuracy": ev["balanced_accuracy"], "accuracy": ev["accuracy"]}
    meta["final_metrics"] = final
    save_checkpoint(out_dir, seed, stored, meta)
    log.info("seed %d done: selected epoch %d, test balanced accuracy %.3f",
             seed, best_epoch, final["test"]["balanced_accuracy"])
    return read_metadata(out_dir, seed)


def _one_by_one(train: Callable[[int], dict[str, Any]], seeds: Sequence[int]) -> list[dict[str, Any]]:
    # the bar closes before an error propagates, so the error stays the last line printed
    with tqdm(list(seeds), desc="seeds", unit="seed") as bar:
        return [train(seed) for seed in bar]


def train_seeds(cfg: TrainConfig, data_root: Path, manifest: Path, out_dir: Path, *, force: bool = False,
                map_seeds: Callable[[Callable[[int], dict[str, Any]], Sequence[int]], list[dict[str, Any]]]
                = _one_by_one) -> list[dict[str, Any]]:
    """Train every seed in ``cfg.seeds``; seeds already finished with the same data are skipped.

    ``map_seeds(train, seeds)`` runs ``train(seed)`` for the seeds to train and returns their
    metadata in order: one after another here, as Dask tasks with ``pixel_evidence.sweep.training``.
    """
    samples = read_manifest(manifest)
    classes = sorted({s.cls for s in samples})
    provenance = {"manifest_sha256": file_sha256(manifest),
                  "dataset_fingerprint": dataset_fingerprint(data_root, samples),
                  "split_seed": cfg.split_seed, **cfg.extra}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out_dir)  # what killed runs left: staged weights, metadata, manifest
    finished, unfinished = scan_seeds(out_dir)
    for problem in unfinished.values():
        log.warning("%s", problem)
    results: dict[int, dict[str, Any]] = {}
    for seed in cfg.seeds:
        meta = finished.get(seed)
        if meta is not None and not force:
            difference = _trained_otherwise(meta, provenance, cfg)
            if difference:
                raise ValueError(f"{out_dir / f'seed_{seed}.json'}: trained on {difference}; "
                                 "pass --force to overwrite it or choose another --models folder")
            log.info("seed %d already trained in %s; skipping (use --force to retrain)", seed, out_dir)
            results[seed] = meta
    todo = [seed for seed in cfg.seeds if seed not in results]
    trained = map_seeds(partial(train_seed, cfg=cfg, data_root=data_root, samples=samples, classes=classes,
                                out_dir=out_dir, provenance=provenance), todo)
    results.update(zip(todo, trained))
    return [results[seed] for seed in cfg.seeds]


def _trained_otherwise(meta: dict[str, Any], provenance: dict[str, Any], cfg: TrainConfig) -> str | None:
    """How a finished seed's training differs from the one asked for now, or None."""
    if meta["manifest_sha256"] != provenance["manifest_sha256"]:
        return "another split manifest"
    if meta.get("dataset_fingerprint") != provenance["dataset_fingerprint"]:
        return "other images or masks (the dataset fingerprint differs)"
    recorded = {**SETTINGS_BEFORE_RECORDED, **(meta.get("hyperparameters") or {})}
    changed = sorted(k for k, v in cfg.hyperparameters().items() if recorded.get(k) != v)
    if changed:
        return "other settings (" + ", ".join(f"{k} {recorded.get(k)} != {getattr(cfg, k)}" for k in changed) + ")"
    return None

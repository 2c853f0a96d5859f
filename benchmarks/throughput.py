"""Throughput sections: ``evaluation`` (``explain_many`` over 1x, 2x, 4x the test split) and
``training`` (images/s of the training step with the checkpoint's recipe)."""

from __future__ import annotations

import logging
import math
import statistics
import time
from dataclasses import asdict
from typing import Any, Sequence

import torch

from .config import ALL, BenchConfig
from .timing import Clock, ratio

log = logging.getLogger("pixel_evidence.bench")


def bench_evaluation(engine, seed: int, cfg: BenchConfig, clock: Clock) -> dict[str, Any]:
    """Images/s of ``explain_many`` (all three methods) per multiple of the test split."""
    ids = engine.catalogue.image_ids("test")
    if cfg.eval_images:
        ids = ids[: cfg.eval_images]
    list(engine.explain_many(seed, ids[:2], list(ALL), batch_size=cfg.eval_batch_size))  # warm-up
    runs = []
    # The first size again at the end: the host's speed drifts over the minutes this takes, and
    # the mean of a run before and one after the others cancels a steady drift.
    order = list(cfg.eval_multipliers)
    if len(order) > 1:
        order.append(order[0])
    for k in order:
        batch = list(ids) * k
        cpu0 = time.process_time()
        t, n = clock.time(lambda: sum(1 for _ in engine.explain_many(seed, batch, list(ALL),
                                                                     batch_size=cfg.eval_batch_size)))
        cpu = time.process_time() - cpu0
        runs.append({"multiplier": k, "images": n, "seconds": t, "images_per_s": n / t if t else math.nan,
                     "cpu_seconds": cpu})
        log.info("evaluation x%d: %d images in %.1f s", k, n, t)
    return {"base_images": len(ids), "methods": list(ALL), "batch_size": cfg.eval_batch_size, "runs": runs,
            "ratio_2x_1x": ratio(mean_run(runs, 2, "seconds"), mean_run(runs, 1, "seconds")),
            "ratio_4x_1x": ratio(mean_run(runs, 4, "seconds"), mean_run(runs, 1, "seconds")),
            "cpu_ratio_4x_1x": ratio(mean_run(runs, 4, "cpu_seconds"), mean_run(runs, 1, "cpu_seconds"))}


def mean_run(runs: Sequence[dict], multiplier: int, field: str) -> float:
    """Mean of ``field`` over the evaluation runs of one size (1x runs twice)."""
    values = [r[field] for r in runs if r["multiplier"] == multiplier]
    return statistics.fmean(values) if values else math.nan


def bench_training(engine, seed: int, cfg: BenchConfig, clock: Clock, notes: list[str]) -> dict[str, Any]:
    """Time the training step of ``engine.train`` with the checkpoint's recorded recipe."""
    from pixel_evidence.data import load_arrays
    from pixel_evidence.models import load_model
    from pixel_evidence.models.train import TrainConfig, augment, class_weights, multitask_loss, stages_to_freeze

    meta = engine.pool.meta[seed]
    hp = {**asdict(TrainConfig()), **meta.get("hyperparameters", {})}
    size = int(meta["image_size"])
    batch = int(hp["batch_size"])
    channels_last = bool(hp.get("channels_last", True))
    device = engine.pool.device
    net, _ = load_model(engine.pool.models_dir, seed, device=device)
    freeze = stages_to_freeze(net, TrainConfig(mode=hp["mode"], freeze_blocks=int(hp["freeze_blocks"])))
    net.freeze_stages(freeze)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=float(hp["lr"]))
    train = [s for s in engine.catalogue.samples if s.split == "train"]
    pool = (train * (batch // max(1, len(train)) + 1))[:batch]
    images, masks, labels = load_arrays(engine.catalogue.data_root, pool, engine.catalogue.classes, size)
    weights = class_weights(labels, len(engine.catalogue.classes)).to(device)
    norm = meta["normalization"]
    mean = torch.tensor(norm["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(norm["std"]).view(1, 3, 1, 1)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        imgs = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
        msk = torch.from_numpy(masks).float().unsqueeze(1)
        imgs, msk = augment(imgs, msk, gen)
        x = ((imgs - mean) / std).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(labels).to(device)
        logits, mask_logits = net(x)
        loss, _, _ = multitask_loss(logits, mask_logits, y, msk.to(device), weights, float(hp["beta"]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    net.train()
    step()  # warm-up
    t, _ = clock.time(lambda: [step() for _ in range(cfg.train_steps)])
    n = cfg.train_steps * batch
    notes.append("training: the step of `pixel-evidence train` (augmentation, forward, multitask loss, backward, "
                 "Adam) on one preloaded batch, starting from the measured checkpoint; data loading excluded.")
    return {"images_per_s": n / t if t else math.nan, "seconds": t, "steps": cfg.train_steps, "batch_size": batch,
            "image_size": size, "freeze_blocks": freeze, "channels_last": channels_last, "lr": float(hp["lr"]),
            "backbone": meta["backbone"]}

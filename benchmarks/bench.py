"""``pixel-evidence bench``: how fast the engine is, against references timed in the same run.

One run writes ``benchmark.json`` and ``benchmark.md`` into ``--out`` (default
``benchmarks/results/``). Sections:

cold        latency of one uncached ``engine.explain`` per method and for all three, beside
            (a) the original study's way of computing the same maps, re-implemented here, and
            (b) the floor: the bare forward/backward passes the methods need, plain autograd;
warm        cache-hit latency of ``engine.explain`` (p50, p95);
evaluation  ``explain_many`` over the test split, and over 2x and 4x as many images;
training    images/s of the training step with the shipped recipe's settings;
dashboard   widget change -> updated view, server side, and the server's peak RSS with 1 and
            10 browser sessions (see ``bench_server``);
ig_accuracy Integrated Gradients' completeness error and time per step count and quadrature;
methods     the cold per-image cost of every registered method on its own, default settings.

On CUDA every timer synchronises the device before reading the clock.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from engine.files import atomic_write_text

log = logging.getLogger("pixel_evidence.bench")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = PROJECT_ROOT / "benchmarks" / "results"
DEFAULT_MODELS = PROJECT_ROOT / "pretrained_models"

ALL = ("gradcam", "saliency", "ig")
IG_QUADRATURES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")
IG_STEPS = (8, 16, 25, 32, 64)
ORIGINAL_IG_STEPS = 25

# Targets of the issue, as (section path, comparison, limit).
TARGETS = {
    "cold_speedup_vs_original": ("cold.all.speedup_vs_original", ">=", 2.0),
    "cold_ratio_to_floor": ("cold.all.ratio_to_floor", "<=", 1.15),
    "warm_p95_ms": ("warm.p95_ms", "<=", 50.0),
    "evaluation_ratio_4x_1x": ("evaluation.ratio_4x_1x", "<=", 4.4),
    "dashboard_peak_rss_10_sessions_mb": ("dashboard.rss.sessions_10_peak_mb", "<=", 2.5 * 1024),
}

# Every key the JSON must carry (a smoke test checks them).
REQUIRED_KEYS = {
    "": ["machine", "config", "model", "cold", "warm", "evaluation", "training", "dashboard", "ig_accuracy",
         "methods", "targets", "notes", "seconds_total"],
    "machine": ["cpu_model", "logical_cpus", "physical_cores", "torch_version", "captum_version", "python",
                "device", "gpu", "torch_threads"],
    "model": ["source", "seed", "image_size", "backbone", "note"],
    "cold": ["images", "gradcam", "saliency", "ig", "all"],
    "cold.all": ["engine_s", "original_s", "floor_s", "speedup_vs_original", "ratio_to_floor",
                 "ratio_of_medians_to_floor", "engine_samples_s",
                 "original_samples_s", "floor_samples_s"],
    "warm": ["requests", "p50_ms", "p95_ms", "max_ms"],
    "evaluation": ["base_images", "runs", "ratio_4x_1x", "methods", "batch_size"],
    "training": ["images_per_s", "steps", "batch_size", "image_size", "freeze_blocks", "channels_last"],
    "dashboard": ["status", "widget_change", "rss", "note"],
    "ig_accuracy": ["images", "rows", "default", "best_per_steps", "cheapest_within"],
    "ig_chunks": ["steps", "rows", "engine_chunk"],
    "methods": ["images", "rows"],
}


# ------------------------------------------------------------------ configuration

@dataclass
class BenchConfig:
    out: Path = DEFAULT_OUT
    data: Path | None = None
    models: Path | None = None
    seed: int | None = None
    device: str = "auto"
    cold_images: int = 5
    warm_requests: int = 300
    eval_images: int | None = None          # None: the whole test split
    eval_multipliers: tuple[int, ...] = (1, 2, 4)
    eval_batch_size: int = 8
    train_steps: int = 3
    ig_steps: tuple[int, ...] = IG_STEPS
    ig_methods: tuple[str, ...] = IG_QUADRATURES
    ig_images: int = 3
    ig_tolerances: tuple[float, ...] = (0.05, 0.10)
    ig_chunks: tuple[int, ...] = (1, 4, 8, 13, 25)
    engine_ig_steps: int | None = None      # None: the method's default
    widget_changes: int = 40
    server: bool = True
    sessions: tuple[int, ...] = (1, 10)
    server_timeout: float = 240.0
    fallback_image_size: int = 224
    method_images: int = 2
    sections: tuple[str, ...] = ("cold", "warm", "evaluation", "training", "dashboard", "ig_accuracy",
                                 "ig_chunks", "methods")


# ------------------------------------------------------------------ timing

class Clock:
    """Wall-clock seconds; on CUDA the device is synchronised before each reading."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def time(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        t0 = self.now()
        out = fn()
        return self.now() - t0, out


def _median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else math.nan


def _percentile(xs: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs, dtype=np.float64), q)) if len(xs) else math.nan


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


# ------------------------------------------------------------------ machine

def machine_info(device: torch.device) -> dict[str, Any]:
    cpu_model, physical = platform.processor() or "unknown", None
    try:
        text = Path("/proc/cpuinfo").read_text()
        names = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")]
        if names:
            cpu_model = names[0]
        cores = {(ln.split(":", 1)[1].strip()) for ln in text.splitlines() if ln.startswith("cpu cores")}
        sockets = {ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("physical id")}
        if cores:
            physical = int(next(iter(cores))) * max(1, len(sockets))
    except OSError:
        pass
    try:
        import captum

        captum_version = captum.__version__
    except Exception:  # noqa: BLE001
        captum_version = "missing"
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"cpu_model": cpu_model, "logical_cpus": os.cpu_count(), "physical_cores": physical,
            "torch_version": torch.__version__, "captum_version": captum_version,
            "python": platform.python_version(), "platform": platform.platform(), "device": str(device),
            "gpu": gpu, "torch_threads": torch.get_num_threads(), "load_average_at_start": _loadavg(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_line(m: dict[str, Any]) -> str:
    cores = f"{m['logical_cpus']} logical CPUs" + (f" ({m['physical_cores']} cores)" if m["physical_cores"] else "")
    gpu = f", GPU {m['gpu']}" if m["gpu"] else ", no GPU"
    omp = f", OMP_WAIT_POLICY={m['omp_wait_policy']}" if m.get("omp_wait_policy", "default") != "default" else ""
    return (f"{m['cpu_model']}, {cores}{gpu}; torch {m['torch_version']} ({m['torch_threads']} threads{omp}), "
            f"captum {m['captum_version']}, Python {m['python']}; device {m['device']}")


# ------------------------------------------------------------------ engine and model

def _fallback_models(data_root: Path, size: int, folder: Path) -> Path:
    """A freshly initialised lite0 model saved like a shipped one (when none is trained yet)."""
    from engine.models import save_checkpoint
    from engine.data import prepare_manifest, read_manifest
    from engine.files import file_sha256
    from engine.models import MultitaskNet, WeightsUnavailableError, backbone_normalization

    manifest = folder / "manifest.csv"
    shipped = DEFAULT_MODELS / "manifest.csv"
    if shipped.is_file():
        manifest.write_bytes(shipped.read_bytes())
    else:
        prepare_manifest(data_root, manifest)
    classes = sorted({s.cls for s in read_manifest(manifest)})
    torch.manual_seed(0)
    try:
        net = MultitaskNet(len(classes), backbone="efficientnet_lite0", pretrained=True)
        pretrained = True
    except WeightsUnavailableError:
        net = MultitaskNet(len(classes), backbone="efficientnet_lite0", pretrained=False)
        pretrained = False
    norm = backbone_normalization("efficientnet_lite0")
    meta = {"backbone": "efficientnet_lite0", "classes": classes, "image_size": size,
            "normalization": {"mean": list(norm.mean), "std": list(norm.std)},
            "manifest_sha256": file_sha256(manifest), "hyperparameters": {"pretrained_encoder": pretrained},
            "note": "untrained, made by pixel-evidence bench"}
    save_checkpoint(folder, 0, net.eval().state_dict(), meta)
    return folder


def open_engine(cfg: BenchConfig, scratch: Path):
    """The engine to measure and a description of its model."""
    from engine.models import available_seeds
    from engine.explain import ExplanationEngine
    from engine.data.synthetic import ensure_default_data

    data = Path(cfg.data) if cfg.data else ensure_default_data()
    models = Path(cfg.models) if cfg.models else DEFAULT_MODELS
    note = ""
    seeds = available_seeds(models) if models.is_dir() else []
    if seeds:
        source = "shipped" if models.resolve() == DEFAULT_MODELS.resolve() else "given"
    else:
        note = (f"no trained model in {models}: measured on a freshly initialised efficientnet_lite0 at "
                f"{cfg.fallback_image_size} px (timings do not depend on the weights; TKO and IG deltas do)")
        log.warning(note)
        models = _fallback_models(data, cfg.fallback_image_size, scratch / "models")
        seeds, source = [0], "fresh lite0"
    params = {"ig": {"n_steps": int(cfg.engine_ig_steps)}} if cfg.engine_ig_steps else None
    engine = ExplanationEngine(data, models, device=cfg.device, cache_mb=512, method_params=params)
    seed = cfg.seed if cfg.seed is not None else engine.seeds[0]
    if seed not in engine.seeds:
        raise ValueError(f"seed {seed} is not in {models} (available: {engine.seeds})")
    meta = engine.meta[seed]
    return engine, {"source": source, "models_dir": str(models), "seed": seed, "image_size": int(meta["image_size"]),
                    "backbone": meta["backbone"], "note": note, "data": str(data)}


# ------------------------------------------------------------------ the two references

class OriginalStudy:
    """The original study's way to compute the three maps, re-implemented for timing.

    The network is the same checkpoint, loaded as a plain training-time model (default
    layout, parameters requiring gradients); every method runs the full multitask forward
    (decoder included) and nothing is shared between methods:

    - Grad-CAM: hooks on the whole encoder's output, ``backward()``, per-channel weights
      from the mean gradient, a Python loop over the channels accumulating weight x
      activation, ReLU, bilinear upsampling, min-max scaling;
    - Saliency: its own forward and ``backward()``, |grad| max over RGB;
    - Integrated Gradients: captum, zero baseline, 25 steps, ``internal_batch_size=1``,
      forward function = class logits of the full multitask forward, convergence delta
      computed, |attr| summed over RGB.

    Each method starts from the prediction forward that picks its target class.
    """

    def __init__(self, net: torch.nn.Module, n_steps: int = ORIGINAL_IG_STEPS):
        self.net = net
        self.n_steps = n_steps

    def predict(self, x: torch.Tensor) -> int:
        with torch.no_grad():
            logits, _ = self.net(x)
        return int(logits.argmax(1)[0])

    def gradcam(self, x: torch.Tensor, target: int) -> np.ndarray:
        store: dict[str, torch.Tensor] = {}

        def keep(module, args, output):
            store["act"] = output
            output.register_hook(lambda g: store.__setitem__("grad", g))

        handle = self.net.encoder.register_forward_hook(keep)
        try:
            logits, _ = self.net(x)
        finally:
            handle.remove()
        self.net.zero_grad()
        logits[0, target].backward()
        act = store["act"][0].detach()
        weights = store["grad"][0].mean(dim=(1, 2))
        cam = torch.zeros(act.shape[1:], dtype=act.dtype)
        for c in range(act.shape[0]):
            cam += weights[c] * act[c]
        cam = F.relu(cam)
        cam = F.interpolate(cam[None, None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[0, 0]
        cam = (cam - cam.min()) / (cam.max() - cam.min() + 1e-8)
        return cam.numpy()

    def saliency(self, x: torch.Tensor, target: int) -> np.ndarray:
        x = x.clone().requires_grad_(True)
        logits, _ = self.net(x)
        self.net.zero_grad()
        logits[0, target].backward()
        return x.grad.abs().max(dim=1)[0][0].numpy()

    def ig(self, x: torch.Tensor, target: int) -> np.ndarray:
        from captum.attr import IntegratedGradients

        ig = IntegratedGradients(lambda inp: self.net(inp)[0])
        attr, _delta = ig.attribute(x, target=target, n_steps=self.n_steps, internal_batch_size=1,
                                    return_convergence_delta=True)
        return attr.detach().abs().sum(dim=1)[0].numpy()

    def run(self, method: str, x: torch.Tensor) -> None:
        target = self.predict(x)
        for m in (ALL if method == "all" else (method,)):
            getattr(self, m)(x, target)


class Floor:
    """The bare passes the three methods need, with plain autograd, on the engine's network
    (same layout), classifier path only:

    - Grad-CAM: forward, backward from the score to the last conv block;
    - Saliency: forward, backward to the input;
    - Integrated Gradients: ``n_steps`` interpolated images, forward and backward to the
      input as one batch (``ig_batched``) or in the engine's chunks (``ig_chunked``).
    """

    def __init__(self, net: torch.nn.Module, n_steps: int, chunk: int):
        self.net = net
        self.n_steps = n_steps
        self.chunk = max(1, chunk)

    def gradcam(self, x: torch.Tensor, target: int) -> None:
        with torch.no_grad():
            feats = self.net.encoder(x)
        feats.requires_grad_(True)
        torch.autograd.grad(self.net.classifier(feats)[0, target], feats)

    def saliency(self, x: torch.Tensor, target: int) -> None:
        x = x.detach().requires_grad_(True)
        torch.autograd.grad(self.net.classify(x)[0, target], x)

    def _ig(self, x: torch.Tensor, target: int, chunk: int) -> None:
        alphas = torch.linspace(0, 1, self.n_steps, device=x.device).view(-1, 1, 1, 1)
        for i in range(0, self.n_steps, chunk):
            a = alphas[i:i + chunk]
            xs = (a * x).contiguous(memory_format=_layout(x)).requires_grad_(True)
            torch.autograd.grad(self.net.classify(xs)[:, target].sum(), xs)

    def ig_batched(self, x: torch.Tensor, target: int) -> None:
        self._ig(x, target, self.n_steps)

    def ig_chunked(self, x: torch.Tensor, target: int) -> None:
        self._ig(x, target, self.chunk)


def _layout(x: torch.Tensor) -> torch.memory_format:
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


# ------------------------------------------------------------------ sections

def _defect_ids(engine, split: str = "test") -> list[str]:
    ids = engine.image_ids(split)
    defects = [i for i in ids if engine.sample(i).has_mask]
    return defects + [i for i in ids if i not in defects]


def bench_cold(engine, seed: int, cfg: BenchConfig, clock: Clock, notes: list[str]) -> dict[str, Any]:
    from engine.models import load_model

    ids = _defect_ids(engine)[: max(1, cfg.cold_images)]
    net, meta = engine.model(seed)
    plain, _ = load_model(engine.models_dir, seed, device=engine.device)  # as the original had it
    original = OriginalStudy(plain)
    ig_params = engine.params_of("ig")
    from engine.explainers.integrated_gradients import IntegratedGradients

    ig_probe = IntegratedGradients(None, **engine.params_of("ig"))
    chunk = ig_probe.chunk_size(1, engine.device)
    floor = Floor(net, int(ig_params["n_steps"]), chunk)
    # the floor again on the network as loaded (BatchNorm layers, default layout): what preparing it gains
    plain_floor = Floor(copy.deepcopy(plain).requires_grad_(False), int(ig_params["n_steps"]), chunk)

    # One warm-up round, so that no reference pays for first-call set-up.
    first = ids[0]
    engine.clear_cache()
    engine.explain(seed, "test", first, list(ALL))
    x_engine = engine.input_batch(seed, engine.prediction(seed, first).image[None])
    x_plain = x_engine.contiguous()
    original.run("all", x_plain)
    t0 = int(torch.argmax(plain(x_plain)[0]))
    floor.gradcam(x_engine, t0), floor.saliency(x_engine, t0), floor.ig_chunked(x_engine, t0)

    def floor_time(key: str, x: torch.Tensor, target: int) -> tuple[float, float]:
        """The floor of ``key`` and the same with IG as one batch; IG's floor is the faster of
        one batch and the engine's chunking."""
        fixed = sum(clock.time(lambda: getattr(floor, name)(x, target))[0]
                    for name in ("gradcam", "saliency") if key in (name, "all"))
        if key not in ("ig", "all"):
            return fixed, fixed
        chunked = clock.time(lambda: floor.ig_chunked(x, target))[0]
        batched = clock.time(lambda: floor.ig_batched(x, target))[0]
        return fixed + min(chunked, batched), fixed + batched

    def engine_time(image_id: str, methods: list[str]) -> float:
        engine.clear_cache()
        return clock.time(lambda: engine.explain(seed, "test", image_id, methods))[0]

    keys = (*ALL, "all")
    samples: dict[str, dict[str, list[float]]] = {k: {"engine": [], "original": [], "floor": [],
                                                      "floor_batched": [], "floor_plain": []}
                                                  for k in keys}
    for i, image_id in enumerate(ids):
        base = engine.prediction(seed, image_id)
        x = engine.input_batch(seed, base.image[None])
        xp = x.contiguous()
        target = int(np.argmax(base.probabilities))
        for k, key in enumerate(keys):
            # Engine and floor back to back, in alternating order, so that the machine's drift
            # (a shared host) falls on both sides of each ratio rather than on one.
            methods = list(ALL) if key == "all" else [key]
            if (i + k) % 2:
                fl, batched = floor_time(key, x, target)
                e = engine_time(image_id, methods)
            else:
                e = engine_time(image_id, methods)
                fl, batched = floor_time(key, x, target)
            samples[key]["engine"].append(e)
            samples[key]["floor"].append(fl)
            samples[key]["floor_batched"].append(batched)
        for key in keys:
            samples[key]["original"].append(clock.time(lambda: original.run(key, xp))[0])
        plain_parts = {name: clock.time(lambda: fn(xp, target))[0]
                       for name, fn in (("gradcam", plain_floor.gradcam), ("saliency", plain_floor.saliency),
                                        ("ig", plain_floor.ig_batched))}
        for key in ALL:
            samples[key]["floor_plain"].append(plain_parts[key])
        samples["all"]["floor_plain"].append(sum(plain_parts.values()))

    out: dict[str, Any] = {"images": ids, "ig_params": ig_params, "ig_chunk": chunk,
                           "original_ig_steps": ORIGINAL_IG_STEPS}
    for key, s in samples.items():
        e, o, fl = _median(s["engine"]), _median(s["original"]), _median(s["floor"])
        out[key] = {"engine_s": e, "original_s": o, "floor_s": fl,
                    "floor_one_batch_s": _median(s["floor_batched"]),
                    "floor_unprepared_s": _median(s["floor_plain"]),
                    "speedup_vs_original": _ratio(o, e),
                    "ratio_to_floor": _median([_ratio(a, b) for a, b in zip(s["engine"], s["floor"])]),
                    "ratio_of_medians_to_floor": _ratio(e, fl),
                    "engine_samples_s": s["engine"], "original_samples_s": s["original"],
                    "floor_samples_s": s["floor"]}
    notes.append("cold: medians over the images listed; the engine times one whole `explain` call (image from "
                 "disk, prediction with the decoder's reconstruction, maps, scores) after clearing its cache; what "
                 "a running server keeps per network (the loaded model, IG's black-image scores) stays. The "
                 "original and the floor start from a ready input tensor. Floor IG = the faster of one batch of "
                 "all steps and the engine's chunking. Engine / floor is the median of per-image ratios, each "
                 "engine call timed right beside its floor (order alternating); the ratio of the medians is "
                 "kept beside it.")
    return out


def bench_warm(engine, seed: int, cfg: BenchConfig, clock: Clock) -> dict[str, Any]:
    ids = _defect_ids(engine)[: max(1, cfg.cold_images)]
    for image_id in ids:
        engine.explain(seed, "test", image_id, list(ALL))
    times = []
    for i in range(cfg.warm_requests):
        image_id = ids[i % len(ids)]
        t, _ = clock.time(lambda: engine.explain(seed, "test", image_id, list(ALL)))
        times.append(t * 1000)
    return {"requests": len(times), "images": len(ids), "p50_ms": _percentile(times, 50),
            "p95_ms": _percentile(times, 95), "max_ms": max(times) if times else math.nan}


def bench_evaluation(engine, seed: int, cfg: BenchConfig, clock: Clock) -> dict[str, Any]:
    ids = engine.image_ids("test")
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
            "ratio_2x_1x": _ratio(_mean_run(runs, 2, "seconds"), _mean_run(runs, 1, "seconds")),
            "ratio_4x_1x": _ratio(_mean_run(runs, 4, "seconds"), _mean_run(runs, 1, "seconds")),
            "cpu_ratio_4x_1x": _ratio(_mean_run(runs, 4, "cpu_seconds"), _mean_run(runs, 1, "cpu_seconds"))}


def _mean_run(runs: Sequence[dict], multiplier: int, field: str) -> float:
    """Mean of ``field`` over the evaluation runs of one size (1x runs twice)."""
    values = [r[field] for r in runs if r["multiplier"] == multiplier]
    return statistics.fmean(values) if values else math.nan


def bench_training(engine, seed: int, cfg: BenchConfig, clock: Clock, notes: list[str]) -> dict[str, Any]:
    """Time the training step of ``engine.train`` with the checkpoint's recorded recipe."""
    from engine.models import load_model
    from engine.data import load_arrays
    from engine.models.train import TrainConfig, augment, class_weights, multitask_loss

    meta = engine.meta[seed]
    hp = {**asdict(TrainConfig()), **meta.get("hyperparameters", {})}
    size = int(meta["image_size"])
    batch = int(hp["batch_size"])
    freeze = int(hp.get("freeze_blocks", 0))
    channels_last = bool(hp.get("channels_last", True))
    device = engine.device
    net, _ = load_model(engine.models_dir, seed, device=device)
    net.freeze_blocks(freeze)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=float(hp["lr"]))
    train = [s for s in engine.samples if s.split == "train"]
    pool = (train * (batch // max(1, len(train)) + 1))[:batch]
    images, masks, labels = load_arrays(engine.data_root, pool, engine.classes, size)
    weights = class_weights(labels, len(engine.classes)).to(device)
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


def bench_ig_accuracy(engine, seed: int, cfg: BenchConfig, clock: Clock) -> dict[str, Any]:
    from engine.explainers.integrated_gradients import IntegratedGradients
    from engine.models import ClassifierView

    net, meta = engine.model(seed)
    norm = meta["normalization"]
    ids = _defect_ids(engine)[: max(1, cfg.ig_images)]
    inputs = []
    for image_id in ids:
        base = engine.prediction(seed, image_id)
        inputs.append((engine.input_batch(seed, base.image[None]), torch.tensor([int(np.argmax(base.probabilities))])))
    rows = []
    for method in cfg.ig_methods:
        for n in cfg.ig_steps:
            ig = IntegratedGradients(ClassifierView(net), input_mean=norm["mean"], input_std=norm["std"],
                                     n_steps=n, method=method)
            deltas, times = [], []
            for x, target in inputs:
                with engine.exclusive():
                    t, out = clock.time(lambda: ig.attribute(x, target))
                deltas.append(float(out.extras["relative_delta"][0]))
                times.append(t)
            rows.append({"method": method, "n_steps": n, "median_relative_delta": _median(deltas),
                         "max_relative_delta": max(deltas), "seconds": _median(times), "relative_deltas": deltas})
    defaults = IntegratedGradients.defaults
    default = next((r for r in rows if r["method"] == defaults["method"] and r["n_steps"] == defaults["n_steps"]), None)
    best = {}
    for n in cfg.ig_steps:
        at_n = [r for r in rows if r["n_steps"] == n]
        b = min(at_n, key=lambda r: r["median_relative_delta"])
        best[str(n)] = {"method": b["method"], "median_relative_delta": b["median_relative_delta"],
                        "seconds": b["seconds"]}
    cheapest = {}
    for tol in cfg.ig_tolerances:
        ok = [r for r in rows if r["median_relative_delta"] <= tol]
        c = min(ok, key=lambda r: (r["n_steps"], r["median_relative_delta"])) if ok else None
        cheapest[f"{tol:g}"] = ({"method": c["method"], "n_steps": c["n_steps"],
                                 "median_relative_delta": c["median_relative_delta"], "seconds": c["seconds"]}
                                if c else None)
    return {"images": ids, "rows": rows, "best_per_steps": best, "cheapest_within": cheapest,
            "default": {"method": defaults["method"], "n_steps": defaults["n_steps"],
                        "median_relative_delta": default["median_relative_delta"] if default else None,
                        "seconds": default["seconds"] if default else None}}


def bench_ig_chunks(engine, seed: int, cfg: BenchConfig, clock: Clock) -> dict[str, Any]:
    """Seconds of one image's IG (the engine's settings) per chunk size: the steps of one
    forward/backward. Justifies the chunk the engine picks on this device."""
    from engine.explainers.integrated_gradients import IntegratedGradients
    from engine.models import ClassifierView

    net, meta = engine.model(seed)
    norm = meta["normalization"]
    params = {**engine.params_of("ig")}
    steps = int(params["n_steps"])
    image_id = _defect_ids(engine)[0]
    base = engine.prediction(seed, image_id)
    x = engine.input_batch(seed, base.image[None])
    target = torch.tensor([int(np.argmax(base.probabilities))])
    chunks = sorted({min(c, steps) for c in cfg.ig_chunks})
    auto = IntegratedGradients(None, **{**params, "internal_batch_size": None}).chunk_size(1, engine.device)
    rows = []
    for rep in range(2):
        for c in chunks:
            ig = IntegratedGradients(ClassifierView(net), input_mean=norm["mean"], input_std=norm["std"],
                                     **{**params, "internal_batch_size": c})
            with engine.exclusive():
                t, _ = clock.time(lambda: ig.attribute(x, target))
            if rep:  # the first round warms up each size
                rows.append({"chunk": c, "seconds": t})
    return {"steps": steps, "image": image_id, "rows": rows, "engine_chunk": auto}


def bench_methods(engine, seed: int, cfg: BenchConfig, clock: Clock) -> dict[str, Any]:
    """Cold ``engine.explain`` of each registered method alone: what one click costs in the UI."""
    from engine.explainers import REGISTRY

    ids = _defect_ids(engine)[: max(1, cfg.method_images)]
    engine.explain(seed, "test", ids[0], ["saliency"])  # the model and its prepared copy are loaded
    rows = []
    for key, cls in REGISTRY.items():
        times = []
        for image_id in ids:
            engine.clear_cache()
            times.append(clock.time(lambda: engine.explain(seed, "test", image_id, [key]))[0])
        rows.append({"method": key, "label": cls.label, "seconds": _median(times), "samples_s": times,
                     "slow": cls.slow, "params": dict(cls.defaults), "cost_note": cls.cost_note})
    return {"images": ids, "rows": rows}


def bench_dashboard(engine, seed: int, cfg: BenchConfig, clock: Clock, model_info: dict,
                    scratch: Path) -> dict[str, Any]:
    from . import bench_server

    return bench_server.measure(engine, seed, cfg, clock, model_info, scratch)


# ------------------------------------------------------------------ targets and report

def _lookup(result: dict, path: str) -> Any:
    node: Any = result
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def check_targets(result: dict) -> dict[str, Any]:
    out = {}
    for name, (path, op, limit) in TARGETS.items():
        value = _lookup(result, path)
        if not isinstance(value, (int, float)) or (isinstance(value, float) and math.isnan(value)):
            out[name] = {"value": None, "limit": limit, "op": op, "met": None}
            continue
        met = value >= limit if op == ">=" else value <= limit
        out[name] = {"value": value, "limit": limit, "op": op, "met": bool(met)}
    return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return _json_safe(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


def _f(v: Any, digits: int = 3, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{digits}f}{unit}"


def markdown(result: dict) -> str:
    m = result["machine"]
    model = result["model"]
    lines = ["# pixel-evidence benchmark", "",
             f"Machine: {machine_line(m)}.", "",
             f"Load average (1, 5, 15 min) at start {m.get('load_average_at_start')}, at end "
             f"{m.get('load_average_at_end')} (the benchmark's own threads account for up to "
             f"{m['torch_threads']}; more means other work shared the CPU).", "",
             f"Model: seed {model['seed']} ({model['source']}), {model['backbone']}, {model['image_size']} px."
             + (f" Note: {model['note']}" if model["note"] else ""), ""]
    cold = result.get("cold") or {}
    if cold.get("all"):
        lines += ["## Cold latency per image (s, median)", "",
                  "| methods | engine | (a) original | (b) floor | speed-up vs (a) | engine / (b), paired | "
                  "floor, one IG batch | floor, unprepared network |",
                  "|---|---|---|---|---|---|---|---|"]
        for key, label in (("gradcam", "Grad-CAM"), ("saliency", "Saliency"), ("ig", "Integrated Gradients"),
                           ("all", "all three")):
            r = cold[key]
            lines.append(f"| {label} | {_f(r['engine_s'])} | {_f(r['original_s'])} | {_f(r['floor_s'])} | "
                         f"{_f(r['speedup_vs_original'], 2, 'x')} | {_f(r['ratio_to_floor'], 2, 'x')} | "
                         f"{_f(r['floor_one_batch_s'])} | {_f(r['floor_unprepared_s'])} |")
        lines += ["", f"IG settings: {cold['ig_params']} (chunk {cold['ig_chunk']} examples); the original uses "
                      f"{cold['original_ig_steps']} steps one by one; images: {len(cold['images'])}. Engine / (b) is "
                      f"the median of per-image ratios, each engine call timed beside its floor; the ratio of the "
                      f"medians for all three is {_f(cold['all']['ratio_of_medians_to_floor'], 2, 'x')}.", ""]
    warm = result.get("warm") or {}
    if warm.get("requests"):
        lines += ["## Warm latency (cache hit, `engine.explain`, all three methods)", "",
                  "| requests | p50 | p95 | max |", "|---|---|---|---|",
                  f"| {warm['requests']} | {_f(warm['p50_ms'], 2, ' ms')} | {_f(warm['p95_ms'], 2, ' ms')} | "
                  f"{_f(warm['max_ms'], 2, ' ms')} |", ""]
    ev = result.get("evaluation") or {}
    if ev.get("runs"):
        lines += ["## Evaluation throughput (`explain_many`, all three methods)", "",
                  "| images | seconds | images/s | time / time(1x) | CPU seconds | CPU / CPU(1x) |",
                  "|---|---|---|---|---|---|"]
        t1, c1 = _mean_run(ev["runs"], 1, "seconds"), _mean_run(ev["runs"], 1, "cpu_seconds")
        for i, r in enumerate(ev["runs"]):
            again = ", again" if any(p["multiplier"] == r["multiplier"] for p in ev["runs"][:i]) else ""
            lines.append(f"| {r['images']} ({r['multiplier']}x{again}) | {_f(r['seconds'], 1)} | "
                         f"{_f(r['images_per_s'], 2)} | {_f(_ratio(r['seconds'], t1), 2)} | "
                         f"{_f(r['cpu_seconds'], 1)} | {_f(_ratio(r['cpu_seconds'], c1), 2)} |")
        lines += ["", f"time(4x) / time(1x) = {_f(ev['ratio_4x_1x'], 2)}, CPU time(4x) / CPU time(1x) = "
                      f"{_f(ev.get('cpu_ratio_4x_1x'), 2)} (linear: 4.00). The runs go in the order listed; "
                      "1x is the mean of the first and the last run, so that a steady drift of the host's speed "
                      "cancels. On a shared virtual machine CPU time drifts with the host too.", ""]
    tr = result.get("training") or {}
    if tr.get("steps"):
        lines += ["## Training throughput", "",
                  "| images/s | batch | image size | frozen blocks | channels_last | steps timed |",
                  "|---|---|---|---|---|---|",
                  f"| {_f(tr['images_per_s'], 1)} | {tr['batch_size']} | {tr['image_size']} | {tr['freeze_blocks']} | "
                  f"{tr['channels_last']} | {tr['steps']} |", ""]
    db = result.get("dashboard") or {}
    lines += ["## Dashboard (server side)", "", f"Status: {db.get('status', '—')}. {db.get('note', '')}", ""]
    wc = db.get("widget_change") or {}
    if wc:
        lines += ["| widget change -> updated view | cold | warm p50 | warm p95 |", "|---|---|---|---|",
                  f"| {wc.get('what', '')} | {_f(wc.get('cold_s'), 3, ' s')} | {_f(wc.get('warm_p50_ms'), 1, ' ms')} | "
                  f"{_f(wc.get('warm_p95_ms'), 1, ' ms')} |", ""]
    rss = db.get("rss") or {}
    if rss:
        lines += ["| sessions | peak RSS of the server process |", "|---|---|"]
        for k in sorted((k for k in rss if k.endswith("_peak_mb")), key=lambda k: int(k.split("_")[1])):
            lines.append(f"| {k.split('_')[1]} | {_f(rss[k], 0, ' MB')} |")
        lines.append("")
    ig = result.get("ig_accuracy") or {}
    if ig.get("rows"):
        steps = sorted({r["n_steps"] for r in ig["rows"]})
        methods = list(dict.fromkeys(r["method"] for r in ig["rows"]))
        cell = {(r["method"], r["n_steps"]): r for r in ig["rows"]}
        lines += ["## Integrated Gradients: median |delta| / |F(x) - F(black)|, and seconds per image", "",
                  "| quadrature | " + " | ".join(f"{n} steps" for n in steps) + " |",
                  "|---|" + "---|" * len(steps)]
        for meth in methods:
            lines.append(f"| {meth} | " + " | ".join(
                f"{_f(cell[(meth, n)]['median_relative_delta'], 4)} ({_f(cell[(meth, n)]['seconds'], 2)} s)"
                if (meth, n) in cell else "—" for n in steps) + " |")
        d = ig["default"]
        lines += ["", f"Default: {d['method']}, {d['n_steps']} steps (median relative delta "
                      f"{_f(d['median_relative_delta'], 4)}). Best quadrature per step count: "
                      + ", ".join(f"{n}: {b['method']} ({_f(b['median_relative_delta'], 4)})"
                                  for n, b in ig["best_per_steps"].items()) + ". Cheapest setting within "
                      + "; ".join(f"{tol}: " + (f"{c['method']}, {c['n_steps']} steps" if c else "none")
                                  for tol, c in ig["cheapest_within"].items())
                      + f". Images: {len(ig['images'])}.", ""]
    mc = result.get("methods") or {}
    if mc.get("rows"):
        lines += ["## Every method: cold seconds per image (one `explain` call, default settings)", "",
                  "| method | seconds | marked slow in the UI | what it runs |", "|---|---|---|---|"]
        lines += [f"| {r['label']} | {_f(r['seconds'], 2)} | {'yes' if r['slow'] else 'no'} | {r['cost_note']} |"
                  for r in mc["rows"]]
        lines += ["", f"Median over {len(mc['images'])} images; the image, prediction and scores are included.", ""]
    ch = result.get("ig_chunks") or {}
    if ch.get("rows"):
        lines += [f"## Integrated Gradients: seconds per image by chunk size ({ch['steps']} steps)", "",
                  "| steps per forward/backward | " + " | ".join(str(r["chunk"]) for r in ch["rows"]) + " |",
                  "|---|" + "---|" * len(ch["rows"]),
                  "| seconds | " + " | ".join(_f(r["seconds"], 3) for r in ch["rows"]) + " |", "",
                  f"The engine uses {ch['engine_chunk']} on this device.", ""]
    lines += ["## Targets", "", "| target | value | limit | met |", "|---|---|---|---|"]
    for name, t in result["targets"].items():
        met = "—" if t["met"] is None else ("yes" if t["met"] else "NO")
        lines.append(f"| {name} | {_f(t['value'], 3)} | {t['op']} {t['limit']} | {met} |")
    lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    lines += ["", f"Total benchmark time: {_f(result['seconds_total'], 0, ' s')}.", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ entry points

def run(cfg: BenchConfig) -> dict[str, Any]:
    """Run the selected sections; write ``benchmark.json`` and ``benchmark.md`` into ``cfg.out``."""
    start = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-", dir=out) as scratch:
        engine, model = open_engine(cfg, Path(scratch))
        try:
            seed = model["seed"]
            clock = Clock(engine.device)
            engine.model(seed)  # "model already loaded"
            result: dict[str, Any] = {"machine": machine_info(engine.device),
                                      "config": _json_safe(asdict(cfg)), "model": model}
            sections = {
                "cold": lambda: bench_cold(engine, seed, cfg, clock, notes),
                "warm": lambda: bench_warm(engine, seed, cfg, clock),
                "evaluation": lambda: bench_evaluation(engine, seed, cfg, clock),
                "training": lambda: bench_training(engine, seed, cfg, clock, notes),
                "ig_accuracy": lambda: bench_ig_accuracy(engine, seed, cfg, clock),
                "ig_chunks": lambda: bench_ig_chunks(engine, seed, cfg, clock),
                "methods": lambda: bench_methods(engine, seed, cfg, clock),
                "dashboard": lambda: bench_dashboard(engine, seed, cfg, clock, model, Path(scratch)),
            }
            for name, fn in sections.items():
                if name in cfg.sections:
                    log.info("bench: %s", name)
                    t0 = time.perf_counter()
                    result[name] = fn()
                    log.info("bench: %s done in %.1f s", name, time.perf_counter() - t0)
                else:
                    result[name] = {"skipped": True}
        finally:
            engine.close()
    result["notes"] = notes
    result["targets"] = check_targets(result)
    result["seconds_total"] = time.perf_counter() - start
    result["machine"]["load_average_at_end"] = _loadavg()
    result = _json_safe(result)
    atomic_write_text(out / "benchmark.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(out / "benchmark.md", markdown(result))
    return result


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.replace(",", " ").split())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: benchmarks/results/)")
    p.add_argument("--data", help="MVTec AD category folder (default: the built-in synthetic set)")
    p.add_argument("--models", help="checkpoint folder (default: pretrained_models/; a fresh lite0 model if empty)")
    p.add_argument("--seed", type=int, help="which model (default: the first one)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    p.add_argument("--cold-images", type=int, default=BenchConfig.cold_images)
    p.add_argument("--warm-requests", type=int, default=BenchConfig.warm_requests)
    p.add_argument("--eval-images", type=int, help="limit the evaluation to the first N test images (default: all)")
    p.add_argument("--eval-multipliers", type=_ints, default=BenchConfig.eval_multipliers, help="e.g. '1 2 4'")
    p.add_argument("--train-steps", type=int, default=BenchConfig.train_steps)
    p.add_argument("--ig-steps", type=_ints, default=BenchConfig.ig_steps, help="e.g. '8 16 25 32 64'")
    p.add_argument("--ig-methods", nargs="+", default=list(IG_QUADRATURES), choices=IG_QUADRATURES)
    p.add_argument("--ig-images", type=int, default=BenchConfig.ig_images)
    p.add_argument("--ig-chunks", type=_ints, default=BenchConfig.ig_chunks,
                   help="IG steps per forward/backward to compare, e.g. '1 4 8 13 25'")
    p.add_argument("--engine-ig-steps", type=int, help="IG steps of the measured engine (default: the method's)")
    p.add_argument("--widget-changes", type=int, default=BenchConfig.widget_changes)
    p.add_argument("--method-images", type=int, default=BenchConfig.method_images,
                   help="images per method in the every-method cost section")
    p.add_argument("--no-server", action="store_true", help="skip the dashboard server and browser sessions")
    p.add_argument("--sessions", type=_ints, default=BenchConfig.sessions, help="browser sessions to open, e.g. '1 10'")
    p.add_argument("--server-timeout", type=float, default=BenchConfig.server_timeout)
    p.add_argument("--only", nargs="+", choices=BenchConfig.sections, help="run only these sections")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    return BenchConfig(
        out=Path(args.out), data=Path(args.data) if args.data else None,
        models=Path(args.models) if args.models else None, seed=args.seed, device=args.device,
        cold_images=args.cold_images, warm_requests=args.warm_requests, eval_images=args.eval_images,
        eval_multipliers=tuple(args.eval_multipliers), train_steps=args.train_steps, ig_steps=tuple(args.ig_steps),
        ig_methods=tuple(args.ig_methods), ig_images=args.ig_images, ig_chunks=tuple(args.ig_chunks),
        engine_ig_steps=args.engine_ig_steps, widget_changes=args.widget_changes, method_images=args.method_images,
        server=not args.no_server, sessions=tuple(args.sessions), server_timeout=args.server_timeout,
        sections=tuple(args.only) if args.only else BenchConfig.sections)


def run_cli(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config_from_args(args)
    result = run(cfg)
    print(markdown(result))
    print(f"wrote {Path(cfg.out) / 'benchmark.json'} and benchmark.md")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pixel-evidence bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    return run_cli(args)


if __name__ == "__main__":
    sys.exit(main())

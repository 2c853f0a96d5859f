"""Latency sections: ``cold`` (one uncached ``explain`` beside the original study's way and
the floor), ``warm`` (cache hits) and ``methods`` (every registered method alone, cold)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from pixel_evidence.methods import METHODS

from .config import ALL, BenchConfig
from .floor import Floor
from .measured_engine import defect_ids, input_and_target
from .original import ORIGINAL_IG_STEPS, OriginalStudy
from .timing import Clock, median, percentile, ratio


def bench_cold(engine, seed: int, cfg: BenchConfig, clock: Clock, notes: list[str]) -> dict[str, Any]:
    """Uncached ``explain`` per method and for all three, each call timed beside its floor;
    the original study's way once per image and key."""
    from pixel_evidence.explainers.integrated_gradients import IntegratedGradients
    from pixel_evidence.models import load_model

    ids = defect_ids(engine)[: max(1, cfg.cold_images)]
    net, _ = engine.pool.network(seed)
    plain, _ = load_model(engine.pool.models_dir, seed, device=engine.pool.device)  # as the original had it
    original = OriginalStudy(plain)
    ig_params = engine.params_of("ig")
    ig_probe = IntegratedGradients(None, **engine.params_of("ig"))
    chunk = ig_probe.chunk_size(1, engine.pool.device)
    floor = Floor(net, int(ig_params["n_steps"]), chunk)
    # the floor again on the network as loaded (BatchNorm layers, default layout): what preparing it gains
    plain_floor = Floor(copy.deepcopy(plain).requires_grad_(False), int(ig_params["n_steps"]), chunk)

    # One warm-up round, so that no reference pays for first-call set-up.
    first = ids[0]
    engine.clear_cache()
    engine.explain(seed, first, split="test", methods=list(ALL))
    x_engine, _ = input_and_target(engine, seed, first)
    x_plain = x_engine.contiguous()
    original.run("all", x_plain)
    t0 = int(torch.argmax(plain(x_plain)[0]))
    floor.gradcam(x_engine, t0), floor.saliency(x_engine, t0), floor.ig_chunked(x_engine, t0)
    evaluation_ig = EvaluationIG(engine, seed, first)

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
        return clock.time(lambda: engine.explain(seed, image_id, split="test", methods=methods))[0]

    keys = (*ALL, "all")
    samples: dict[str, dict[str, list[float]]] = {k: {"engine": [], "original": [], "floor": [],
                                                      "floor_batched": [], "floor_plain": []}
                                                  for k in keys}
    for i, image_id in enumerate(ids):
        x, target = input_and_target(engine, seed, image_id)
        xp = x.contiguous()
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
            if key == "all":  # the evaluation setting right after the default's call on this image
                evaluation_ig.time(clock, image_id)
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
        e, o, fl = median(s["engine"]), median(s["original"]), median(s["floor"])
        out[key] = {"engine_s": e, "original_s": o, "floor_s": fl,
                    "floor_one_batch_s": median(s["floor_batched"]),
                    "floor_unprepared_s": median(s["floor_plain"]),
                    "speedup_vs_original": ratio(o, e),
                    "ratio_to_floor": median([ratio(a, b) for a, b in zip(s["engine"], s["floor"])]),
                    "ratio_of_medians_to_floor": ratio(e, fl),
                    "engine_samples_s": s["engine"], "original_samples_s": s["original"],
                    "floor_samples_s": s["floor"]}
    out["all_evaluation_ig"] = evaluation_ig.report(samples["all"]["engine"])
    notes.append("cold: medians over the images listed; the engine times one whole `explain` call (image from "
                 "disk, prediction with the decoder's reconstruction, maps, scores) after clearing its cache; what "
                 "a running server keeps per network (the loaded model, IG's black-image scores) stays. The "
                 "original and the floor start from a ready input tensor. Floor IG = the faster of one batch of "
                 "all steps and the engine's chunking. Engine / floor is the median of per-image ratios, each "
                 "engine call timed right beside its floor (order alternating); the ratio of the medians is "
                 "kept beside it.")
    return out


class EvaluationIG:
    """A second engine on the same model whose IG is refined to ``evaluate``'s tolerance (what
    ``evaluate`` and ``sweep`` compute), for timing beside the engine under measurement."""

    def __init__(self, engine, seed: int, first_image: str):
        from pixel_evidence.choices import EVALUATE_IG_TOLERANCE, IG_MAX_STEPS, ig_params
        from pixel_evidence.engine.explain import ExplanationEngine

        self.params = ig_params(25, EVALUATE_IG_TOLERANCE, IG_MAX_STEPS)
        self.seed = seed
        self.engine = ExplanationEngine(engine.catalogue.data_root, engine.pool.models_dir, device=engine.pool.device,
                                        cache_mb=64, method_params={"ig": self.params})
        self.engine.explain(seed, first_image, split="test", methods=list(ALL))  # its model and IG's black-image score
        self.seconds: list[float] = []
        self.steps: list[float] = []
        self.gaps: list[float] = []

    def time(self, clock: Clock, image_id: str, methods: tuple[str, ...] = ALL) -> None:
        """One cold call on ``image_id``; its seconds, IG's steps and its gap are kept."""
        self.engine.clear_cache()
        t, result = clock.time(lambda: self.engine.explain(self.seed, image_id, split="test", methods=list(methods)))
        ig = result.methods["ig"].extras
        self.seconds.append(t)
        self.steps.append(ig.get("steps", math.nan))
        self.gaps.append(ig.get("relative_delta", math.nan))

    def close(self) -> dict[str, Any]:
        self.engine.close()
        return {"ig_params": self.params, "engine_s": median(self.seconds), "engine_samples_s": self.seconds,
                "ig_steps": self.steps, "ig_relative_gap": self.gaps}

    def report(self, default_s: list[float]) -> dict[str, Any]:
        return {**self.close(), "ratio_to_default": median([ratio(a, b) for a, b in zip(self.seconds, default_s)])}


def bench_warm(engine, seed: int, cfg: BenchConfig, clock: Clock) -> dict[str, Any]:
    """Cache-hit latency of ``pixel_evidence.engine.explain`` (all three methods) over the cold section's images."""
    ids = defect_ids(engine)[: max(1, cfg.cold_images)]
    for image_id in ids:
        engine.explain(seed, image_id, split="test", methods=list(ALL))
    times = []
    for i in range(cfg.warm_requests):
        image_id = ids[i % len(ids)]
        t, _ = clock.time(lambda: engine.explain(seed, image_id, split="test", methods=list(ALL)))
        times.append(t * 1000)
    return {"requests": len(times), "images": len(ids), "p50_ms": percentile(times, 50),
            "p95_ms": percentile(times, 95), "max_ms": max(times) if times else math.nan}


def bench_methods(engine, seed: int, cfg: BenchConfig, clock: Clock) -> dict[str, Any]:
    """Cold ``pixel_evidence.engine.explain`` of each registered method alone: what one click costs in the UI."""
    ids = defect_ids(engine)[: max(1, cfg.method_images)]
    engine.explain(seed, ids[0], split="test", methods=["saliency"])  # the model and its prepared copy are loaded
    rows = []
    for key, method in METHODS.items():
        times = []
        for image_id in ids:
            engine.clear_cache()
            times.append(clock.time(lambda: engine.explain(seed, image_id, split="test", methods=[key]))[0])
        rows.append({"method": key, "label": method.label, "seconds": median(times), "samples_s": times,
                     "slow": method.slow, "params": dict(method.explainer().defaults), "cost_note": method.cost_note})
    # IG as evaluate and sweep compute it (refined to a tolerance): what a sweep's IG task costs
    refined = EvaluationIG(engine, seed, ids[0])
    for image_id in ids:
        refined.time(clock, image_id, ("ig",))
    timed = refined.close()
    ig = METHODS["ig"]
    rows.append({"method": "ig", "setting": "evaluate", "label": f"{ig.label} (evaluate's tolerance)",
                 "seconds": timed["engine_s"], "samples_s": timed["engine_samples_s"], "slow": ig.slow,
                 "params": {**ig.explainer().defaults, **timed["ig_params"]}, "steps": timed["ig_steps"],
                 "cost_note": ig.cost_note})
    return {"images": ids, "rows": rows}

"""Integrated Gradients sections: ``ig_accuracy`` (completeness error and time per step count
and quadrature, and of the tolerance scheme per tolerance) and ``ig_chunks`` (time per number
of steps in one forward/backward)."""

from __future__ import annotations

from typing import Any

import torch

from .config import BenchConfig
from .measured_engine import defect_ids, input_and_target
from .timing import Clock, median, percentile


def _ig_on(engine, seed: int, **params: Any):
    """The engine's Integrated Gradients with ``params`` on ``seed``'s classifier."""
    from pixel_evidence.explainers.integrated_gradients import IntegratedGradients
    from pixel_evidence.models import ClassifierView

    net, meta = engine.pool.network(seed)
    norm = meta["normalization"]
    return IntegratedGradients(ClassifierView(net), input_mean=norm["mean"], input_std=norm["std"], **params)


def _timed_attribution(engine, clock: Clock, ig, x: torch.Tensor, target: torch.Tensor):
    """Seconds of one attribution, with no other engine call running a network meanwhile."""
    with engine.exclusive():
        return clock.time(lambda: ig.attribute(x, target))


def _gap_spread(deltas: list[float]) -> dict[str, float]:
    return {"median_relative_delta": median(deltas), "p90_relative_delta": percentile(deltas, 90),
            "max_relative_delta": max(deltas)}


def bench_ig_accuracy(engine, seed: int, cfg: BenchConfig, clock: Clock) -> dict[str, Any]:
    """|delta| / |F(x) - F(black)| (median, p90, max over the images) and seconds per image for
    each quadrature and step count, and for the tolerance scheme at each of ``cfg.ig_tolerances``
    (steps used, share converged). Every row carries its rule's weight sum: 1 for the engine's
    rules (results measured before they replaced captum's show captum's trapezoid, (n - 1) / n)."""
    from pixel_evidence.choices import IG_MAX_STEPS
    from pixel_evidence.explainers.ig_path import fixed_rule
    from pixel_evidence.explainers.integrated_gradients import IntegratedGradients

    ids = defect_ids(engine)[: max(1, cfg.ig_images)]
    inputs = []
    for image_id in ids:
        x, predicted = input_and_target(engine, seed, image_id)
        inputs.append((x, torch.tensor([predicted])))
    rows = []
    for method in cfg.ig_methods:
        for n in cfg.ig_steps:
            ig = _ig_on(engine, seed, n_steps=n, method=method)
            deltas, times = [], []
            for x, target in inputs:
                t, out = _timed_attribution(engine, clock, ig, x, target)
                deltas.append(float(out.extras["relative_delta"][0]))
                times.append(t)
            rows.append({"method": method, "n_steps": n, **_gap_spread(deltas), "seconds": median(times),
                         "weight_sum": float(fixed_rule(method, n)[1].sum()), "relative_deltas": deltas})
    scheme = []
    for tol in cfg.ig_tolerances:
        ig = _ig_on(engine, seed, tolerance=tol, max_steps=IG_MAX_STEPS)
        runs = [_timed_attribution(engine, clock, ig, x, target) for x, target in inputs]
        deltas = [float(out.extras["relative_delta"][0]) for _, out in runs]
        steps = [float(out.extras["steps"][0]) for _, out in runs]
        scheme.append({"tolerance": tol, "max_steps": IG_MAX_STEPS, **_gap_spread(deltas),
                       "median_steps": median(steps), "p90_steps": percentile(steps, 90),
                       "converged": sum(float(out.extras["converged"][0]) for _, out in runs) / len(runs),
                       "seconds": median([t for t, _ in runs]), "relative_deltas": deltas, "steps": steps})
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
    return {"images": ids, "rows": rows, "scheme": scheme, "best_per_steps": best, "cheapest_within": cheapest,
            "default": {"method": defaults["method"], "n_steps": defaults["n_steps"],
                        "median_relative_delta": default["median_relative_delta"] if default else None,
                        "seconds": default["seconds"] if default else None}}


def bench_ig_chunks(engine, seed: int, cfg: BenchConfig, clock: Clock) -> dict[str, Any]:
    """Seconds of one image's IG (the engine's settings) per chunk size: the steps of one
    forward/backward. Justifies the chunk the engine picks on this device."""
    from pixel_evidence.explainers.integrated_gradients import IntegratedGradients

    params = {**engine.params_of("ig")}
    steps = int(params["n_steps"])
    image_id = defect_ids(engine)[0]
    x, predicted = input_and_target(engine, seed, image_id)
    target = torch.tensor([predicted])
    chunks = sorted({min(c, steps) for c in cfg.ig_chunks})
    auto = IntegratedGradients(None, **{**params, "internal_batch_size": None}).chunk_size(1, engine.pool.device)
    rows = []
    for rep in range(2):
        for c in chunks:
            ig = _ig_on(engine, seed, **{**params, "internal_batch_size": c})
            t, _ = _timed_attribution(engine, clock, ig, x, target)
            if rep:  # the first round warms up each size
                rows.append({"chunk": c, "seconds": t})
    return {"steps": steps, "image": image_id, "rows": rows, "engine_chunk": auto}

"""Per-method cost of one map, and what a planned sweep will cost before it runs.

The costs are the benchmark's ``methods`` section (``benchmarks/results/benchmark.json``:
cold seconds per image of each method alone, 224 px, on the machine that ran it). Without
it, ``FALLBACK_SECONDS`` holds the numbers that section measured on a 2-core CPU
(EfficientNet-lite0, default settings); a method it has no number for counts as the
costliest one, so a plan never promises too little. Integrated Gradients has two rows there:
the fixed rule (the dashboard's default) and IG refined to ``evaluate``'s tolerance (what
``evaluate`` and ``sweep`` compute by default); ``ig_refined`` picks the second.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from pixel_evidence.methods import METHODS
from pixel_evidence.run_folders import PROJECT_ROOT

BENCHMARK_JSON = PROJECT_ROOT / "benchmarks" / "results" / "benchmark.json"
# The registry's planning numbers, for methods the benchmark has not measured.
FALLBACK_SECONDS = {key: m.planning_seconds for key, m in METHODS.items() if m.planning_seconds is not None}
# IG refined to evaluate's tolerance used 2.6x the fixed rule's gradient evaluations over the
# shipped test split (benchmarks/README.md, "Integrated Gradients to a tolerance").
FALLBACK_IG_REFINED = 2.6 * FALLBACK_SECONDS["ig"]
# One prediction forward per image (every image gets one, also those without maps).
PREDICTION_SECONDS = 0.012
# A GPU runs these networks' passes roughly this much faster than the 2-core CPU measured
# here; used only when the benchmark ran on a CPU and the sweep asks for CUDA.
GPU_SPEEDUP = 20.0


@dataclass(frozen=True)
class MethodCosts:
    seconds: dict[str, float]  # method -> seconds per image
    source: str                # where they come from, for the plan's printout
    device: str                # "cpu" or "cuda": where they were measured


def method_costs(path: Path = BENCHMARK_JSON, *, ig_refined: bool = False) -> MethodCosts:
    """The benchmark's per-method costs, with the fallback numbers for methods it lacks;
    IG's is the refined scheme's with ``ig_refined``, else the fixed rule's."""
    measured: dict[str, float] = {}
    device, source = "cpu", "fallback numbers (pixel_evidence/sweep/costs.py)"
    fallback = {**FALLBACK_SECONDS, "ig": FALLBACK_IG_REFINED} if ig_refined else FALLBACK_SECONDS
    wanted = "evaluate" if ig_refined else None
    try:
        result = json.loads(Path(path).read_text())
        rows = result["methods"]["rows"]
        measured = {r["method"]: float(r["seconds"]) for r in rows
                    if math.isfinite(float(r["seconds"])) and (r["method"] != "ig" or r.get("setting") == wanted)}
        device = "cuda" if str(result.get("machine", {}).get("device", "cpu")).startswith("cuda") else "cpu"
        shown = Path(path).resolve()
        shown = shown.relative_to(PROJECT_ROOT) if shown.is_relative_to(PROJECT_ROOT) else shown
        source = f"{shown} (methods section)"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    costliest = max([*fallback.values(), *measured.values()])
    seconds = {m: measured.get(m, fallback.get(m, costliest)) for m in METHODS}
    return MethodCosts(seconds, source, device)


def method_seconds(path: Path = BENCHMARK_JSON, *, ig_refined: bool = False) -> dict[str, float]:
    return method_costs(path, ig_refined=ig_refined).seconds


@dataclass(frozen=True)
class PlanCost:
    tasks: int
    images: int          # image x seed x split units (predictions)
    maps: int            # maps to compute
    cpu_hours: float     # one CPU worker's hours (0 when the sweep runs on GPUs)
    gpu_hours: float     # one GPU's hours (0 on CPUs)
    source: str

    def wall_hours(self, workers: int) -> float:
        """Hours on ``workers`` equal workers, when the tasks spread evenly."""
        return (self.cpu_hours + self.gpu_hours) / max(1, workers)


def plan_cost(tasks: Iterable, costs: MethodCosts, *, gpu: bool) -> PlanCost:
    """What ``tasks`` (``plan.Task``) cost from per-method seconds per image."""
    tasks = list(tasks)
    seconds = sum(t.n_mapped * sum(costs.seconds.get(m, 0.0) for m in t.methods)  # imported: read, not computed
                  + len(t.image_ids) * PREDICTION_SECONDS for t in tasks)
    maps = sum(t.n_mapped * len(t.methods) for t in tasks)
    images = len({(t.category.name, t.seed, t.split, i) for t in tasks for i in t.image_ids})
    hours = seconds / 3600
    if gpu and costs.device == "cpu":
        hours /= GPU_SPEEDUP
    return PlanCost(len(tasks), images, maps, 0.0 if gpu else hours, hours if gpu else 0.0, costs.source)

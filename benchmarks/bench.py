"""``python -m benchmarks``: how fast the engine is, against
references timed in the same run.

This module parses the options and runs the sections in order; each section lives in its
own module.

One run writes ``benchmark.json`` and ``benchmark.md`` into ``--out`` (default
``benchmarks/results/``, see ``report``). Sections:

cold        latency of one uncached ``pixel_evidence.engine.explain`` per method and for all three, beside
            (a) the original study's way of computing the same maps (``original``) and
            (b) the floor: the bare forward/backward passes the methods need (``floor``);
warm        cache-hit latency of ``pixel_evidence.engine.explain`` (p50, p95);
methods     the cold per-image cost of every registered method on its own, default settings
            (these three in ``latency``);
evaluation  ``explain_many`` over the test split, and over 2x and 4x as many images;
training    images/s of the training step with the shipped recipe's settings (both in
            ``throughput``);
dashboard   widget change -> updated view, server side, and the server's peak RSS with 1 and
            10 browser sessions (``bench_server``);
ig_accuracy Integrated Gradients' completeness error and time per step count and quadrature;
ig_chunks   IG's time per number of steps in one forward/backward (both in
            ``integrated_gradients``);
sweep       the sweep on local Dask clusters of 1 and 2 workers, its overhead per task, and a
            simulated plan of 15 categories x 10 seeds x 12 methods (``sweep``).

On CUDA every timer synchronises the device before reading the clock (``timing``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch

from pixel_evidence.run_folders import writable

from . import bench_server
from .config import DEFAULT_OUT, IG_QUADRATURES, SECTIONS, BenchConfig
from .contention import bench_contention
from .integrated_gradients import bench_ig_accuracy, bench_ig_chunks
from .latency import bench_cold, bench_methods, bench_warm
from .measured_engine import open_engine
from .report import (carry_over, check_targets, json_safe, load_average, machine_info, markdown, read_previous,
                     write_reports)
from .sweep import bench_sweep
from .throughput import bench_evaluation, bench_training
from .timing import Clock

log = logging.getLogger("pixel_evidence.bench")


# ------------------------------------------------------------------ running the sections

def run(cfg: BenchConfig, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the selected sections; write ``benchmark.json`` and ``benchmark.md`` into ``cfg.out``.
    With ``cfg.update``, ``previous`` is the earlier report (read from ``cfg.out`` if not given)."""
    start = time.perf_counter()
    out = Path(cfg.out)
    if cfg.update and previous is None:
        previous = read_previous(out / "benchmark.json")
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-", dir=out) as scratch:
        engine, model = open_engine(cfg, Path(scratch))
        try:
            seed = model["seed"]
            clock = Clock(engine.pool.device)
            engine.pool.network(seed)  # "model already loaded"
            result: dict[str, Any] = {"machine": machine_info(engine.pool.device),
                                      "config": json_safe(asdict(cfg)), "model": model}
            sections = {
                "cold": lambda: bench_cold(engine, seed, cfg, clock, notes),
                "warm": lambda: bench_warm(engine, seed, cfg, clock),
                "contention": lambda: bench_contention(engine, seed, cfg, clock),
                "evaluation": lambda: bench_evaluation(engine, seed, cfg, clock),
                "training": lambda: bench_training(engine, seed, cfg, clock, notes),
                "ig_accuracy": lambda: bench_ig_accuracy(engine, seed, cfg, clock),
                "ig_chunks": lambda: bench_ig_chunks(engine, seed, cfg, clock),
                "methods": lambda: bench_methods(engine, seed, cfg, clock),
                "dashboard": lambda: bench_server.measure(engine, seed, cfg, clock, model, Path(scratch)),
                "sweep": lambda: bench_sweep(engine, seed, cfg),
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
    if previous is not None:
        result = carry_over(result, previous, cfg.sections, SECTIONS)
    result["targets"] = check_targets(result)
    result["seconds_total"] = time.perf_counter() - start
    result["machine"]["load_average_at_end"] = load_average()
    return write_reports(result, out)


# ------------------------------------------------------------------ command line

def _ints(text: str) -> tuple[int, ...]:
    """'1 2 4' or '1,2,4' -> (1, 2, 4)."""
    return tuple(int(v) for v in text.replace(",", " ").split())


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's options, one per ``BenchConfig`` setting worth changing, plus ``--threads``."""
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: runs/bench)")
    p.add_argument("--write-shipped", action="store_true",
                   help="allow --out to be the shipped benchmarks/results/ (the report the README quotes)")
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
    p.add_argument("--sweep-chunk", type=int, default=BenchConfig.sweep_chunk, help="images per sweep task")
    p.add_argument("--no-server", action="store_true", help="skip the dashboard server and browser sessions")
    p.add_argument("--sessions", type=_ints, default=BenchConfig.sessions, help="browser sessions to open, e.g. '1 10'")
    p.add_argument("--server-timeout", type=float, default=BenchConfig.server_timeout)
    p.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    p.add_argument("--update", action="store_true",
                   help="keep the sections of --out's existing report that this run skips (with --only: re-measure "
                        "some sections of a report; each kept section names the run it came from)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """The run's settings from parsed options."""
    return BenchConfig(
        out=writable(args.out, write_shipped=args.write_shipped, option="--out"), data=Path(args.data) if args.data else None,
        models=Path(args.models) if args.models else None, seed=args.seed, device=args.device,
        cold_images=args.cold_images, warm_requests=args.warm_requests, eval_images=args.eval_images,
        eval_multipliers=tuple(args.eval_multipliers), train_steps=args.train_steps, ig_steps=tuple(args.ig_steps),
        ig_methods=tuple(args.ig_methods), ig_images=args.ig_images, ig_chunks=tuple(args.ig_chunks),
        engine_ig_steps=args.engine_ig_steps, widget_changes=args.widget_changes, method_images=args.method_images,
        sweep_chunk=args.sweep_chunk,
        server=not args.no_server, sessions=tuple(args.sessions), server_timeout=args.server_timeout,
        sections=tuple(args.only) if args.only else BenchConfig.sections, update=args.update)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the benchmark, print the Markdown report; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:  # bad options and a missing earlier report: one line, before anything is measured
        cfg = config_from_args(args)
        previous = read_previous(Path(cfg.out) / "benchmark.json") if cfg.update else None
    except ValueError as err:  # as `pixel-evidence` reports bad input
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = run(cfg, previous)
    print(markdown(result))
    print(f"wrote {Path(cfg.out) / 'benchmark.json'} and benchmark.md")
    return 0

"""``pixel-evidence sweep``: its options, and the command that plans, prices or runs a sweep."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from pixel_evidence.choices import EVALUATE_IG_TOLERANCE, IG_MAX_STEPS, SCORES, TARGETS, ig_params, parse_seeds
from pixel_evidence.methods import DEFAULT_METHODS, METHODS
from pixel_evidence.run_folders import SHIPPED_MODELS, default_results, writable
from pixel_evidence.sweep.costs import GPU_SPEEDUP, method_costs, plan_cost
from pixel_evidence.sweep.spec import DEFAULT_CHUNK, SweepSpec, categories_from_flags, expand_methods, read_spec

PLAN_WORKERS = (1, 8, 64)


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", help="sweep file (TOML, see README 'Scale-out'); flags given beside it override it")
    p.add_argument("--data", nargs="+", default=[],
                   help="category folders, e.g. mvtec/hazelnut mvtec/screw (default: the built-in synthetic set)")
    p.add_argument("--models", nargs="+", default=[],
                   help="one models folder per --data folder, in the same order (default: pretrained_models/)")
    p.add_argument("--manifest", nargs="+", default=[], help="split manifests (default: <models>/manifest.csv)")
    p.add_argument("--out", help="the Parquet store (default: <first models folder>/results/sweep, where the "
                                 "dashboard looks, or runs/results/sweep for the shipped models; with --spec: its out)")
    p.add_argument("--write-shipped", action="store_true",
                   help="allow the store to be in the checkout's shipped pretrained_models/")
    p.add_argument("--seeds", type=parse_seeds, help="e.g. 42-51 (default: every seed of each models folder)")
    p.add_argument("--splits", nargs="+", choices=["test", "train"], help="default: test")
    p.add_argument("--methods", nargs="+", metavar="METHOD",
                   help=f"methods ({', '.join(METHODS)}), or all, and imported ones (see import-maps; not in all) "
                        f"(default: {' '.join(DEFAULT_METHODS)})")
    p.add_argument("--metrics", nargs="*", choices=SCORES, help="extra localisation scores of the main table")
    p.add_argument("--target", choices=TARGETS, help="class the maps explain (default predicted)")
    p.add_argument("--ig-steps", type=int,
                   help="Integrated Gradients steps of the fixed rule (with --ig-tolerance 0; default 25)")
    p.add_argument("--ig-tolerance", type=float,
                   help=f"refine IG until its completeness gap is within this share, as evaluate does (default "
                        f"{EVALUATE_IG_TOLERANCE}; 0: the fixed rule of --ig-steps)")
    p.add_argument("--ig-max-steps", type=int, help=f"the tolerance scheme's step cap (default {IG_MAX_STEPS})")
    p.add_argument("--maps-for-good", action="store_true", default=None,
                   help="also compute maps of defect-free images (no TKO; default: prediction only)")
    p.add_argument("--chunk", type=int, help=f"images per task (default {DEFAULT_CHUNK}; see pixel_evidence/sweep/spec.py)")
    p.add_argument("--batch-size", type=int, help="images per forward inside a task (default 8)")
    p.add_argument("--device", help="cpu (default) or cuda: CUDA tasks go to workers with the GPU resource")
    p.add_argument("--plan", action="store_true", help="print the tasks and expected CPU/GPU hours; run nothing")
    p.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--workers", type=int, help="worker processes of the local cluster (default: one per core)")
    p.add_argument("--dashboard-address", default=":8787",
                   help="where the local cluster serves Dask's dashboard (default :8787; 'none' for none)")


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    from pixel_evidence.results.sweep_store import SWEEP_SUBDIR  # pyarrow: not for --help

    methods = None if args.methods is None else expand_methods(args.methods)
    overrides = {"out": Path(args.out) if args.out else None, "seeds": tuple(args.seeds) if args.seeds else None,
                 "splits": tuple(args.splits) if args.splits else None, "methods": methods,
                 "metrics": tuple(args.metrics) if args.metrics is not None else None, "target": args.target,
                 "maps_for_good": args.maps_for_good, "chunk": args.chunk, "batch_size": args.batch_size,
                 "device": args.device}
    if args.data or args.models or not args.spec:  # no spec and no folders: the built-in data and shipped models
        from pixel_evidence.data.synthetic import resolve_data

        data = args.data or ([str(resolve_data(None))] if not args.spec else [])
        models = args.models or ([str(SHIPPED_MODELS)] if len(data) == 1 else [])
        overrides["categories"] = categories_from_flags(data, models, args.manifest)
    if args.spec:
        spec = read_spec(Path(args.spec), **overrides)
    else:
        categories = overrides.get("categories", ())
        default_out = (default_results(categories[0].models, write_shipped=args.write_shipped) / SWEEP_SUBDIR
                       if categories else None)
        spec = SweepSpec(**{"out": default_out, **{k: v for k, v in overrides.items() if v is not None},
                            "categories": categories})
    # IG as evaluate computes it, unless the sweep file or the flags say otherwise
    flags = (args.ig_steps, args.ig_tolerance, args.ig_max_steps)
    if "ig" not in spec.method_params or any(v is not None for v in flags):
        tolerance = EVALUATE_IG_TOLERANCE if args.ig_tolerance is None else args.ig_tolerance
        ig = ig_params(args.ig_steps or 25, tolerance, args.ig_max_steps or IG_MAX_STEPS)
        spec = replace(spec, method_params={**spec.method_params, "ig": ig})
    return spec


def print_plan(spec: SweepSpec, tasks, workers: int | None = None) -> None:
    """The plan's tasks and costs; the wall times for ``workers`` (the cluster it would run
    on, when known) first, then for the usual sizes."""
    costs = method_costs(ig_refined=spec.ig_refined)
    cost = plan_cost(tasks, costs, gpu=spec.wants_gpu)
    kind = "GPU" if spec.wants_gpu else "CPU"
    print(f"{cost.tasks} tasks over {len(spec.categories)} categories: {cost.images} (image, seed, split) "
          f"predictions, {cost.maps} maps")
    print(f"expected CPU hours {cost.cpu_hours:.2f}, GPU hours {cost.gpu_hours:.2f} (costs: {cost.source})")
    for m in spec.methods:
        if m not in costs.seconds:  # the plan let it through: an imported method
            print(f"  {m:<14} imported: maps read, not computed")
            continue
        hours = sum(t.n_mapped for t in tasks if m in t.methods) * costs.seconds[m] / 3600
        if spec.wants_gpu and costs.device == "cpu":
            hours /= GPU_SPEEDUP
        print(f"  {m:<14} {costs.seconds[m]:7.3f} s/map  {hours:8.2f} {kind} h")
    counts = (workers, *(n for n in PLAN_WORKERS if n != workers)) if workers else PLAN_WORKERS
    print("wall time, tasks spread evenly: " + ", ".join(f"{n} worker(s) {cost.wall_hours(n):.2f} h"
                                                         for n in counts))


def run_command(args: argparse.Namespace) -> int:
    from pixel_evidence.sweep.plan import plan  # torch and Dask: only when the command runs
    from pixel_evidence.sweep.run import dashboard_link, default_workers, open_client, run_sweep

    spec = spec_from_args(args)
    tasks = plan(spec)
    if not args.plan:
        writable(spec.out, write_shipped=args.write_shipped, option="the sweep's store")
    if args.plan:  # an outside scheduler's worker count is not known before connecting
        print_plan(spec, tasks, args.workers or (None if args.scheduler else default_workers()))
        return 0
    address = None if args.dashboard_address == "none" else args.dashboard_address
    with open_client(args.scheduler, args.workers, address, gpu=spec.wants_gpu) as client:
        # with the dashboard off, Dask still formats a link from its config: print none then
        link = dashboard_link(client) if (args.scheduler or address) else None
        if link:
            print(f"Dask dashboard: {link}")
        report = run_sweep(client, tasks, spec)
    print(f"{report.planned} tasks: {len(report.done)} run now, {report.skipped} finished before; "
          f"{sum(r.rows for r in report.done)} rows written to {spec.out}/rows"
          + (f"; {report.pruned} superseded file(s) removed" if report.pruned else ""))
    if report.significance:
        print(f"significance tables: {', '.join(sorted({str(p.parent) for p in report.significance}))}")
    for line in report.significance_notes:
        print(f"significance: {line}")
    for label, image_id, error in report.failures:
        print(f"failed: {label}: {image_id}: {error}")
    for label, error in report.task_errors:
        print(f"task failed: {label}: {error}")
    if not report.complete:
        print(f"{len(report.failures)} image(s) and {len(report.task_errors)} task(s) failed; fix them and rerun "
              "the same command (finished tasks are skipped)")
        return 1
    return 0

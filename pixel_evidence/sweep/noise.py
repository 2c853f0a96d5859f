"""``pixel-evidence noise``: the stochastic methods' own noise, as extra draws of a sweep.

Draw D of the study is a sweep of the stochastic methods on one model seed and split with
each method's ``seed`` parameter set to D (:func:`draw_spec`); the whole-field sweep store
already holds draw 0, seed 0 being every method's default. Each draw's store resumes like
any sweep: a killed study loses at most its running tasks. When the draws are in, the
study's tables are written (:mod:`pixel_evidence.results.noise_study`); with
``--counts`` it also measures each method's convergence curve over its sample count
(:mod:`pixel_evidence.sweep.sample_counts`) on the first ``--count-images`` ranked images.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pixel_evidence.choices import parse_seeds
from pixel_evidence.methods import METHODS, STOCHASTIC_METHODS
from pixel_evidence.run_folders import SHIPPED_MODELS, writable
from pixel_evidence.sweep.spec import Category, SweepSpec, categories_from_flags

DEFAULT_DRAWS = 5
# Sample counts of each method's convergence curve: its default, a quarter and half of it, and twice it.
CURVE_FACTORS = (0.25, 0.5, 1, 2)


def add_noise_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="the category's data folder (default: the built-in synthetic set)")
    p.add_argument("--models", help="its models folder (default: pretrained_models/)")
    p.add_argument("--manifest", help="split manifest (default: <models>/manifest.csv)")
    p.add_argument("--field", help="the whole-field sweep store whose rows are draw 0 (default: "
                                   "<models>/results/sweep)")
    p.add_argument("--out", help="the study's folder (default: <models>/results/noise)")
    p.add_argument("--write-shipped", action="store_true",
                   help="allow the study to be in the checkout's shipped pretrained_models/")
    p.add_argument("--seed", type=parse_seeds, help="the model seed (default: the field's first)")
    p.add_argument("--split", choices=["test", "train"], default="test", help="default: test")
    p.add_argument("--draws", type=int, default=DEFAULT_DRAWS,
                   help=f"draws of each stochastic method, draw 0 included (default {DEFAULT_DRAWS})")
    p.add_argument("--methods", nargs="+", choices=STOCHASTIC_METHODS, default=list(STOCHASTIC_METHODS),
                   help=f"stochastic methods to study (default: all of them, {' '.join(STOCHASTIC_METHODS)})")
    p.add_argument("--counts", action="store_true",
                   help="also measure each method's convergence over its sample count (x0.25 to x2 its default)")
    p.add_argument("--count-images", type=int, default=6, help="images of the convergence curve (default 6)")
    p.add_argument("--workers", type=int, help="worker processes of the local cluster (default: one per core)")


def draw_spec(category: Category, seed: int, split: str, methods: list[str], draw: int, out: Path) -> SweepSpec:
    """The sweep of one draw: the stochastic methods with ``seed`` = ``draw``, into its own store."""
    from pixel_evidence.results.noise_study import draw_store

    return SweepSpec(categories=(category,), out=draw_store(out, draw), seeds=(seed,), splits=(split,),
                     methods=tuple(methods), method_params={m: {"seed": draw} for m in methods})


def curve_counts(method_key: str) -> list[int]:
    """The sample counts of a method's convergence curve, around its default."""
    explainer = METHODS[method_key].explainer()
    default = int(explainer.defaults[METHODS[method_key].random_samples])
    return [max(1, round(default * f)) for f in CURVE_FACTORS]


def run_noise(args: argparse.Namespace) -> int:
    from pixel_evidence.data.synthetic import ensure_default_data
    from pixel_evidence.results.noise_study import COUNTS_FILE, noise_dir, write_study
    from pixel_evidence.results.sweep_store import read_store, sweep_dir
    from pixel_evidence.sweep.plan import plan
    from pixel_evidence.sweep.run import open_client, run_sweep

    if args.draws < 2:
        raise ValueError(f"--draws {args.draws}: the noise needs at least 2 draws")
    models = Path(args.models) if args.models else SHIPPED_MODELS
    data = Path(args.data) if args.data else ensure_default_data()
    (category,) = categories_from_flags([str(data)], [str(models)], [args.manifest] if args.manifest else [])
    field_store = Path(args.field) if args.field else sweep_dir(models)
    out = writable(Path(args.out) if args.out else noise_dir(models), write_shipped=args.write_shipped,
                   option="the study's folder")
    field = read_store(field_store)
    if category.name not in field.categories:
        raise ValueError(f"{field_store} has no rows of {category.name}; run `pixel-evidence sweep --methods all` "
                         "on it first (its rows are the study's draw 0)")
    rows = field.category(category.name)
    seed = args.seed[0] if args.seed else int(rows["seed"].min())
    rows = rows[(rows["seed"] == seed) & (rows["split"] == args.split)]
    lacking = sorted(set(args.methods) - set(rows["method"]))
    if rows.empty or lacking:
        raise ValueError(f"{field_store}: seed {seed} {args.split} lacks {', '.join(lacking) or 'every method'}; "
                         "sweep them first (their rows are the study's draw 0)")
    methods = [m for m in STOCHASTIC_METHODS if m in args.methods]
    # draw 0 is seed 0, every method's default: the field's rows must have been made with the defaults
    expected = {t.methods[0]: t.settings_sha256 for t in plan(draw_spec(category, seed, args.split, methods, 0, out))}
    made = rows.groupby("method")["settings_sha256"].first()
    other = [m for m in methods if made[m] != expected[m]]
    if other:
        raise ValueError(f"{field_store}: the rows of {', '.join(other)} were made with other settings than the "
                         "defaults (another sample count, seed or extra scores); the study's draws use the defaults "
                         "and would not be comparable with them")
    specs = [draw_spec(category, seed, args.split, methods, d, out) for d in range(1, args.draws)]
    with open_client(None, args.workers, None) as client:
        for spec in specs:
            report = run_sweep(client, plan(spec), spec)
            if not report.complete:
                print(f"draw store {spec.out}: {len(report.task_errors)} task(s) failed; rerun the same command")
                return 1
    draws = {d: read_store(s.out).category(category.name) for d, s in enumerate(specs, start=1)}
    about = {"category": category.name, "seed": seed, "split": args.split, "field": str(field_store),
             "params": {m: METHODS[m].explainer().defaults for m in methods}}
    summary = write_study(out, rows, draws, methods, about)
    if args.counts:
        import pandas as pd

        from pixel_evidence.sweep.sample_counts import count_rows
        from pixel_evidence.files import atomic_write_text

        ranked = sorted(rows.loc[rows["correct"].astype(bool) & rows["tko"].notna(), "image_id"].unique())
        images = ranked[:args.count_images]
        curves = [count_rows(category.data, category.models, seed, images, m, curve_counts(m),
                             manifest=category.manifest, progress=print) for m in methods]
        atomic_write_text(out / COUNTS_FILE, pd.concat(curves, ignore_index=True).to_csv(index=False))
    print(json.dumps({k: summary[k] for k in ("n_images", "n_draws", "winner_changes", "robust_images",
                                              "ties_within_noise")}))
    print(f"wrote the study to {out}")
    return 0

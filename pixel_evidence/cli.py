"""The ``pixel-evidence`` command line (also ``python -m pixel_evidence``).

    pixel-evidence data generate   [--out DIR]              built-in synthetic set
    pixel-evidence data download   CATEGORY [--archive PATH | --url URL] [--data-dir DIR]  real MVTec AD category
    pixel-evidence data split      --data DIR --out FILE     split manifest
    pixel-evidence data sheet      --data DIR --out PNG      contact sheet
    pixel-evidence data rename-ids --data DIR --models DIR   earlier image ids -> current ones
    pixel-evidence train           [--data DIR] [--models DIR] [--seeds 42-51] ...
    pixel-evidence evaluate        [--data DIR] [--models DIR] [--out DIR] ...
    pixel-evidence import-maps     SOURCE --models DIR [--splits test]  maps made elsewhere, ranked beside ours
    pixel-evidence dissect         --stage STAGE [--split test] [--seeds 42 43] ...  units vs. defect masks
    pixel-evidence sweep           --spec FILE | --data DIR... --models DIR... [--plan] [--scheduler ADDRESS]
    pixel-evidence significance    [--results DIR] [--store DIR]  the significance tables from existing rows

The speed and memory benchmark is not a subcommand: it lives in the checkout, outside the
installed package, and runs as ``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields
from pathlib import Path

# Only torch-free modules at the top: the commands that need a network import theirs.
from pixel_evidence.analyses import ANALYSES, FAITHFULNESS, SANITY, AnalysisSettings
from pixel_evidence.choices import (BACKBONES, EVALUATE_IG_TOLERANCE, FAITHFULNESS_STARTS, IG_MAX_STEPS, KINDS, METRICS,
                                    SCORES, TARGETS, TRAINING_MODES, ig_params, parse_seeds)
from pixel_evidence.data import LAYOUTS, DataError, download, layout_of, prepare_manifest, synthetic
from pixel_evidence.dissection.table import UNION_RULES
from pixel_evidence.files import remove_stale_temp_files
from pixel_evidence.methods import DEFAULT_METHODS, METHODS
from pixel_evidence.run_folders import RUNS, SHIPPED_MODELS, default_results, writable


def _cmd_generate(args) -> int:
    root = Path(args.out) if args.out else synthetic.default_data_root()
    if args.out:
        try:
            synthetic.generate(root, seed=args.seed)
        except FileExistsError:  # a user's choice of folder: one line, like every input error
            raise DataError(f"{root} exists and is not an empty folder; delete it or pick another --out") from None
    else:
        synthetic.ensure_default_data(root)
    print(f"{root}  fingerprint {synthetic.fingerprint(root)[:16]}")
    return 0


def _cmd_split(args) -> int:
    root = synthetic.resolve_data(args.data)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise DataError(f"{out} exists; pass --force to replace it (models trained on it will no longer load)")
    if out.exists():
        out.unlink()
    remove_stale_temp_files(out.parent)  # a killed split's half-written manifest
    samples = prepare_manifest(root, out, test_fraction=args.test_fraction, split_seed=args.split_seed,
                               skip_bad=args.skip_bad, report=lambda m: print(m, file=sys.stderr),
                               layout=args.layout, mask_threshold=args.mask_threshold)
    counts: dict[tuple[str, str], int] = {}
    for s in samples:
        counts[(s.cls, s.split)] = counts.get((s.cls, s.split), 0) + 1
    classes = sorted({c for c, _ in counts})
    width = max(10, *map(len, classes))  # LOCO's structural_anomalies is 20 characters
    for cls in classes:
        print(f"{cls:>{width}}: train {counts.get((cls, 'train'), 0):4d}  test {counts.get((cls, 'test'), 0):4d}")
    print(f"wrote {out}")
    return 0


def _cmd_sheet(args) -> int:
    out = synthetic.contact_sheet(synthetic.resolve_data(args.data), Path(args.out), per_class=args.per_class)
    print(f"wrote {out}")
    return 0


def _cmd_rename_ids(args) -> int:
    from pixel_evidence.results.id_migration import rename_image_ids

    rename_image_ids(synthetic.resolve_data(args.data), Path(args.models),
                     results_dir=Path(args.results) if args.results else None)
    return 0


def _cmd_train(args) -> int:
    from pixel_evidence.models.train import TrainConfig, train_seeds

    models = writable(args.models, write_shipped=args.write_shipped, option="--models")
    root = synthetic.resolve_data(args.data)
    manifest = Path(args.manifest) if args.manifest else models / "manifest.csv"
    prepare_manifest(root, manifest, test_fraction=args.test_fraction, split_seed=args.split_seed,
                     skip_bad=args.skip_bad, report=lambda m: print(m, file=sys.stderr), layout=args.layout,
                     mask_threshold=args.mask_threshold)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.model_module and args.backbone:
        raise ValueError(f"--backbone {args.backbone} and --model-module both choose the network; pass one of them")
    backbone = args.backbone or "efficientnet_lite0"
    cfg = TrainConfig(seeds=args.seeds, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      beta=args.beta, image_size=args.image_size, backbone=backbone,
                      pretrained=backbone != "none" and not args.no_pretrained,
                      kind=args.kind or ("classifier" if args.model_module else "multitask"), mode=args.mode,
                      freeze_blocks=args.freeze_blocks, cam_layer=args.cam_layer, model_module=args.model_module,
                      split_seed=args.split_seed, device=args.device)
    if args.workers or args.scheduler:  # one seed per Dask task
        from pixel_evidence.sweep.run import open_client
        from pixel_evidence.sweep.training import dask_map

        with open_client(args.scheduler, args.workers, None) as client:
            results = train_seeds(cfg, root, manifest, models, force=args.force,
                                  map_seeds=dask_map(client, threads=args.threads or 1,
                                                     gpu=str(args.device).startswith("cuda")))
    else:
        results = train_seeds(cfg, root, manifest, models, force=args.force)
    for meta in results:
        f = meta["final_metrics"]
        print(f"seed {meta['seed']}: epoch {meta['selected_epoch']}  "
              f"train bacc {f['train']['balanced_accuracy']:.3f}  test bacc {f['test']['balanced_accuracy']:.3f}")
    return 0


def _cmd_evaluate(args) -> int:
    from pixel_evidence.engine.explain import ExplanationEngine
    from pixel_evidence.evaluate import evaluate
    from pixel_evidence.results import SUMMARY_FILE, TABLE_FILE, WIN_RATES_FILE
    from pixel_evidence.significance_tables import SIGNIFICANCE_TABLES, results_significance_dir

    # the analysis options left unset take AnalysisSettings' defaults
    settings = AnalysisSettings(**{f.name: getattr(args, f.name) for f in fields(AnalysisSettings)
                                   if getattr(args, f.name) is not None})

    models = Path(args.models)
    out = writable(args.out or default_results(models, write_shipped=args.write_shipped), write_shipped=args.write_shipped,
                   option="--out")
    root = synthetic.resolve_data(args.data)
    if args.layout:  # the manifest says which files to read; this checks --data is the folder meant
        layout_of(root, args.layout)
    engine = ExplanationEngine(root, models, manifest=args.manifest, device=args.device,
                               method_params={"ig": ig_params(args.ig_steps, args.ig_tolerance, args.ig_max_steps)})
    if args.from_sweep:  # the tables of a sweep's store, nothing computed
        from pixel_evidence.evaluate import export_from_store

        summary = export_from_store(engine, Path(args.from_sweep), args.category or root.resolve().name, out,
                                    target=args.target, include_misclassified=args.include_misclassified)
    else:
        summary = evaluate(engine, out, seeds=args.seeds or None, splits=args.splits, methods=args.methods,
                           target=args.target, include_misclassified=args.include_misclassified, force=args.force,
                           batch_size=args.batch_size, extra_metrics=args.metrics,
                           maps_for_good=args.maps_for_good, settings=settings)
    labels = engine.method_labels()
    if "seeds" not in summary:
        print("nothing evaluated", file=sys.stderr)
    elif "column_notes" in summary:  # data without masks
        print("TKO, the other mask scores and win rates: needs masks (the data has none; the columns are empty)")
    else:
        print(f"win rates over seeds ({summary['counted_images']}), mean +- std [95% bootstrap interval]:")
        for row in summary["win_rates_across_seeds"]:
            if row["class"] == "overall":
                print(win_rate_line(row, labels[row["method"]], args.include_misclassified))
    for row in summary.get(FAITHFULNESS.name, []):
        print(f"  {row['split']:>5}  {labels[row['method']]:<22} deletion AUC {row['deletion_auc_mean']:.3f}  "
              f"insertion AUC {row['insertion_auc_mean']:.3f}  ({row['start']} start, {row['n_images']} images)")
    for row in summary.get(SANITY.name, []):
        print(f"  {row['split']:>5}  {labels[row['method']]:<22} randomization check passed on "
              f"{row['n_passed']} of {row['n_images']} images")
    if "seeds" in summary:
        written = [TABLE_FILE, WIN_RATES_FILE, SUMMARY_FILE] + [a.file for a in ANALYSES.values() if a.name in summary]
        tests = results_significance_dir(out)
        written += [f"{tests.name}/{t.file}" for t in SIGNIFICANCE_TABLES.values() if (tests / t.file).is_file()]
        print(f"wrote {out}/: {', '.join(written)}")
    for line in summary.get("significance_notes", []):
        print(f"significance: {line}")
    # bad inputs were skipped and the rest evaluated: each named once, and the exit code says so
    left_out = [*summary.get("skipped", []), *summary.get("empty_masks", [])]
    for line in left_out:
        print(f"skipped {line}", file=sys.stderr)
    return 1 if left_out else 0


def _cmd_import_maps(args) -> int:
    from pixel_evidence.imported_maps import import_maps

    models = writable(args.models, write_shipped=args.write_shipped, option="--models")
    written, problems = import_maps(Path(args.source), models, manifest=Path(args.manifest) if args.manifest else None,
                                    splits=args.splits, force=args.force)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        raise ValueError(f"{len(problems)} problem(s) in {args.source}, one per line above; nothing imported")
    for path in written:
        print(f"wrote {path}")
    names = " ".join(path.stem for path in written)
    print(f"rank them: pixel-evidence evaluate --models {models} --splits {' '.join(args.splits)} "
          f"--methods {' '.join(DEFAULT_METHODS)} {names}")
    return 0


def win_rate_line(row: dict, label: str, include_misclassified: bool) -> str:
    """One method's win rate over seeds, or why it has none: no seed had a defect image to
    count, which without ``--include-misclassified`` means every one was misclassified."""
    head = f"  {row['split']:>5}  {label:<22} "
    if row["n_seeds"] and row["mean"] == row["mean"]:  # NaN != NaN
        return (head + f"{row['mean']:.3f} +- {row['std']:.3f}  [{row['ci_low']:.3f}, {row['ci_high']:.3f}]  "
                       f"({row['n_seeds']} seeds)")
    if include_misclassified:
        return head + "no win rate: no seed has a defect image in this split"
    return head + ("no win rate: every seed misclassified every defect image, and only correctly classified ones "
                   "are counted; pass --include-misclassified to count them all")


def _add_write_shipped_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--write-shipped", action="store_true",
                   help="allow writing into the checkout's shipped folders (pretrained_models/, benchmarks/results/)")


def _cmd_dissect(args) -> int:
    from pixel_evidence.dissection.table import DISSECTION_SUBDIR, detector_counts
    from pixel_evidence.engine.dissector import dissect_seeds
    from pixel_evidence.engine.explain import ExplanationEngine

    models = Path(args.models)
    out = writable(args.out or default_results(models, write_shipped=args.write_shipped) / DISSECTION_SUBDIR,
                   write_shipped=args.write_shipped, option="--out")
    engine = ExplanationEngine(synthetic.resolve_data(args.data), models, manifest=args.manifest, device=args.device)
    seeds = sorted({s for group in args.seeds for s in group}) if args.seeds else engine.pool.seeds
    missing = [s for s in seeds if s not in engine.pool.seeds]
    if missing:
        raise ValueError(f"--seeds {missing}: no usable model in {models}; available: {engine.pool.seeds}")
    table = dissect_seeds(engine.dissector, out, seeds=seeds, stages=args.stage, split=args.split, force=args.force,
                          batch_size=args.batch_size, union=args.union, report=lambda m: print(m, file=sys.stderr))
    counts = detector_counts(table[table["seed"].isin(seeds) & (table["split"] == args.split)])
    print(f"detector units (IoU >= 0.04) per class, mean +- std over seeds ({args.split}):")
    for row in counts.to_dict("records"):
        print(f"  {row['stage']:<12} {row['class']:<10} {row['mean']:6.1f} +- {row['std']:.1f}  "
              f"({row['n_seeds']} seeds)")
    print(f"wrote {out}/dissection.csv")
    return 0


def _cmd_sweep(args) -> int:
    from pixel_evidence.sweep.command import run_command

    return run_command(args)


def _cmd_noise(args) -> int:
    from pixel_evidence.sweep.noise import run_noise

    return run_noise(args)


def _cmd_significance(args) -> int:
    from pixel_evidence.significance_tables import write_results_significance, write_store_significance

    if not (args.results or args.store):
        raise ValueError("give --results DIR (an evaluation's results folder), --store DIR (a sweep's store), or both")
    written, notes = [], []
    if args.results:
        folder = writable(args.results, write_shipped=args.write_shipped, option="--results")
        paths, lines = write_results_significance(folder, alpha=args.alpha,
                                                  include_misclassified=args.include_misclassified)
        written += paths
        notes += lines
    if args.store:
        paths, lines = write_store_significance(writable(args.store, write_shipped=args.write_shipped,
                                                         option="--store"), alpha=args.alpha)
        written += paths
        notes += lines
    for path in written:
        print(f"wrote {path}")
    for line in notes:
        print(f"significance: {line}")
    return 0


def _add_data_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="data folder, e.g. an MVTec AD category (default: the built-in synthetic set)")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable or inconsistent files, reporting each")


def _add_layout_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layout", choices=tuple(LAYOUTS),
                   help="how --data is arranged (default: recognised): "
                        + "; ".join(f"{layout.name}: {layout.tree}" for layout in LAYOUTS.values()))


def _add_split_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--test-fraction", type=float, default=0.2, help="share of each class put in test (default 0.2)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/test re-split (default 0)")
    p.add_argument("--mask-threshold", type=float, metavar="SHARE",
                   help="a mask pixel is defect above this share of the mask's highest value, recorded in the "
                        "manifest (default 0.5, half its range, which reads grey JPEG masks right; visa: 0, every "
                        "value above 0, for its label masks)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixel-evidence", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="built-in data, real data download, split manifest")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    gen = data_sub.add_parser("generate", help="write the built-in synthetic hazelnut set")
    gen.add_argument("--out", help="target folder (default: the cache folder used by the dashboard)")
    gen.add_argument("--seed", type=int, default=0)
    gen.set_defaults(func=_cmd_generate)
    dl = data_sub.add_parser("download", help="unpack an MVTec AD category from an archive downloaded by hand or a link")
    download.add_download_arguments(dl)
    dl.set_defaults(func=download.run_download)
    split = data_sub.add_parser("split", help="write the stratified train/test manifest")
    _add_data_option(split)
    _add_layout_option(split)
    _add_split_options(split)
    split.add_argument("--out", required=True, help="manifest CSV to write")
    split.add_argument("--force", action="store_true")
    split.set_defaults(func=_cmd_split)
    sheet = data_sub.add_parser("sheet", help="contact sheet PNG of a few images per class with mask outlines")
    _add_data_option(sheet)
    sheet.add_argument("--out", required=True)
    sheet.add_argument("--per-class", type=int, default=4)
    sheet.set_defaults(func=_cmd_sheet)
    rename = data_sub.add_parser("rename-ids", help="move a models folder and its results to the current image ids")
    _add_data_option(rename)
    rename.add_argument("--models", required=True, help="models folder (manifest.csv, seed_N.json)")
    rename.add_argument("--results", help="results folder (default: MODELS/results)")
    rename.set_defaults(func=_cmd_rename_ids)

    train = sub.add_parser("train", help="train a model over seeds (the multitask network by default)")
    _add_data_option(train)
    _add_layout_option(train)
    _add_split_options(train)
    train.add_argument("--models", default=str(RUNS / "models"), help="output folder (default: runs/models)")
    _add_write_shipped_option(train)
    train.add_argument("--manifest", help="split manifest (default: <models>/manifest.csv, created if missing)")
    train.add_argument("--seeds", type=parse_seeds, default=list(range(42, 52)), help="e.g. 42-51 (default)")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--beta", type=float, default=1.0, help="weight of the mask BCE loss (default 1)")
    train.add_argument("--image-size", type=int, default=224)
    train.add_argument("--backbone", choices=BACKBONES,
                       help="encoder, with its ImageNet weights (default efficientnet_lite0, whose weights install "
                            "offline; torchvision's are read from $TORCH_HOME/hub/checkpoints or downloaded); "
                            "none: EfficientNet-B0 from a random init")
    train.add_argument("--no-pretrained", action="store_true", help="start the backbone from a random init")
    train.add_argument("--kind", choices=KINDS,
                       help="multitask: encoder + mask decoder + classifier (default); classifier: encoder + "
                            "global average pool + linear")
    train.add_argument("--mode", choices=TRAINING_MODES, default="partial",
                       help="partial: freeze the first --freeze-blocks encoder stages (default); fine-tune: train "
                            "everything; feature-extraction: freeze the encoder, train the head")
    train.add_argument("--freeze-blocks", type=int, default=0,
                       help="with --mode partial: freeze the first N encoder stages (EfficientNet has 9, ResNet "
                            "and VGG 5; default 0: all trainable)")
    train.add_argument("--cam-layer", metavar="PATH",
                       help="module path of the layer Grad-CAM reads, e.g. encoder.layer4 (default: the last conv "
                            "block)")
    train.add_argument("--model-module", metavar="FILE.py:FUNCTION",
                       help="your own classifier: FUNCTION(num_classes) returns pixel_evidence.models.UserModel "
                            "(see examples/tiny_model.py)")
    train.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    train.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice)")
    train.add_argument("--force", action="store_true", help="retrain seeds that already exist")
    train.add_argument("--workers", type=int, help="train seeds in parallel on a local Dask cluster of N processes")
    train.add_argument("--scheduler", metavar="ADDRESS", help="train seeds as tasks of an existing Dask cluster")
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="explain every image with every method; write TKO tables and win rates")
    _add_data_option(ev)
    _add_layout_option(ev)
    ev.add_argument("--models", default=str(SHIPPED_MODELS), help="checkpoint folder (default: pretrained_models/)")
    ev.add_argument("--manifest", help="split manifest (default: <models>/manifest.csv)")
    ev.add_argument("--out", help="results folder (default: <models>/results; runs/results for the shipped models)")
    _add_write_shipped_option(ev)
    ev.add_argument("--seeds", type=parse_seeds, help="subset of seeds (default: all in --models)")
    ev.add_argument("--splits", nargs="+", default=["test", "train"], choices=["test", "train"],
                    help="splits to evaluate, in this order (default: test train)")
    ev.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), metavar="METHOD",
                    help=f"computed methods ({', '.join(METHODS)}) and imported ones (see import-maps); "
                         f"default {' '.join(DEFAULT_METHODS)}")
    ev.add_argument("--metrics", nargs="*", default=[], choices=METRICS,
                    help=f"beside TKO, lift and IoU: localisation scores ({', '.join(SCORES)}) in the main table; "
                         "analyses with tables of their own: "
                         + ", ".join(f"{a.name} ({a.note})" for a in ANALYSES.values()))
    defaults = AnalysisSettings()
    ev.add_argument("--agreement-fraction", type=float,
                    help=f"top share of pixels compared by the agreement IoU (default {defaults.agreement_fraction})")
    ev.add_argument("--faithfulness-start", choices=FAITHFULNESS_STARTS,
                    help="what deleted pixels become, and where insertion starts "
                         f"(default {defaults.faithfulness_start})")
    ev.add_argument("--faithfulness-steps", type=int,
                    help=f"points per deletion/insertion curve (default {defaults.faithfulness_steps})")
    ev.add_argument("--sanity-images", type=int,
                    help=f"images per seed and split for the randomization check (default {defaults.sanity_images}; "
                         "each costs about ten map computations per method)")
    ev.add_argument("--maps-for-good", action="store_true",
                    help="also compute maps of defect-free images (they have no TKO; default: prediction only)")
    ev.add_argument("--target", choices=TARGETS, default="predicted", help="class the maps explain")
    ev.add_argument("--ig-tolerance", type=float, default=EVALUATE_IG_TOLERANCE,
                    help="refine each Integrated Gradients path until the completeness gap is at most this share "
                         f"of the score change (default {EVALUATE_IG_TOLERANCE:g}); 0: a fixed rule of --ig-steps")
    ev.add_argument("--ig-max-steps", type=int, default=IG_MAX_STEPS,
                    help=f"step cap of --ig-tolerance; images still above it are flagged (default {IG_MAX_STEPS})")
    ev.add_argument("--ig-steps", type=int, default=25,
                    help="Integrated Gradients steps of the fixed rule, with --ig-tolerance 0 (default 25)")
    ev.add_argument("--include-misclassified", action="store_true",
                    help="count misclassified defect images in win rates (default: correct ones only)")
    ev.add_argument("--batch-size", type=int, default=8)
    ev.add_argument("--device", default="auto")
    ev.add_argument("--force", action="store_true", help="recompute seeds that were already evaluated")
    ev.add_argument("--from-sweep", metavar="STORE",
                    help="compute nothing: write the tables of one category of a `pixel-evidence sweep` store")
    ev.add_argument("--category", help="with --from-sweep: the category (default: the --data folder's name)")
    ev.set_defaults(func=_cmd_evaluate)

    im = sub.add_parser("import-maps", help="maps made elsewhere (.npy, .npz, 16-bit .png), checked and stored "
                                            "beside the models, then ranked like the computed methods")
    im.add_argument("source", help="folder or archive (.zip, .tar, .tar.gz, .tar.xz, .tar.bz2) holding "
                                   "<method>/<image id>.npy, or <method>/seed_<n>/<image id>.npy per model seed")
    im.add_argument("--models", required=True, help="models folder the maps are ranked in (manifest.csv, seed_N.json)")
    im.add_argument("--manifest", help="split manifest (default: <models>/manifest.csv)")
    im.add_argument("--splits", nargs="+", default=["test"], choices=["test", "train"],
                    help="splits whose every image needs a map (default: test)")
    im.add_argument("--force", action="store_true", help="replace methods imported before under the same names")
    _add_write_shipped_option(im)
    im.set_defaults(func=_cmd_import_maps)

    di = sub.add_parser("dissect", help="Network Dissection: which units of a stage fire on which defect class's "
                                        "masks (IoU per unit and class, over a split)")
    _add_data_option(di)
    di.add_argument("--models", default=str(SHIPPED_MODELS), help="checkpoint folder (default: pretrained_models/)")
    di.add_argument("--manifest", help="split manifest (default: <models>/manifest.csv)")
    di.add_argument("--stage", nargs="+", required=True, metavar="STAGE",
                    help="module path of an encoder stage, e.g. encoder.8 (the last block of EfficientNet) or "
                         "encoder.layer4 (ResNet); a wrong name lists the network's stages")
    di.add_argument("--split", choices=["test", "train"], default="test",
                    help="images dissected over (default test)")
    di.add_argument("--seeds", nargs="+", type=parse_seeds, help="e.g. 42 43 or 42-51 (default: all in --models)")
    di.add_argument("--out", help="output folder (default: <models>/results/dissection; runs/results/dissection "
                                  "for the shipped models)")
    _add_write_shipped_option(di)
    di.add_argument("--batch-size", type=int, default=16)
    di.add_argument("--device", default="auto")
    di.add_argument("--force", action="store_true", help="recompute seeds and stages already in --out")
    di.add_argument("--union", choices=UNION_RULES, default="all",
                    help="images whose firing counts in a class's union: all (default; defect-free ones too), "
                         "defect (defect images only), concept (the class's own images only)")
    di.set_defaults(func=_cmd_dissect)

    sw = sub.add_parser("sweep", help="categories x seeds x methods on a Dask cluster, into a Parquet store")
    from pixel_evidence.sweep.command import add_sweep_arguments

    add_sweep_arguments(sw)
    sw.set_defaults(func=_cmd_sweep)

    no = sub.add_parser("noise", help="the stochastic methods' own noise: more draws of their random seed on one model "
                                      "seed, spreads, winner changes, ties within noise")
    from pixel_evidence.sweep.noise import add_noise_arguments

    add_noise_arguments(no)
    no.set_defaults(func=_cmd_noise)

    sig = sub.add_parser("significance", help="which differences between methods are significant: Friedman, "
                                              "Nemenyi and Wilcoxon-Holm tables from rows already computed",
                         description="Rewrite the significance tables (friedman.csv, pairwise.csv, "
                                     "critical_difference.csv) from the rows an evaluation or a sweep already wrote, "
                                     "without recomputing any map: per score, split and seed, and pooled over seeds. "
                                     "evaluate and sweep write them when they finish; this command remakes them, "
                                     "e.g. after an interrupted run or with another --alpha.")
    sig.add_argument("--results", metavar="DIR", help="an evaluation's results folder (its tko_table.csv); writes "
                                                      "DIR/significance/")
    sig.add_argument("--store", metavar="DIR", help="a sweep's store; writes DIR/significance/category=NAME/ for "
                                                    "every category, over the seeds that have every method")
    sig.add_argument("--alpha", type=float, default=0.05, help="significance level of every test (default 0.05)")
    sig.add_argument("--include-misclassified", action="store_true",
                     help="with --results: count misclassified defect images too, as evaluate's option of that name "
                          "(default: correct ones only)")
    _add_write_shipped_option(sig)
    sig.set_defaults(func=_cmd_significance)

    return parser


def _input_errors() -> tuple[type[Exception], ...]:
    """Errors that mean bad input or missing files, printed as one line (DataError and
    CheckpointError are ValueErrors). WeightsUnavailableError is looked up only when
    pixel_evidence.models is loaded, the only way it can have been raised: the data commands never
    import torch."""
    models = sys.modules.get("pixel_evidence.models")
    return (ValueError, models.WeightsUnavailableError) if models else (ValueError,)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        return args.func(args)
    except _input_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished seeds are saved", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

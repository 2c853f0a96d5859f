"""Bring shipped results up to Integrated Gradients' convergence rule of 2026-12-07, computing
only what the rule changes.

The tolerance scheme used to count its initial 17-node grid as the first of the two gaps that
confirm convergence, so a single refinement (25 steps) could declare it. Now two refinements
must agree (``ig_path.confirmed``). Every other result is unchanged: an image that stopped at
37 or more steps was confirmed by the 25- and 37-step gaps, which the new rule asks for too,
and the scheme is deterministic. So only rows that say "converged at 25 steps" are recomputed:

- in each (seed, split) unit of ``RESULTS/per_seed``: the image's rows of every method in the
  main table (its ranks depend on IG's TKO) and its rows of each analysis table (sanity only
  where the image was one of the unit's checked images), with the unit's own settings;
- then ``pixel-evidence evaluate``'s tables are rebuilt from the units (nothing else is
  computed: every unit is finished);
- with ``--sweep STORE``: the sweep store's stale IG rows, replaced by the updated evaluate
  rows of the same images (the sweep runs IG with evaluate's settings).

A second run finds nothing to do.

    python -m benchmarks.ig_rule_update pretrained_models --sweep pretrained_models/results/sweep
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pixel_evidence.analyses import ANALYSES, SANITY, AnalysisSettings
from pixel_evidence.choices import ig_params
from pixel_evidence.cli import main as cli_main
from pixel_evidence.data import synthetic
from pixel_evidence.engine.explain import ExplanationEngine
from pixel_evidence.evaluate import unit_rows
from pixel_evidence.files import atomic_write_bytes, atomic_write_csv
from pixel_evidence.metrics.scores import EXTRA_SCORES
from pixel_evidence.results import TABLE_FILE

FIRST_REFINEMENT = 25  # 17 initial nodes + 8: where the old rule could stop
KEY = ["image_id", "method"]


def stale_images(unit: pd.DataFrame) -> list[str]:
    """Images of a unit whose IG row converged at the first refinement."""
    ig = unit[(unit["method"] == "ig") & (unit["ig_steps"] == FIRST_REFINEMENT) & (unit["ig_converged"] == 1)]
    return sorted(ig["image_id"])


def replace_rows(old: pd.DataFrame, new: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """``old`` with the rows whose ``key`` is in ``new`` replaced, in ``old``'s order."""
    new = new[old.columns].set_index(key)
    out = old.set_index(key)
    assert new.index.isin(out.index).all(), "a recomputed row has no row to replace"
    out.loc[new.index] = new
    return out.reset_index()[old.columns]


def update_unit(engine: ExplanationEngine, stem: Path, report) -> pd.DataFrame | None:
    """Recompute one unit's stale images in place; returns their new main rows (or None)."""
    main = pd.read_csv(stem.with_suffix(".csv"))
    ids = stale_images(main)
    if not ids:
        return None
    prov = json.loads(stem.with_suffix(".json").read_text())
    seed, split = int(main["seed"].iloc[0]), str(main["split"].iloc[0])
    methods = sorted(prov["methods"])
    order = list(dict.fromkeys(main["method"]))
    analyses = [a for a in ANALYSES if stem.with_suffix(f".{a}.csv").is_file()]
    settings = AnalysisSettings(**{**_settings_of(stem, analyses), "sanity_images": 1})
    new_main, new_extra = unit_rows(engine, seed, split, [m for m in order if m in methods],
                                    analyses=[a for a in analyses if a != SANITY.name], extra_metrics=prov["metrics"],
                                    settings=settings, image_ids=ids, progress=False)
    atomic_write_csv(stem.with_suffix(".csv"), replace_rows(main, new_main, KEY))
    for analysis in analyses:
        path = stem.with_suffix(f".{analysis}.csv")
        table = pd.read_csv(path)
        if analysis == SANITY.name:
            checked = [i for i in ids if i in set(table["image_id"])]
            if not checked:
                continue
            frames = [unit_rows(engine, seed, split, methods, main=False, analyses=[SANITY.name], settings=settings,
                                image_ids=[i], progress=False)[1][SANITY.name] for i in checked]
            rows = pd.concat(frames)
        else:
            rows = new_extra[analysis]
        atomic_write_csv(path, replace_rows(table, rows, list(ANALYSES[analysis].row_key)))
    report(f"seed {seed} {split}: recomputed {len(ids)} image(s): {', '.join(ids)}")
    return new_main


def _settings_of(stem: Path, analyses: list[str]) -> dict:
    """The AnalysisSettings fields recorded in the unit's analysis sidecars."""
    out = {}
    for analysis in analyses:
        recorded = json.loads(stem.with_suffix(f".{analysis}.json").read_text())["settings"]
        out.update({ANALYSES[analysis].settings[k]: v for k, v in recorded.items()})
    return out


def update_sweep(store: Path, table: pd.DataFrame, report) -> None:
    """Replace the sweep store's stale IG rows (converged at the first refinement) by the
    updated evaluate ``table``'s rows of the same images: the sweep runs IG with evaluate's
    settings, on other batches, so its rows agree with evaluate's up to summation order (and
    its stale images were the same 28 as evaluate's test ones)."""
    ig = table[(table["method"] == "ig") & (table["split"] == "test")].set_index(["seed", "image_id"])
    for path in sorted(store.glob("rows/category=*/seed=*/split=test/method=ig/*.parquet")):
        seed = int(path.parts[-4].split("=")[1])
        schema = pq.read_schema(path)
        rows = pq.read_table(path).to_pandas()
        stale = rows.index[rows["image_id"].isin(stale_images(rows.assign(method="ig")))]
        if stale.empty:
            continue
        new = ig.loc[[(seed, i) for i in rows.loc[stale, "image_id"]]]
        if (new["ig_steps"] == FIRST_REFINEMENT).any():
            raise SystemExit(f"{path}: evaluate's rows of its stale images are stale too; update evaluate first")
        for column in [c for c in rows.columns if c in new.columns and c not in ("rank", "win_share")]:
            rows.loc[stale, column] = new[column].to_numpy()
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pandas(rows, schema=schema, preserve_index=False), sink)
        atomic_write_bytes(path, sink.getvalue().to_pybytes())
        report(f"sweep seed {seed}: replaced {len(stale)} IG row(s) in {path.name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, help="the models folder whose results/ is updated")
    parser.add_argument("--sweep", type=Path, help="a sweep store whose IG rows of the same images follow")
    args = parser.parse_args(argv)
    results = args.models / "results"
    engine = ExplanationEngine(synthetic.ensure_default_data(), args.models, device="cpu",
                               method_params={"ig": ig_params(25, 0.05, 512)})
    updated = []
    try:
        for side in sorted((results / "per_seed").glob("seed_*_*.json")):
            if side.stem.count(".") == 0:  # a main unit, not an analysis sidecar
                rows = update_unit(engine, side.with_suffix(""), print)
                if rows is not None:
                    updated.append(rows)
    finally:
        engine.close()
    if updated:
        shipped = ["--models", str(args.models), "--out", str(results), "--write-shipped"]
        cli_main(["evaluate", *shipped, "--metrics", *EXTRA_SCORES])
        cli_main(["evaluate", *shipped, "--splits", "test", "--metrics", *EXTRA_SCORES, *ANALYSES])
    else:
        print("evaluate's units: nothing to update (no IG row converged at the first refinement)")
    if args.sweep:
        update_sweep(args.sweep, pd.read_csv(results / TABLE_FILE), print)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

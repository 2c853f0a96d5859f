"""Write the docs' results pages from the shipped result files, so no result is typed by hand.

Reads ``pretrained_models/results/`` (evaluate's tables, the sweep store, the dissection
table, the significance tables, whose page :mod:`docs.significance` writes),
``benchmarks/results/ig_fixed_steps/`` and ``ig_convergence.json`` (Integrated
Gradients before and after the tolerance scheme) and ``benchmarks/results/benchmark.json``
(the speed page). Run from the checkout's root after any of them changes:

    python -m docs.generate              # rewrites the pages under docs/ and README.md's headline
    python -m docs.generate --out DIR    # writes the pages under DIR instead (README.md untouched)

``tests/project/test_docs.py`` checks that the committed pages and the README's headline equal what
this writes.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GENERATED_NOTE = "<!-- Written by `python -m docs.generate` from the shipped result files; do not edit. -->\n\n"
MAIN_METHODS = ("ig", "saliency", "gradcam")  # the original study's three, in the order the tables list them
CAM_FAMILY = ("gradcam", "gradcam_pp", "xgradcam", "scorecam", "ablationcam", "cam")
SMOOTHED = ("smoothgrad", "smoothgrad_ig")
PERTURBATION = ("rise", "occlusion")
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
LAST_BLOCK, FROZEN_BLOCK = "encoder.8", "encoder.5"


@dataclass(frozen=True)
class Sources:
    """Where the shipped result files are (a checkout's by default)."""

    root: Path = ROOT

    @property
    def results(self) -> Path:
        return self.root / "pretrained_models" / "results"

    @property
    def ig_fixed_steps(self) -> Path:
        return self.root / "benchmarks" / "results" / "ig_fixed_steps"

    @property
    def ig_convergence(self) -> Path:
        return self.root / "benchmarks" / "results" / "ig_convergence.json"

    @property
    def benchmark(self) -> Path:
        return self.root / "benchmarks" / "results" / "benchmark.json"


# ------------------------------------------------------------------ formatting


def mean_std(mean: float, std: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def count_cell(mean: float, std: float) -> str:
    """A count over seeds: the whole number when every seed has it, else mean ± std."""
    return f"{mean:.0f}" if std == 0 and mean == round(mean) else mean_std(mean, std, 1)


def wins_cell(wins: float) -> str:
    """Images won: whole, or with one decimal when ties shared a win."""
    return f"{wins:g}" if wins == round(wins) else f"{wins:.1f}"


def in_words(n: int) -> str:
    return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)


def percent_range(shares: pd.Series) -> str:
    return f"{100 * shares.min():.0f}–{100 * shares.max():.0f}%"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def labels() -> dict[str, str]:
    from pixel_evidence.methods import method_labels

    return method_labels()


# ------------------------------------------------------------------ the numbers


def counted_rows(tko: pd.DataFrame) -> pd.DataFrame:
    """The rows the win rates count: correctly classified defect images."""
    return tko[tko["correct"].astype(bool) & tko["tko"].notna()]


def win_rate_over_seeds(tko: pd.DataFrame, score: str) -> pd.DataFrame:
    """Overall win rate per (split, method): mean and std (ddof 1) over seeds of each seed's
    rate from ``metrics.win_rates`` (a tie shares the win)."""
    from pixel_evidence import metrics

    rates = metrics.win_rates(tko, score=score)
    overall = rates[rates["class"] == metrics.OVERALL]
    return overall.groupby(["split", "method"])["win_rate"].agg(["mean", "std"])


def main_table(tko: pd.DataFrame) -> pd.DataFrame:
    """Per (split, method) over correctly classified defect images: win rates by TKO and by
    AUROC (``win_tko_*``, ``win_auroc_*``) and each score's mean of the seeds' means."""
    scores = ["tko", "lift", "pointing", "relevance_mass", "auroc"]
    counted = counted_rows(tko)
    means = counted.groupby(["split", "method", "seed"])[scores].mean().groupby(level=["split", "method"]).mean()
    by_tko = win_rate_over_seeds(tko, "tko").add_prefix("win_tko_")
    by_auroc = win_rate_over_seeds(tko, "auroc").add_prefix("win_auroc_")
    return means.join(by_tko).join(by_auroc)


def mask_free_table(faithfulness: pd.DataFrame, sanity: pd.DataFrame) -> pd.DataFrame:
    """Per method: deletion and insertion AUC (mean and std over seeds of each seed's mean),
    and the randomization check's final step: images checked, failed, Spearman mean/min/max."""
    per_seed = faithfulness.groupby(["method", "seed"])[["deletion_auc", "insertion_auc"]].mean()
    aucs = per_seed.groupby(level="method").agg(["mean", "std"])
    aucs.columns = [f"{column}_{stat}" for column, stat in aucs.columns]
    final = sanity[sanity["final"].astype(bool)]
    checks = final.groupby("method").agg(checked=("passed", "size"), failed=("passed", lambda p: int((~p).sum())),
                                         spearman=("spearman", "mean"), spearman_min=("spearman", "min"),
                                         spearman_max=("spearman", "max"))
    return aucs.join(checks)


@dataclass(frozen=True)
class WholeField:
    """The sweep store's test split, every method: ``ranking`` (per method: win rate mean and
    std over seeds, mean TKO of the seeds' means, seconds per image, most wins first) and
    ``wins`` (images won per seed and method, a tie shared; columns: methods that won any)."""

    ranking: pd.DataFrame
    wins: pd.DataFrame
    images_per_seed: pd.Series
    counted: pd.DataFrame


def whole_field(store_dir: Path, benchmark: Path) -> WholeField:
    from pixel_evidence.results import read_store
    from pixel_evidence.sweep.costs import method_costs

    store = read_store(store_dir)
    if store.problems:
        raise SystemExit(f"the sweep store {store_dir} has problems: {store.problems}")
    rows = store.tko[store.tko["split"] == "test"]
    counted = counted_rows(rows)
    rates = win_rate_over_seeds(rows, "tko").loc["test"]
    mean_tko = counted.groupby(["method", "seed"])["tko"].mean().groupby(level="method").mean()
    costs = pd.Series(method_costs(benchmark, ig_refined=True).seconds)
    ranking = rates.assign(tko=mean_tko, seconds=costs.reindex(rates.index))
    ranking = ranking.sort_values("mean", ascending=False, kind="stable")
    won = counted.groupby(["seed", "method"])["win_share"].sum().unstack(fill_value=0.0)
    totals = won.sum().sort_values(ascending=False, kind="stable")
    wins = won[list(totals.index[totals > 0])]
    return WholeField(ranking, wins, counted.groupby("seed")["image_id"].nunique(), counted)


@dataclass(frozen=True)
class Dissection:
    """Detector units per (class, stage) over seeds, the best last-block unit's IoU per class,
    the three maps' summed top-K IoU per class and method, and per seed how many last-block
    units detect some class."""

    counts: pd.DataFrame        # index (stage, class): mean, std
    best_unit: pd.DataFrame     # index class: mean, std
    maps: pd.DataFrame          # index (class, method): mean, std
    detecting: pd.Series        # index (stage, seed): units detecting some class
    at_ceiling: pd.Series       # index seed: share of last-block units whose threshold is their maximum
    units: int                  # units of the last block
    rows_at_six: int            # last-block (unit, seed) rows with threshold 6.0 (ReLU6's ceiling)
    unit_seed_rows: int


def dissection(results: Path, tko: pd.DataFrame) -> Dissection:
    from pixel_evidence.dissection.table import detector_counts, read_dissection

    units = read_dissection(results / "dissection")
    units = units[units["split"] == "test"]
    counts = detector_counts(units).set_index(["stage", "class"])[["mean", "std"]]
    last = units[units["stage"] == LAST_BLOCK]
    best = last.groupby(["class", "seed"])["iou"].max().groupby(level="class").agg(["mean", "std"])
    rows = tko[(tko["split"] == "test") & (tko["k"] > 0)]
    inter = rows["iou"] * 2 * rows["k"] / (1 + rows["iou"])  # |TopK| = |S| = K, so union = 2K - intersection
    sums = rows.assign(inter=inter, union=2 * rows["k"] - inter).groupby(["class", "method", "seed"])[
        ["inter", "union"]].sum()
    maps = (sums["inter"] / sums["union"]).groupby(level=["class", "method"]).agg(["mean", "std"])
    detecting = units.groupby(["stage", "seed", "unit"])["detector"].any().groupby(level=["stage", "seed"]).sum()
    per_unit = last.drop_duplicates(["seed", "unit"])
    return Dissection(counts, best, maps, detecting, per_unit.groupby("seed")["at_max"].mean(),
                      int(per_unit["unit"].nunique()), int((per_unit["threshold"] == 6.0).sum()), len(per_unit))


# ------------------------------------------------------------------ the pages


def results_page(src: Sources) -> str:
    names = labels()
    tko = pd.read_csv(src.results / "tko_table.csv")
    main = main_table(tko)
    counted = counted_rows(tko)
    images = counted.groupby(["seed", "split"])["image_id"].nunique()
    seeds = sorted(tko["seed"].unique())
    seed_span = f"{seeds[0]}–{seeds[-1]}"
    summary = json.loads((src.results / "summary.json").read_text())
    accuracy = pd.DataFrame(summary["classification"])
    parts = [GENERATED_NOTE, "# Results on the built-in default\n\n"]
    parts.append(_accuracy_paragraph(accuracy, seed_span))
    parts.append(
        f"`pixel-evidence evaluate --metrics pointing relevance_mass auroc` wrote `pretrained_models/results/` for "
        f"{len(seeds)} seeds and both splits ({_images_sentence(tko)}), with Integrated Gradients integrated to "
        "`evaluate`'s tolerance ([Integrated Gradients to a tolerance](ig-tolerance.md)). Over correctly "
        f"classified defect images, mean ± std over the {len(seeds)} seeds:\n\n")
    rows = []
    for split in sorted(main.index.get_level_values("split").unique(), key=lambda s: (s != "test", s)):
        best = main.loc[split, "win_tko_mean"].idxmax()
        for method in MAIN_METHODS:
            m = main.loc[(split, method)]
            bold = (lambda cell: f"**{cell}**") if method == best else (lambda cell: cell)
            rows.append([split, names[method], bold(mean_std(m.win_tko_mean, m.win_tko_std)), f"{m.tko:.3f}",
                         f"×{m.lift:.1f}", f"{m.pointing:.3f}", f"{m.relevance_mass:.3f}", f"{m.auroc:.3f}",
                         bold(mean_std(m.win_auroc_mean, m.win_auroc_std))])
    parts.append(table(["split", "method", "win rate by TKO", "mean TKO", "lift over chance", "pointing game",
                        "relevance mass", "AUROC", "win rate by AUROC"], rows))
    test = main.loc["test"]
    reordered = _order(test["win_auroc_mean"], names) != _order(test["win_tko_mean"], names)
    parts.append(
        f"\nChance TKO (K/N) is {counted['chance'].mean():.3f} on average; a test seed counts "
        f"{_span(images.xs('test', level='split'))} such images. "
        f"By TKO the order is {_order(test['win_tko_mean'], names)}; by AUROC it is "
        f"{_order(test['win_auroc_mean'], names)}"
        f"{': which score decides changes the ranking' if reordered else ', the same'}. "
        f"Grad-CAM's mean AUROC of {test.loc['gradcam', 'auroc']:.2f} says it points at the right region; its mean "
        f"TKO of {test.loc['gradcam', 'tko']:.3f} says its 7×7 map, upsampled, cannot place its K pixels on a thin "
        "crack or a small print. The original study had Grad-CAM first on about 90% of images (see "
        "[How this differs](../differences.md)). Read rankings together with the chance level and the other "
        "localisation scores.\n\n")
    parts.append(_mask_free_section(src, names, seeds))
    parts.append(_whole_field_section(src, names))
    return "".join(parts)


def _accuracy_paragraph(accuracy: pd.DataFrame, seed_span: str) -> str:
    by_split = accuracy.groupby("split")["balanced_accuracy"].agg(["mean", "std"])
    return (f"The shipped models (`pretrained_models/`, recipe in `pretrained_models/README.md`) reach a balanced "
            f"accuracy of **{mean_std(*by_split.loc['test'])} on the test split** and "
            f"{mean_std(*by_split.loc['train'])} on the train split (mean ± std over seeds {seed_span}, measured on "
            "the stored fp16 weights). The synthetic defects are easy to *classify*; where the evidence lies is the "
            "interesting part.\n\n")


def _images_sentence(tko: pd.DataFrame) -> str:
    defect = tko[tko["k"] > 0].groupby(["split", "seed"])["image_id"].nunique().groupby(level="split").max()
    return ", ".join(f"{n} defect images of the {split} split per seed" for split, n in defect.items())


def _order(rates: pd.Series, names: dict[str, str]) -> str:
    return ", ".join(names[m] for m in rates.sort_values(ascending=False, kind="stable").index)


def _mask_free_section(src: Sources, names: dict[str, str], seeds: list[int]) -> str:
    faithfulness = pd.read_csv(src.results / "faithfulness.csv")
    sanity = pd.read_csv(src.results / "sanity.csv")
    agreement = pd.read_csv(src.results / "agreement.csv")
    table_ = mask_free_table(faithfulness, sanity)
    per_image_std = faithfulness.groupby("method")[["deletion_auc", "insertion_auc"]].std()
    checked = sanity[sanity["final"].astype(bool)].groupby("seed")["image_id"].nunique()
    parts = [
        "## Is a map faithful, and do the methods agree?\n\n"
        f"The mask-free checks (`--metrics agreement faithfulness sanity`) ran on the test split of "
        f"{len(faithfulness['seed'].unique())} seeds ({checked.max()} images per seed for the randomization "
        "check). AUCs are the mean ± std over seeds of each seed's mean; across single images the spread is much "
        f"wider (std {per_image_std.min().min():.2f}–{per_image_std.max().max():.2f}):\n\n"]
    rows = []
    for method in MAIN_METHODS:
        m = table_.loc[method]
        checked_, failed = int(m.checked), int(m.failed)
        verdict = (f"**fails on {failed} of {checked_}**" if failed > checked_ / 2
                   else f"passes on {checked_ - failed} of {checked_}")
        spread = f", {m.spearman_min:.2f}–{m.spearman_max:.2f}" if failed > checked_ / 2 else ""
        rows.append([names[method], mean_std(m.deletion_auc_mean, m.deletion_auc_std),
                     mean_std(m.insertion_auc_mean, m.insertion_auc_std),
                     f"{verdict} (final Spearman {m.spearman:.2f}{spread})"])
    parts.append(table(["method", "deletion AUC (lower = more faithful)", "insertion AUC (higher = more faithful)",
                        "randomization check"], rows))
    pairs = agreement.groupby(["method_a", "method_b"])["spearman"].mean()
    parts.append("\nAgreement between the maps, mean Spearman over images: "
                 + ", ".join(f"{names[a]}–{names[b]} {v:.2f}" for (a, b), v in pairs.items()) + ". ")
    ig_final = sanity[sanity["final"].astype(bool) & (sanity["method"] == "ig")]
    passed = ig_final[ig_final["passed"].astype(bool)]
    parts.append(
        "Integrated Gradients from a black baseline multiplies by the input, so part of its picture is the image "
        "itself, and much of its map survives when every weight is random: its wins say \"the map covers the "
        "defect\", not only \"the model looked there\".")
    old = src.ig_fixed_steps
    if not passed.empty:
        old_sanity = pd.read_csv(old / "sanity.csv")
        old_final = old_sanity[old_sanity["final"].astype(bool) & (old_sanity["method"] == "ig")].set_index(
            ["seed", "image_id"])
        cases = []
        for row in passed.itertuples():
            before = old_final["spearman"].get((row.seed, row.image_id))
            then = "" if before is None else f"; {before:.3f} with 25 fixed steps"
            cases.append(f"seed {row.seed}'s {row.image_id} at a final Spearman of {row.spearman:.3f}{then}")
        parts.append(f" Its passes are borderline against the check's 0.5: {', '.join(cases)}.")
    old_faith = mask_free_table(pd.read_csv(old / "faithfulness.csv"), pd.read_csv(old / "sanity.csv")).loc["ig"]
    parts.append(f" With 25 fixed steps IG's deletion AUC was "
                 f"{mean_std(old_faith.deletion_auc_mean, old_faith.deletion_auc_std)} and its insertion AUC "
                 f"{mean_std(old_faith.insertion_auc_mean, old_faith.insertion_auc_std)}. The dashboard shows this "
                 "check per image.\n\n")
    return "".join(parts)


def _row_changes(src: Sources, names: dict[str, str]) -> list[str]:
    """One paragraph per record in ``results/changes/`` (written by ``python -m benchmarks.sweep_change``
    when a method's rows in the store were recomputed): what moved, from the files."""
    parts = []
    for path in sorted((src.results / "changes").glob("*.json")):
        record = json.loads(path.read_text())
        for m in record["changed"]:
            e = record["methods"][m]
            parts.append(
                f"{names[m]}'s rows were recomputed ({path.stem.split('-', 1)[1]}): {record['note']}. Its win rate "
                f"moved from {mean_std(*e['win_rate_before'])} to {mean_std(*e['win_rate_after'])} and its mean TKO "
                f"from {e['mean_tko_before']:.3f} to {e['mean_tko_after']:.3f}; its TKO changed on "
                f"{e['images_with_tko_change']} of the {record['images']} images (median change "
                f"{e['median_abs_tko_change']:.3f}, largest {e['max_abs_tko_change']:.3f}), and the winner of "
                f"{record['winner_flips']} image{'s' if record['winner_flips'] != 1 else ''} changed "
                f"(`{path.relative_to(src.root)}`).\n\n")
    return parts


def _whole_field_section(src: Sources, names: dict[str, str]) -> str:
    field = whole_field(src.results / "sweep", src.benchmark)
    ranking, wins = field.ranking, field.wins
    seeds = sorted(wins.index)
    images = field.images_per_seed
    one_seed = len(seeds) == 1
    parts = [
        "## Every method, computed by the sweep\n\n"
        f"The table above ranks the original study's three methods. `pretrained_models/results/sweep/` ranks all "
        f"{len(ranking)} registered methods against each other on the test split, computed by "
        "`pixel-evidence sweep` (IG refined to `evaluate`'s tolerance; command in `pretrained_models/README.md`). "
        f"It holds seeds {', '.join(map(str, seeds))} (the store's reader ranks only seeds that have every "
        f"method). Over the {_span(images)} correctly classified defect images of each seed, win rates as "
        f"{'the one seed' if one_seed else 'mean ± std over the seeds'}:\n\n"]
    rows = [[names[m], f"{r['mean']:.3f}" if one_seed else mean_std(r["mean"], r["std"]), f"{r.tko:.3f}",
             f"{r.seconds:.2f}"] for m, r in ranking.iterrows()]
    parts.append(table(["method", "win rate by TKO", "mean TKO", "seconds per image"], rows))
    parts.append(
        "\nSeconds per image: one cold call of the method alone, from the benchmark's `methods` section (IG at "
        "`evaluate`'s tolerance; [Speed](../speed/index.md)).\n\n")
    parts.extend(_row_changes(src, names))
    left_out = len(ranking) - wins.shape[1]
    none_won = f"; the {in_words(left_out)} methods not listed won none on any seed" if left_out else ""
    parts.append(f"Images won on each seed, out of {_span(images)} (an image where methods tie is shared among "
                 f"them){none_won}:\n\n")
    parts.append(table(["seed", *(names[m] for m in wins.columns)],
                       [[str(s), *(wins_cell(wins.loc[s, m]) for m in wins.columns)] for s in seeds]))
    smoothed = wins.reindex(columns=SMOOTHED, fill_value=0.0).sum(axis=1) / images
    perturbed = wins.reindex(columns=PERTURBATION, fill_value=0.0).sum(axis=1) / images
    cam_tko = ranking.loc[[m for m in CAM_FAMILY if m in ranking.index], "tko"]
    parts.append(
        f"\nWith every method in the race, SmoothGrad and SmoothGrad-IG together take {percent_range(smoothed)} "
        f"of each seed's images, and the perturbation methods RISE and Occlusion {percent_range(perturbed)}. "
        f"{_ig_wins(field, names)} The CAM family (a 7×7 map upsampled) stays far behind, at a mean TKO of "
        f"{cam_tko.min():.3f}–{cam_tko.max():.3f} (chance: {field.counted['chance'].mean():.3f}). The ± is the "
        "spread over training seeds of one network on synthetic defects: it says how much the ranking moves "
        "with the seed, not how it carries over to other networks or to real defects. The summary tab's "
        "\"Across categories\" shows the same ranking. Which of these gaps are significant, per seed and pooled: "
        "[Which differences are significant](significance.md).\n")
    return "".join(parts)


def _span(counts: pd.Series) -> str:
    return f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}–{counts.max()}"


def _ig_wins(field: WholeField, names: dict[str, str]) -> str:
    """A sentence on Integrated Gradients' wins in the whole field, with each won image."""
    rows = field.counted
    won = rows[(rows["method"] == "ig") & (rows["win_share"] > 0)]
    mean_tko = field.ranking.loc["ig", "tko"]
    if won.empty:
        return f"Integrated Gradients wins no image here, although its mean TKO is {mean_tko:.3f}."
    cases = []
    for row in won.itertuples():
        others = rows[(rows["seed"] == row.seed) & (rows["image_id"] == row.image_id) & (rows["method"] != "ig")]
        runner_up = others.loc[others["tko"].idxmax()]
        cases.append(f"seed {row.seed}'s {row.image_id}, {row.tko:.3f} against {names[runner_up.method]}'s "
                     f"{runner_up.tko:.3f}")
    return (f"Integrated Gradients, first among the three above, wins {in_words(len(won))} "
            f"{'image' if len(won) == 1 else 'images'} here ({'; '.join(cases)}) "
            f"at a mean TKO of {mean_tko:.3f}: on the other images a smoothed or perturbation map overlaps the "
            "defect more.")


def dissection_page(src: Sources) -> str:
    names = labels()
    tko = pd.read_csv(src.results / "tko_table.csv")
    d = dissection(src.results, tko)
    seeds = d.at_ceiling.index
    parts = [GENERATED_NOTE, "# Network Dissection of the shipped models\n\n",
             f"`pixel-evidence dissect --stage {LAST_BLOCK} {FROZEN_BLOCK} --seeds {seeds.min()}-{seeds.max()} "
             "--write-shipped --force` wrote `pretrained_models/results/dissection/` (test split; the method is on "
             f"[Network Dissection](../dissection.md)). `{LAST_BLOCK}` is the last block, the layer Grad-CAM reads; "
             f"`{FROZEN_BLOCK}` is the last of the six blocks the shipped models kept frozen at their ImageNet "
             "weights, the same network in every seed. To compare the units with the maps, the last three columns "
             "put the three methods' top-K pixels through the same summed IoU, Σ|TopK ∩ S| / Σ|TopK ∪ S| over the "
             f"class's test images (from `tko_table.csv`); mean ± std over the {len(seeds)} seeds:\n\n"]
    rows = []
    for cls in sorted(d.best_unit.index):
        rows.append([cls, count_cell(*d.counts.loc[(FROZEN_BLOCK, cls)]), count_cell(*d.counts.loc[(LAST_BLOCK, cls)]),
                     mean_std(*d.best_unit.loc[cls]),
                     *(mean_std(*d.maps.loc[(cls, m)]) for m in ("gradcam", "saliency", "ig"))])
    parts.append(table(["class", f"detectors in `{FROZEN_BLOCK}`", f"detectors in `{LAST_BLOCK}`",
                        f"best `{LAST_BLOCK}` unit's IoU", *(names[m] for m in ("gradcam", "saliency", "ig"))], rows))
    last, frozen = d.detecting.loc[LAST_BLOCK], d.detecting.loc[FROZEN_BLOCK]
    gradcam = d.maps.xs("gradcam", level="method")["mean"]
    parts.append(
        f"\nOf the last block's {d.units} units, {mean_std(last.mean(), last.std(), 1)} per seed detect some defect "
        f"class; the frozen ImageNet block has {count_cell(frozen.mean(), frozen.std())}. The best single unit of "
        f"the last block reaches an IoU of {d.best_unit['mean'].min():.3f}–{d.best_unit['mean'].max():.3f} per "
        f"class, against {gradcam.min():.3f}–{gradcam.max():.3f} for Grad-CAM's map over the same block: Grad-CAM's "
        "weighted sum of all units spreads its top pixels over the nut. Integrated Gradients, at input "
        "resolution, outlines the larger defects better than the best unit; thin cracks defeat everyone. The two "
        "comparisons are not the same test: a map's K equals the mask's size on each image, while a unit keeps one "
        "threshold for the split and pays for firing on other classes' images.\n\n"
        f"**Ties at ReLU6's ceiling.** {percent_range(d.at_ceiling)} of the last block's units (per seed) have "
        f"their largest activation as their threshold T_k; {d.rows_at_six:,} of its {d.unit_seed_rows:,} unit × seed "
        "rows have T_k = 6.0. Under a strict `>` such a unit could never fire; the tied pixels share what is left "
        "of the budget instead ([Network Dissection](../dissection.md)).\n")
    return "".join(parts)


def ig_tolerance_page(src: Sources) -> str:
    from benchmarks.ig_convergence import report_tables
    from benchmarks.ig_table_change import compare

    before = pd.read_csv(src.ig_fixed_steps / "tko_table.csv")
    after = pd.read_csv(src.results / "tko_table.csv")
    convergence = json.loads(src.ig_convergence.read_text())
    return "".join([
        GENERATED_NOTE, "# Integrated Gradients to a tolerance: the numbers\n\n",
        "Why the tolerance scheme exists and how it works is on [Integrated Gradients to a tolerance]"
        "(../methods/ig-tolerance.md). Here are the shipped numbers.\n\n",
        "## How the gap falls with the steps\n\n",
        "From `benchmarks/results/ig_convergence.json` (`python -m benchmarks.ig_convergence --report` prints the "
        "same and draws `benchmarks/results/ig_convergence.png`):\n\n",
        report_tables(convergence), "\n\n",
        "## The shipped tables, 25 fixed steps against the tolerance\n\n",
        "The tables were first made with 25 Gauss–Legendre steps (kept in `benchmarks/results/ig_fixed_steps/`) "
        "and then again with IG integrated to `evaluate`'s tolerance. `python -m benchmarks.ig_table_change "
        "benchmarks/results/ig_fixed_steps/tko_table.csv pretrained_models/results/tko_table.csv` compares the "
        "two (\"before\" is 25 steps, \"after\" the tolerance; win rates by TKO, mean over the seeds):\n\n",
        compare(before, after), "\n\n", _ig_change_summary(before, after)])


def _ig_change_summary(before: pd.DataFrame, after: pd.DataFrame) -> str:
    """How far the win rates moved against the spread between seeds, whether the default's
    target held, and the cost in gradient evaluations."""
    old = win_rate_over_seeds(before, "tko")
    new = win_rate_over_seeds(after, "tko")
    moved = (new["mean"] - old["mean"]).abs().max()
    ig = after[(after["method"] == "ig") & after["tko"].notna()]
    per_split = ig.groupby("split").agg(median=("ig_relative_delta", "median"),
                                        p90=("ig_relative_delta", lambda g: g.quantile(0.9)),
                                        flagged=("ig_converged", lambda c: int((c == 0).sum())))
    held = bool(((per_split["median"] <= 0.02) & (per_split["p90"] <= 0.05)).all())
    return (f"No win rate moves by more than {moved:.3f}; the spread between seeds is "
            f"{new['std'].min():.3f}–{new['std'].max():.3f}. The default's target (median gap ≤ 2%, p90 ≤ 5%, every "
            f"other image flagged) {'holds' if held else 'does not hold'} on every split: "
            + "; ".join(f"{split} median {100 * r['median']:.1f}%, p90 {100 * r.p90:.1f}%, {int(r.flagged)} flagged"
                        for split, r in per_split.iterrows())
            + f". IG's gradient evaluations per image grow from 25 to {ig['ig_steps'].mean():.0f} on average "
            f"({ig['ig_steps'].mean() / 25:.1f}×).\n")


def speed_page(src: Sources) -> str:
    from benchmarks.report import markdown

    report = markdown(json.loads(src.benchmark.read_text()))
    title, _, body = report.partition("\n")
    assert title.startswith("# "), "the benchmark report starts with its title"
    return GENERATED_NOTE + "# The benchmark report\n\nFrom `benchmarks/results/benchmark.json`.\n" + body


def speed_headline(src: Sources) -> str:
    """The speed page's summary table, from the benchmark's JSON."""
    bench = json.loads(src.benchmark.read_text())
    cold, warm, evaluation = bench["cold"]["all"], bench["warm"], bench["evaluation"]
    dashboard = bench["dashboard"]
    rows = [["one uncached image, Grad-CAM + Saliency + IG(25)", f"{cold['engine_s']:.2f} s",
             f"{cold['original_s']:.2f} s ({cold['speedup_vs_original']:.1f}× slower)",
             f"{cold['floor_s']:.2f} s (engine = {cold['ratio_to_floor']:.2f}× floor, paired)"],
            ["cache hit, p95", f"{warm['p95_ms']:.1f} ms", "", ""],
            ["evaluation, 4× the images", f"{evaluation['ratio_4x_1x']:.2f}× the time "
             f"(CPU time {evaluation['cpu_ratio_4x_1x']:.2f}×)", "", ""]]
    if "widget_change" in dashboard:
        change, first, soak = dashboard["widget_change"], dashboard["first_view"], dashboard["soak"]
        rows += [["dashboard, \"next image\" on cached images", f"{change['warm_p50_ms']:.0f} ms p50, "
                  f"{change['warm_p95_ms']:.0f} ms p95", "", ""],
                 ["dashboard, first view: page request to TKO numbers", f"{first['page_request_to_tko_s']:.2f} s",
                  "", ""],
                 [f"dashboard, peak RSS: {soak['sessions']} pages, {soak['clicks_per_session']} clicks each",
                  f"{soak['peak_rss_mb']:.0f} MB (limit {soak['rss_limit_mb']:.0f} MB)", "", ""]]
    methods = {(r["method"], r.get("setting")): r["seconds"] for r in bench["methods"]["rows"]}
    slow = [s for (m, setting), s in methods.items() if setting is None and m != "ig"]
    rows.append(["one map of one method alone (the `methods` section)", f"{min(slow):.2f}–{max(slow):.2f} s; "
                 f"IG {methods[('ig', None)]:.2f} s fixed, {methods[('ig', 'evaluate')]:.2f} s to the tolerance",
                 "", ""])
    return GENERATED_NOTE + table(["", "engine", "original approach", "raw fwd/bwd floor"], rows)


def opening_image_sentence(src: Sources) -> str:
    """The dashboard page's example: the image the shipped models open on, and its TKOs."""
    from pixel_evidence.dashboard.catalogue import opening_image
    from pixel_evidence.methods import DEFAULT_METHODS

    names = labels()
    tko = pd.read_csv(src.results / "tko_table.csv")
    seed = int(tko["seed"].min())
    image = opening_image(tko, seed, DEFAULT_METHODS, dict.fromkeys(tko["image_id"]))
    rows = tko[(tko["seed"] == seed) & (tko["split"] == "test") & (tko["image_id"] == image)].set_index("method")
    scores = sorted(((rows.loc[m, "tko"], names[m]) for m in DEFAULT_METHODS), reverse=True)
    return (f"On the shipped models that is {image} of seed {seed}, where "
            + ", ".join(f"{label} covers {value:.2f} of the defect" for value, label in scores) + ".\n")


README_START = "<!-- headline: written by `python -m docs.generate` -->\n"
README_END = "<!-- headline end -->\n"


def readme_headline(src: Sources) -> str:
    """The README's headline result: the original study's three methods and the whole field's
    leaders on the test split, and which of their gaps are significant (what lies between
    README_START and README_END)."""
    from docs.significance import headline_sentence

    names = labels()
    tko = pd.read_csv(src.results / "tko_table.csv")
    main = main_table(tko).loc["test"]
    counted = counted_rows(tko[tko["split"] == "test"])
    field = whole_field(src.results / "sweep", src.benchmark)
    seeds = sorted(field.wins.index)
    leaders = field.ranking.head(3)
    three = sorted(MAIN_METHODS, key=lambda m: -main.loc[m, "win_tko_mean"])
    return (
        f"On the built-in default, over the correctly classified defect images of the test split "
        f"({in_words(counted['seed'].nunique())} shipped seeds, mean ± std over seeds), the original study's "
        "three methods win by TKO: "
        + ", ".join(f"{names[m]} **{mean_std(main.loc[m, 'win_tko_mean'], main.loc[m, 'win_tko_std'])}**"
                    for m in three)
        + f" of the images. The synthetic defects cover {100 * counted['chance'].mean():.0f}% of the image on average, "
        f"and Grad-CAM's 7×7 map, upsampled, "
        f"cannot outline them (its AUROC of {main.loc['gradcam', 'auroc']:.2f} says it points at the right region). "
        f"With all {len(field.ranking)} methods in the race (the sweep, seeds {seeds[0]}–{seeds[-1]}) the leaders "
        "are " + ", ".join(f"{names[m]} ({mean_std(r['mean'], r['std'])})" for m, r in leaders.iterrows())
        + f". {headline_sentence(src)} Every table: [docs/results](docs/results/index.md).\n")


def readme_text(readme: str, src: Sources) -> str:
    """``readme`` with its headline block replaced by the one the shipped results give."""
    head, start, rest = readme.partition(README_START)
    _, end, tail = rest.partition(README_END)
    if not (start and end):
        raise SystemExit("README.md has no headline markers")
    return head + start + readme_headline(src) + end + tail


# The scale-out page's worked example: all 15 MVTec AD categories re-split 80/20, about 71 test
# images per category of which about 17 have a defect mask, on the shipped seeds.
EXAMPLE_CATEGORIES, EXAMPLE_TEST_IMAGES, EXAMPLE_MASKED = 15, 71, 17


def sweep_plan_example(src: Sources) -> str:
    """What ``sweep --plan`` prices for the worked example, from the benchmark's costs: per
    method seconds per map and CPU hours, then the total and the wall time on 1, 8 and 64 workers."""
    from types import SimpleNamespace

    from pixel_evidence.methods import METHODS
    from pixel_evidence.sweep.costs import method_costs, plan_cost

    costs = method_costs(src.benchmark, ig_refined=True)
    seeds = sorted(pd.read_csv(src.results / "tko_table.csv")["seed"].unique())
    tasks = [SimpleNamespace(category=SimpleNamespace(name=f"category-{c}"), seed=seed, split="test",
                             image_ids=[f"image-{i}" for i in range(EXAMPLE_TEST_IMAGES)],
                             n_mapped=EXAMPLE_MASKED, methods=METHODS)
             for c in range(EXAMPLE_CATEGORIES) for seed in seeds]
    total = plan_cost(tasks, costs, gpu=False)
    maps_per_method = EXAMPLE_MASKED * len(tasks)
    costliest = sorted(METHODS, key=costs.seconds.get, reverse=True)[:2]
    costliest_share = maps_per_method * sum(costs.seconds[m] for m in costliest) / 3600 / total.cpu_hours
    rows = [[f"`{m}`", f"{costs.seconds[m]:.3f}", f"{maps_per_method * costs.seconds[m] / 3600:.2f}"] for m in METHODS]
    return (GENERATED_NOTE + f"{EXAMPLE_CATEGORIES} categories × {len(seeds)} seeds, test split: {total.images} "
            f"predictions and {total.maps} maps, expected CPU hours **{total.cpu_hours:.2f}** (costs: "
            f"`{src.benchmark.relative_to(src.root)}`, methods section); wall time with the tasks spread evenly: "
            + ", ".join(f"{n} worker(s) {total.wall_hours(n):.2f} h" for n in (1, 8, 64)) + ". The two costliest "
            f"methods, {' and '.join(f'`{m}`' for m in costliest)}, are {100 * costliest_share:.0f}% of it.\n\n"
            + table(["method", "seconds per map", "CPU hours"], rows))


def noise_page(src: Sources) -> str:
    """The stochastic methods' own noise, from ``pretrained_models/results/noise/`` (``pixel-evidence noise``)."""
    from pixel_evidence.methods import METHODS
    from pixel_evidence.metrics.draw_noise import STABLE_PEARSON, STABLE_TKO_CHANGE, count_curve, stable_count
    from pixel_evidence.results.noise_study import read_study

    names = labels()
    study = read_study(src.results / "noise")
    s = study.summary
    studied = [names[m] for m in s["methods_studied"]]
    parts = [GENERATED_NOTE, "# The stochastic methods' own noise\n\n",
             f"{', '.join(studied[:-1])} and {studied[-1]} draw random masks, samples or noise copies, so their maps "
             "and TKO change with their own `seed` parameter. Every other table holds one draw of each (seed 0). "
             f"`pixel-evidence noise --draws {s['n_draws']}{' --counts' if study.counts is not None else ''} "
             f"--write-shipped` ran each again with seeds 1–{s['n_draws'] - 1} on "
             f"model seed {s['seed']}'s {s['split']} split, the other methods' rows taken from the whole-field sweep, "
             f"and wrote `pretrained_models/results/noise/`. Occlusion slides its window over a fixed grid and has "
             f"no dice.\n\n",
             f"Of the {s['n_images']} correctly classified defect images, **{s['robust_images']} keep the same winner "
             f"under all {s['n_draws']} draws**; {s['winner_changes']} change winner under some draw, and "
             f"{s['ties_within_noise']} are ties within noise (the winner's lead over the runner-up is no larger "
             "than the TKO spread, max − min over the draws, of one of the two). Per winning method, its wins in "
             "draw 0 (the shipped one) and those every draw confirms; shared wins count as shares:\n\n"]
    rows = []
    for m, wins in s["wins"].items():
        spread = s["methods"].get(m)
        cells = (f"{spread['median_spread']:.3f} / {spread['p90_spread']:.3f} / {spread['max_spread']:.3f}",
                 str(spread["spread_exceeds_gap"])) if spread else ("deterministic", "–")
        rows.append([names[m], wins_cell(wins), wins_cell(s["robust_wins"].get(m, 0.0)), *cells])
    for m, spread in s["methods"].items():
        if m not in s["wins"]:
            rows.append([names[m], "0", "0", f"{spread['median_spread']:.3f} / {spread['p90_spread']:.3f} / "
                         f"{spread['max_spread']:.3f}", str(spread["spread_exceeds_gap"])])
    parts.append(table(["method", "wins (draw 0)", "robust wins", "TKO spread median / p90 / max",
                        "images where the spread exceeds the gap to the nearest method"], rows))
    if study.counts is not None:
        curve = count_curve(study.counts)
        n_images = study.counts["image_id"].nunique()
        parts.append(
            f"\n## Sample counts\n\nTwo draws (seeds 0 and 1) at a quarter, half, once and twice each method's "
            f"default count, on the first {n_images} of those images. A count is stable when the two maps' Pearson "
            f"correlation reaches {STABLE_PEARSON} and their TKO differs by at most {STABLE_TKO_CHANGE} at the "
            "median image, and every larger count tried is stable too (the same tolerance a changed shipped map "
            "is held to).\n\n")
        rows, short = [], []
        for m in s["methods_studied"]:
            param = METHODS[m].random_samples
            default = int(study.params[m][param])
            own = curve[curve["method"] == m].set_index("count")
            stable = stable_count(curve, m)
            if stable is None or stable > default:
                short.append(names[m])
            rows.append([names[m], f"`{param}` = {default}", "not by " + str(int(own.index.max()))
                         if stable is None else str(stable), f"{own.at[default, 'median_pearson']:.3f}",
                         f"{own.at[default, 'median_tko_change']:.3f}"])
        parts.append(table(["method", "default count", "stable from", "Pearson of two draws at the default",
                            "median abs(ΔTKO) at the default"], rows))
        parts.append("\n" + (f"By this test the default count is too small for stable maps for {', '.join(short)}: "
                              "a single draw's map, and its TKO, are partly the method's own dice."
                              if short else "Every default count is stable by this test.") + "\n")
    return "".join(parts)


def pages(src: Sources = Sources()) -> dict[str, str]:
    """Each generated page's path under docs/ and its text."""
    from docs.significance import PAGE, significance_page

    return {
        "results/index.md": results_page(src),
        PAGE: significance_page(src),
        "results/dissection.md": dissection_page(src),
        "results/ig-tolerance.md": ig_tolerance_page(src),
        "results/noise.md": noise_page(src),
        "speed/benchmark.md": speed_page(src),
        "snippets/speed_headline.md": speed_headline(src),
        "snippets/opening_image.md": opening_image_sentence(src),
        "snippets/sweep_plan.md": sweep_plan_example(src),
    }


def write(out: Path, src: Sources = Sources(), readme: Path | None = None) -> list[Path]:
    """Write the pages under ``out`` and, given ``readme``, its headline block in place."""
    written = []
    if readme is not None:
        readme.write_text(readme_text(readme.read_text(encoding="utf-8"), src), encoding="utf-8")
        written.append(readme)
    for name, text in pages(src).items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the pages under this folder instead of docs/, and leave "
                        "README.md alone")
    args = parser.parse_args(argv)
    for path in write(args.out or DOCS, readme=None if args.out else ROOT / "README.md"):
        print(path)


if __name__ == "__main__":
    main()

"""The docs' significance page and the README's sentence on it, part of ``python -m docs.generate``.

Every number is read from the shipped significance tables (``pixel-evidence significance`` wrote
them from the shipped rows): ``pretrained_models/results/significance/`` for the study's three
methods and ``pretrained_models/results/sweep/significance/category=<name>/`` for every method.
Each method set is one self-contained section (:func:`study_section`, :func:`field_section`);
:func:`significance_page` joins them, so another section can be added beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from docs.generate import GENERATED_NOTE, MAIN_METHODS, Sources, labels, main_table, table, whole_field
from pixel_evidence.metrics.scores import LOCALISATION_SCORES
from pixel_evidence.significance_tables import (CRITICAL_DIFFERENCE, FRIEDMAN, PAIRWISE, POOLED, read_significance,
                                                results_significance_dir, store_significance_dir)

PAGE = "results/significance.md"
HEADLINE_SCORE, HEADLINE_SPLIT = "tko", "test"


@dataclass(frozen=True)
class Tables:
    """One folder's significance tables, with lookups of one (score, split)."""

    friedman: pd.DataFrame
    pairwise: pd.DataFrame
    cd: pd.DataFrame

    @classmethod
    def read(cls, folder: Path) -> Tables:
        found = read_significance(folder)
        if found is None:
            raise SystemExit(f"no significance tables in {folder}: run pixel-evidence significance --write-shipped")
        return cls(found[FRIEDMAN.name], found[PAIRWISE.name], found[CRITICAL_DIFFERENCE.name])

    def test(self, score: str, split: str, scope: str = POOLED) -> pd.Series:
        f = self.friedman
        return f[(f["score"] == score) & (f["split"] == split) & (f["scope"] == scope)].iloc[0]

    def ranks(self, score: str, split: str, scope: str = POOLED) -> pd.DataFrame:
        """The CD table's rows of one comparison, best average rank first, indexed by method."""
        cd = self.cd
        return cd[(cd["score"] == score) & (cd["split"] == split) & (cd["scope"] == scope)].set_index("method")

    def pair(self, score: str, split: str, a: str, b: str) -> pd.Series:
        """The pooled row of the pair ``a``, ``b`` (either order)."""
        p = self.pairwise
        rows = p[(p["score"] == score) & (p["split"] == split) & (p["scope"] == POOLED)
                 & (((p["method_a"] == a) & (p["method_b"] == b)) | ((p["method_a"] == b) & (p["method_b"] == a)))]
        return rows.iloc[0]

    def per_seed(self, score: str, split: str) -> pd.DataFrame:
        """The Friedman rows of each seed's own comparison."""
        f = self.friedman
        return f[(f["score"] == score) & (f["split"] == split) & (f["scope"] != POOLED)]


# ------------------------------------------------------------------ formatting


def p_value(p: float) -> str:
    """A p-value as text; 0.0 is a value below the smallest double, which the test's tail underflowed to."""
    if p == 0:
        return "< 1e-300"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def seeds_of(count: int, n: int) -> str:
    return f"{count} of {n}"


def bars(ranks: pd.DataFrame, names: dict[str, str]) -> list[list[str]]:
    """The CD diagram's bars as lists of labels, in bar order."""
    members: dict[str, list[str]] = {}
    for method, groups in ranks["groups"].items():
        for group in filter(None, groups.split(";")):
            members.setdefault(group, []).append(names[method])
    return [members[g] for g in sorted(members, key=int)]


def _span(values: pd.Series, digits: int = 0) -> str:
    low, high = f"{values.min():.{digits}f}", f"{values.max():.{digits}f}"
    return low if low == high else f"{low}–{high}"


def ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def joined(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def bars_text(ranks: pd.DataFrame, names: dict[str, str]) -> str:
    found = bars(ranks, names)
    return "; ".join(joined(b) for b in found) if found else "none (every pair is separated)"


def friedman_text(row: pd.Series) -> str:
    return f"χ²_F = {row.friedman_statistic:.1f}, p {_is(row.friedman_p)}"


def _is(p: float) -> str:
    text = p_value(p)
    return text if text.startswith("<") else f"= {text}"


# ------------------------------------------------------------------ the sections


def intro(study: Tables) -> str:
    alpha = study.friedman["alpha"].iloc[0]
    return (
        GENERATED_NOTE + "# Which differences are significant\n\n"
        "Win rates say how often a method comes first; they do not say whether a gap between two methods is larger "
        "than the images' own variety. Each method set below is compared as Demšar (JMLR 2006) recommends for many "
        "methods on the same cases, with every image a block: a Friedman test of the methods' average ranks "
        "(rank 1 = highest score, ties share their ranks), Nemenyi's post-hoc test with its critical difference "
        "(CD: two methods whose average ranks lie further apart differ), and for every pair a Wilcoxon signed-rank "
        "test on the paired scores with Holm's correction over all pairs and the matched-pairs rank-biserial "
        f"correlation as effect size. Every test is at α = {alpha:g}, on correctly classified defect images.\n\n"
        "Each comparison runs once per seed (blocks: that seed's images) and once pooled (blocks: every "
        "(seed, image) pair). **The seeds score the same images**: ten seeds of the test split are the same 64 "
        "images ten times, seen by ten networks. The pooled blocks are therefore not independent, and their "
        "p-values overstate the evidence; the number of seeds on which a test separates a pair is the stricter "
        "figure, and the one this page leads with.\n\n"
        "The tables are `significance/friedman.csv`, `pairwise.csv` and `critical_difference.csv` in "
        "`pretrained_models/results/` and, per category, in the sweep's store; `pixel-evidence evaluate` and "
        "`pixel-evidence sweep` write them when they finish, and `pixel-evidence significance` rewrites them from "
        "the rows without recomputing any map ([Command line](../cli.md)).\n\n")


def study_section(src: Sources) -> str:
    """The study's three methods: every score and split of evaluate's tables."""
    names = labels()
    tests = Tables.read(results_significance_dir(src.results))
    scores = [s for s in LOCALISATION_SCORES if s in set(tests.friedman["score"])]
    splits = sorted(set(tests.friedman["split"]), key=lambda s: (s != "test", s))
    n_seeds = int(tests.pairwise["n_seeds"].dropna().iloc[0])
    parts = [
        "## The study's three methods\n\n"
        f"From `pretrained_models/results/significance/`: {n_seeds} seeds, both splits, every localisation score. "
        "Pooled over the seeds, with the methods in order of average rank; a bar joins methods that Nemenyi's test "
        "cannot separate:\n\n"]
    rows = []
    for split in splits:
        for score in scores:
            row, ranks = tests.test(score, split), tests.ranks(score, split)
            rows.append([split, LOCALISATION_SCORES[score].short, f"{int(row.n_blocks)}", friedman_text(row),
                         f"{row.critical_difference:.3f}",
                         ", ".join(f"{names[m]} {r:.2f}" for m, r in ranks["average_rank"].items()),
                         bars_text(ranks, names)])
    parts.append(table(["split", "score", "blocks", "Friedman", "CD", "average rank", "not separated by Nemenyi"],
                       rows))
    parts.append(f"\nPer pair, the seeds (of {n_seeds}) on which each test separates the two methods, and the "
                 "pooled Wilcoxon–Holm p-value and rank-biserial correlation (positive: the first method scores "
                 "higher):\n\n")
    rows = []
    for split in splits:
        for score in scores:
            pairs = tests.pairwise
            pooled = pairs[(pairs["score"] == score) & (pairs["split"] == split) & (pairs["scope"] == POOLED)]
            for r in pooled.itertuples():
                rows.append([split, LOCALISATION_SCORES[score].short, f"{names[r.method_a]} – {names[r.method_b]}",
                             seeds_of(r.n_holm_significant, r.n_seeds), seeds_of(r.n_nemenyi_significant, r.n_seeds),
                             p_value(r.holm_p), f"{r.rank_biserial:.2f}"])
    parts.append(table(["split", "score", "pair", "Wilcoxon–Holm", "Nemenyi", "pooled Holm p", "rank-biserial"],
                       rows))
    parts.append("\n" + study_claim(src, tests, names) + "\n\n")
    return "".join(parts)


def study_leader(src: Sources) -> str:
    """The study's method with the highest win rate by TKO on the test split."""
    return main_table(pd.read_csv(src.results / "tko_table.csv")).loc[HEADLINE_SPLIT, "win_tko_mean"].idxmax()


def study_claim(src: Sources, tests: Tables, names: dict[str, str]) -> str:
    """"IG first among the three": the win-rate leader by TKO on the test split, and which tests
    separate it from each of the other two, on how many seeds."""
    leader = study_leader(src)
    ranks = tests.ranks(HEADLINE_SCORE, HEADLINE_SPLIT)
    others = [m for m in MAIN_METHODS if m != leader]
    pairs = {m: tests.pair(HEADLINE_SCORE, HEADLINE_SPLIT, leader, m) for m in others}
    n = int(next(iter(pairs.values())).n_seeds)
    first_by_rank = ranks.index[0] == leader
    text = [f"**\"{names[leader]} first among the three\"** ({names[leader]} has the highest win rate by TKO on the "
            f"test split). Its average rank is {ranks.loc[leader, 'average_rank']:.2f}"
            + (", the best." if first_by_rank else f"; {names[ranks.index[0]]}'s is better.")]
    for m, pair in pairs.items():
        text.append(f" Against {names[m]}, Wilcoxon–Holm separates it on {seeds_of(pair.n_holm_significant, n)} "
                    f"seeds and Nemenyi on {seeds_of(pair.n_nemenyi_significant, n)}.")
    weakest = min(pairs.values(), key=lambda p: p.n_holm_significant)
    if first_by_rank and weakest.n_holm_significant == n:
        cd = tests.per_seed(HEADLINE_SCORE, HEADLINE_SPLIT)["critical_difference"]
        nemenyi_short = [names[m] for m, p in pairs.items() if p.n_nemenyi_significant < n]
        text.append(f" The claim holds: on every seed the Wilcoxon–Holm test separates {names[leader]} from both.")
        if nemenyi_short:
            text.append(f" Nemenyi's test, which sees only the average ranks and a per-seed CD of "
                        f"{cd.min():.2f}, does not separate it from {joined(nemenyi_short)} on every seed.")
    elif weakest.n_holm_significant == 0 or not first_by_rank:
        text.append(" The claim does not hold up: on no seed does the Wilcoxon–Holm test separate it from "
                    f"{names[weakest.method_b if weakest.method_a == leader else weakest.method_a]}.")
    else:
        text.append(f" The claim holds on {seeds_of(weakest.n_holm_significant, n)} seeds only.")
    for score in (s for s in LOCALISATION_SCORES if s != HEADLINE_SCORE and s in set(tests.friedman["score"])):
        ranks = tests.ranks(score, HEADLINE_SPLIT)
        first, second = ranks.index[:2]
        pair = tests.pair(score, HEADLINE_SPLIT, first, second)
        text.append(f" By {LOCALISATION_SCORES[score].short}, {names[first]} ranks first and Wilcoxon–Holm "
                    f"separates it from {names[second]} on {seeds_of(pair.n_holm_significant, n)} seeds.")
    return "".join(text)


def field_section(src: Sources) -> str:
    """Every method of the sweep store, test split, TKO: one section per category."""
    names = labels()
    field = whole_field(src.results / "sweep", src.benchmark)
    parts = []
    for folder in sorted((src.results / "sweep" / "significance").glob("category=*")):
        category = folder.name.split("=", 1)[1]
        tests = Tables.read(store_significance_dir(src.results / "sweep", category))
        row, ranks = tests.test(HEADLINE_SCORE, HEADLINE_SPLIT), tests.ranks(HEADLINE_SCORE, HEADLINE_SPLIT)
        n = int(tests.pairwise["n_seeds"].dropna().iloc[0])
        per_seed = tests.per_seed(HEADLINE_SCORE, HEADLINE_SPLIT)
        parts.append(
            f"## Every method: the sweep ({category})\n\n"
            f"From `pretrained_models/results/sweep/significance/category={category}/`: all {int(row.n_methods)} "
            f"methods on the test split by TKO, {n} seeds. Pooled over {int(row.n_blocks)} blocks the Friedman test "
            f"rejects equal ranks ({friedman_text(row)}; Iman–Davenport F = {row.iman_davenport_statistic:.1f}, "
            f"p {_is(row.iman_davenport_p)}), and Nemenyi's critical difference is {row.critical_difference:.2f} "
            f"(per seed, with {_span(per_seed['n_blocks'])} blocks, {_span(per_seed['critical_difference'], 2)}). "
            "Average ranks, best first, with the bars of the CD diagram "
            "(methods sharing a bar are not separated by Nemenyi):\n\n")
        bar_rows = []
        for method, r in ranks.iterrows():
            bar_rows.append([names[method], f"{r.average_rank:.2f}", f"{r.mean_score:.3f}",
                             f"{field.ranking.loc[method, 'mean']:.3f}", r.groups.replace(";", ", ") or "–"])
        parts.append(table(["method", "average rank", "mean TKO", "win rate", "bar"], bar_rows))
        parts.append(f"\nNemenyi cannot separate: {bars_text(ranks, names)}.\n\n")
        leaders = list(dict.fromkeys([*field.ranking.index[:3], *ranks.index[:3]]))
        parts.append("Between the leaders (the first three by win rate and by average rank), per pair:\n\n")
        rows = []
        for i, a in enumerate(leaders):
            for b in leaders[i + 1:]:
                p = tests.pair(HEADLINE_SCORE, HEADLINE_SPLIT, a, b)
                rows.append([f"{names[p.method_a]} – {names[p.method_b]}", seeds_of(p.n_holm_significant, n),
                             seeds_of(p.n_nemenyi_significant, n), p_value(p.holm_p), p_value(p.nemenyi_p),
                             f"{p.rank_biserial:.2f}"])
        parts.append(table(["pair", "Wilcoxon–Holm", "Nemenyi", "pooled Holm p", "pooled Nemenyi p",
                            "rank-biserial"], rows))
        parts.append("\n" + field_claim(field.ranking, tests, names, n, study_leader(src)) + "\n\n")
    return "".join(parts)


def field_claim(ranking: pd.DataFrame, tests: Tables, names: dict[str, str], n: int, study: str) -> str:
    """"The win-rate leader wins the whole field": tested against the runner-up; and where the
    study's leader ``study`` stands among all methods."""
    leader, runner_up = ranking.index[:2]
    pair = tests.pair(HEADLINE_SCORE, HEADLINE_SPLIT, leader, runner_up)
    ranks = tests.ranks(HEADLINE_SCORE, HEADLINE_SPLIT)
    holm, nemenyi = int(pair.n_holm_significant), int(pair.n_nemenyi_significant)
    alpha = tests.friedman["alpha"].iloc[0]
    text = [f"**\"{names[leader]} wins the whole field\"** ({names[leader]} {ranking.loc[leader, 'mean']:.3f} "
            f"against {names[runner_up]} {ranking.loc[runner_up, 'mean']:.3f} by win rate). "]
    if holm == 0:
        text.append(f"No seed separates {names[leader]} from {names[runner_up]}: Wilcoxon–Holm on "
                    f"{seeds_of(holm, n)} seeds, Nemenyi on {seeds_of(nemenyi, n)}. On the stricter per-seed "
                    f"figure the claim does not hold up: {names[leader]} and {names[runner_up]} share the lead.")
    elif holm == n:
        text.append(f"Wilcoxon–Holm separates {names[leader]} from {names[runner_up]} on every seed "
                    f"(Nemenyi on {seeds_of(nemenyi, n)}): the claim holds.")
    else:
        text.append(f"Wilcoxon–Holm separates {names[leader]} from {names[runner_up]} on {seeds_of(holm, n)} seeds "
                    f"only (Nemenyi on {seeds_of(nemenyi, n)}): the lead is not settled.")
    pooled_holm = "separates them" if pair.holm_p < alpha else "does not separate them"
    pooled_nemenyi = "does" if pair.nemenyi_p < alpha else "does not"
    text.append(f" Pooled over the seeds, Wilcoxon–Holm {pooled_holm} (p = {p_value(pair.holm_p)}) and Nemenyi "
                f"{pooled_nemenyi} (p = {p_value(pair.nemenyi_p)}); the pooled blocks repeat the same images once "
                "per seed, so the pooled p-value is the weaker evidence.")
    if ranks.index[0] != leader:
        text.append(f" By average rank {names[ranks.index[0]]} is first, not {names[leader]}.")
    if study in ranks.index:
        place = list(ranks.index).index(study) + 1
        shared = [b for b in bars(ranks, names) if names[study] in b]
        company = f", in one bar with {joined([m for m in shared[0] if m != names[study]])}" if shared else ""
        text.append(f" {names[study]}, first among the study's three, is {ordinal(place)} of {len(ranks)} by "
                    f"average rank ({ranks.loc[study, 'average_rank']:.2f}{company}).")
    return "".join(text)


def significance_page(src: Sources) -> str:
    study = Tables.read(results_significance_dir(src.results))
    return intro(study) + study_section(src) + field_section(src)


def headline_sentence(src: Sources) -> str:
    """The README's sentence on significance: per-seed Wilcoxon–Holm counts of the two headline claims."""
    names = labels()
    study = Tables.read(results_significance_dir(src.results))
    leader = study_leader(src)
    pairs = [study.pair(HEADLINE_SCORE, HEADLINE_SPLIT, leader, m) for m in MAIN_METHODS if m != leader]
    n = int(pairs[0].n_seeds)
    others = [names[p.method_b if p.method_a == leader else p.method_a] for p in pairs]
    counts = joined([str(int(p.n_holm_significant)) for p in pairs])
    ranking = whole_field(src.results / "sweep", src.benchmark).ranking
    first, second = ranking.index[:2]
    category = sorted((src.results / "sweep" / "significance").glob("category=*"))[0].name.split("=", 1)[1]
    field = Tables.read(store_significance_dir(src.results / "sweep", category)).pair(
        HEADLINE_SCORE, HEADLINE_SPLIT, first, second)
    separated = int(field.n_holm_significant)
    verdict = {0: "on none, so those two share the lead", n: f"on all {n}"}.get(separated, f"on {separated} of {n}")
    return (f"Per seed, a Wilcoxon signed-rank test with Holm's correction separates {names[leader]} from "
            f"{joined(others)} on {counts} of {n} seeds, and separates {names[first]} from {names[second]} "
            f"{verdict} ([which differences are significant](docs/results/significance.md)).")

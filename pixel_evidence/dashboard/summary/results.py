"""The summary tab's one store: the evaluation results every section draws from.

:class:`ResultsStore` reads the tables written by ``pixel-evidence evaluate`` (through
:mod:`pixel_evidence.results`, shared by all sessions and re-read only when a file changed), knows
the methods' names and colours, recomputes win rates under another localisation score, and
collects the tables behind each section's plots ("the numbers behind the plots").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import param

from pixel_evidence.analyses import ANALYSES
from pixel_evidence.dashboard.colours import CHANCE_LABEL, method_colours
from pixel_evidence.dashboard.host import SHARED
from pixel_evidence.dashboard.state import DashboardState
from pixel_evidence.engine.contract import Engine
from pixel_evidence.metrics.scores import LOCALISATION_SCORES
from pixel_evidence.results import (CHANCE, Results, StoreTables, history_frame, localisation_win_rates, results_dir,
                                    sweep_dir)
from pixel_evidence.results.noise_study import noise_dir, read_study
from pixel_evidence.run_folders import SHIPPED_MODELS


def evaluate_command(engine: Engine) -> str:
    models = Path(engine.pool.models_dir)
    parts = ["pixel-evidence evaluate"]
    default_data = "synthetic" in str(engine.catalogue.data_root) and ".cache" in str(engine.catalogue.data_root)
    if not default_data:
        parts.append(f"--data {engine.catalogue.data_root}")
    if models.resolve() != SHIPPED_MODELS.resolve():
        parts.append(f"--models {models}")
    return " ".join(parts)


def analysis_command(engine: Engine) -> str:
    """The command that writes the analysis tables, with this engine's --data / --models."""
    return evaluate_command(engine).replace("pixel-evidence evaluate",
                                            "pixel-evidence evaluate --metrics " + " ".join(ANALYSES), 1)


class ResultsStore(param.Parameterized):
    """The results on screen, the state choosing among them, and the tables behind the plots."""

    state = param.ClassSelector(class_=DashboardState)
    results = param.ClassSelector(class_=Results, doc="The evaluation tables (re-read by load)")
    colours = param.Dict(default={}, doc="Method label -> colour, the same as in the per-image view")
    tables = param.Dict(default={}, doc="Section -> [(title, frame)]: the numbers behind its plots")
    sweep = param.ClassSelector(class_=StoreTables, allow_None=True, doc="The sweep store's tables, if any")
    noise = param.Parameter(default=None, doc="The stochastic-noise study beside the models (NoiseStudy), if any")

    def __init__(self, state: DashboardState, engine: Engine, **params: Any):
        super().__init__(state=state, **params)
        self.engine = engine
        self.labels = dict(state.catalogue.method_labels)
        self.directory = results_dir(engine.pool.models_dir)
        self.sweep_directory = sweep_dir(engine.pool.models_dir)
        self.noise_directory = noise_dir(engine.pool.models_dir)
        self._win_rates: dict[str, pd.DataFrame] = {}
        self.load()
        state.param.watch(lambda _e: self._check_score(self.scores), "score")

    def load(self) -> None:
        """(Re)read the results; every section redraws."""
        res = SHARED.evaluation_results(self.directory)
        self._win_rates = {}
        self._check_score(res.scores or ["tko"])  # before any section draws the new results
        present = (set(res.tko["method"]) | set(res.win_rates["method"])) if res.available else set(self.labels)
        # colours by registry place, as in the per-image view; methods unknown to it after
        extra = {m: m for m in sorted(present - set(self.labels) - {CHANCE})}
        self.param.update(results=res, colours=method_colours({**self.labels, **extra}),
                          sweep=SHARED.sweep_tables(self.sweep_directory), noise=read_study(self.noise_directory))

    def publish(self, section: str, tables: list[tuple[str, pd.DataFrame]]) -> None:
        self.tables = {**self.tables, section: tables}

    # ---------------------------------------------------------------- reading

    @property
    def scores(self) -> list[str]:
        """The localisation scores the results hold (TKO at least)."""
        return self.results.scores or ["tko"]

    def _check_score(self, scores: list[str]) -> None:
        """A score the results lack (e.g. from a shared link) falls back to TKO, with a notice."""
        if self.state.score in scores:
            return
        self.state.notices = list(self.state.notices) + [
            f"These results have no {LOCALISATION_SCORES[self.state.score].label} column; winners are decided by "
            "Top-K overlap."]
        self.state.score = "tko"

    def win_rates(self, score: str | None = None) -> pd.DataFrame:
        """Win rates per seed, split, class and method with ``score`` deciding each image's winner.

        TKO is the table evaluate wrote; other scores are recomputed from the main table with
        the same rule (correctly classified images only, unless the run counted all)."""
        score = score or self.state.score
        res = self.results
        if score == "tko" or not res.available:
            return res.win_rates if res.win_rates is not None else pd.DataFrame()
        if score not in self._win_rates:
            counted_all = (res.summary or {}).get("counted_images") == "all defect images"
            self._win_rates[score] = localisation_win_rates(res.tko, score, include_misclassified=counted_all)
        return self._win_rates[score]

    def analysis(self, name: str) -> pd.DataFrame | None:
        """All rows of one analysis table, None when the file is missing."""
        return self.results.analyses.get(name)

    def history(self) -> pd.DataFrame:
        return history_frame(self.engine.pool.meta)

    # ---------------------------------------------------------------- names

    def label(self, method: str) -> str:
        return CHANCE_LABEL if method == CHANCE else self.labels.get(method, method)

    def method_order(self, methods: Any) -> list[str]:
        """Method keys in registry order, unknown ones after them."""
        present = set(methods)
        return [m for m in self.labels if m in present] + sorted(present - set(self.labels))

    def with_labels(self, df: pd.DataFrame, column: str = "method", at: int = 1) -> pd.DataFrame:
        """A copy with a readable ``Method`` column in place of the method keys."""
        df = df.copy()
        df.insert(min(at, len(df.columns)), "Method", [self.label(m) for m in df[column]])
        return df.drop(columns=[column])

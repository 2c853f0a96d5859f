"""The registry of analyses: per-image checks with a table of their own beside the main table.

Each one has a name (the ``--metrics`` word), a result file, the columns of its table, the
settings its provenance records, the function that makes its rows for one explained image
and the one that summarises its table. Evaluation, the command line, the results reader
and the dashboard's summary sections all read this table. It imports nothing heavy (the
row functions need the engine, and so torch; the summaries need pandas): both are
imported when they are called.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

# The columns every analysis table starts with: which image, and whether the model got it right.
HEAD_COLUMNS = ("seed", "split", "image_id", "class", "correct")


@dataclass(frozen=True)
class AnalysisSettings:
    """Settings of the per-image analyses; part of each analysis file's provenance."""

    agreement_fraction: float = 0.2   # top share of pixels compared by the agreement IoU
    faithfulness_start: str = "black"  # what deleted pixels become: "black" or "blur"
    faithfulness_steps: int = 20
    sanity_images: int = 4             # images per (seed, split): the cascade recomputes maps ~10 times

    def of(self, analysis: str) -> dict[str, Any]:
        """The settings ``analysis`` records, under the names its provenance uses."""
        return {name: getattr(self, attribute) for name, attribute in ANALYSES[analysis].settings.items()}


def _imported(path: str) -> Callable:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Analysis:
    name: str                   # the --metrics word, and the result file's stem
    note: str                   # what it compares, for the command line's help
    columns: tuple[str, ...]    # its table's columns
    row_key: tuple[str, ...]    # the columns that tell one row of a (seed, split) unit from another
    settings: dict[str, str]    # the name its provenance records -> the AnalysisSettings attribute
    row_function: str           # "module:function" (engine, explanation, settings) -> rows of one image
    summary_function: str       # "module:function" (table) -> its statistics for summary.json

    @property
    def file(self) -> str:
        """Its table's file in a results folder."""
        return f"{self.name}.csv"

    def rows(self, engine: Any, ex: Any, settings: AnalysisSettings) -> list[dict[str, Any]]:
        """Its rows for one explained image ``ex`` (each a dict of ``columns``)."""
        return _imported(self.row_function)(engine, ex, settings)

    def summary(self, table: Any) -> Any:
        """The statistics of its table (a DataFrame) that summary.json records."""
        return _imported(self.summary_function)(table)


AGREEMENT = Analysis("agreement", "every pair of methods",
                     (*HEAD_COLUMNS, "method_a", "method_b", "pearson", "spearman", "top_iou"),
                     ("image_id", "method_a", "method_b"), {"fraction": "agreement_fraction"},
                     "pixel_evidence.analysis_rows:agreement_rows",
                     "pixel_evidence.results.summaries:agreement_stats")
FAITHFULNESS = Analysis("faithfulness", "deletion and insertion AUC",
                        (*HEAD_COLUMNS, "method", "start", "steps", "deletion_auc", "insertion_auc"),
                        ("image_id", "method"), {"start": "faithfulness_start", "steps": "faithfulness_steps"},
                        "pixel_evidence.analysis_rows:faithfulness_rows",
                        "pixel_evidence.results.summaries:faithfulness_stats")
SANITY = Analysis("sanity", "cascading model randomization",
                  (*HEAD_COLUMNS, "method", "depth", "layer", "spearman", "top_iou", "final", "passed"),
                  ("image_id", "method", "depth"), {"images": "sanity_images"},
                  "pixel_evidence.analysis_rows:sanity_rows", "pixel_evidence.results.summaries:sanity_stats")

ANALYSES: dict[str, Analysis] = {a.name: a for a in (AGREEMENT, FAITHFULNESS, SANITY)}


def analysis(name: str) -> Analysis:
    """The registered analysis ``name``; a one-line error lists the valid names."""
    try:
        return ANALYSES[name]
    except KeyError:
        raise ValueError(f"unknown analysis {name!r}; choose from {', '.join(ANALYSES)}") from None

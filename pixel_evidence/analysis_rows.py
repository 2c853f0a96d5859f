"""Each analysis's rows for one explained image, in its registered columns
(:mod:`pixel_evidence.analyses`). Faithfulness and sanity ask the engine for their curves and
cascades, so they run where the engine (and torch) is."""

from __future__ import annotations

from typing import Any

from pixel_evidence.analyses import AnalysisSettings
from pixel_evidence.engine.explain import ExplanationEngine


def _head(ex) -> dict[str, Any]:
    return {"seed": ex.seed, "split": ex.split, "image_id": ex.image_id, "class": ex.true_class,
            "correct": ex.correct}


def agreement_rows(engine: ExplanationEngine, ex, settings: AnalysisSettings) -> list[dict[str, Any]]:
    """One row per pair of methods: how alike their maps of ``ex`` are."""
    return [{**_head(ex), "method_a": r["a"], "method_b": r["b"], "pearson": r["pearson"],
             "spearman": r["spearman"], "top_iou": r["top_iou"]}
            for r in ex.agreement(settings.agreement_fraction)]


def faithfulness_rows(engine: ExplanationEngine, ex, settings: AnalysisSettings) -> list[dict[str, Any]]:
    """One row per method: the areas under its deletion and insertion curves."""
    start, steps = settings.faithfulness_start, settings.faithfulness_steps
    curves = engine.faithfulness(ex, start=start, steps=steps)
    return [{**_head(ex), "method": m, "start": start, "steps": steps, "deletion_auc": c["deletion"].auc,
             "insertion_auc": c["insertion"].auc} for m, c in curves.items()]


def sanity_rows(engine: ExplanationEngine, ex, settings: AnalysisSettings) -> list[dict[str, Any]]:
    """One row per method and randomized stage of the cascade, the last one marked ``final``."""
    rows = []
    for m, res in engine.sanity(ex).items():
        last = len(res.steps) - 1
        rows += [{**_head(ex), "method": m, "depth": i, "layer": st.layer, "spearman": st.spearman,
                  "top_iou": st.top_iou, "final": i == last, "passed": res.passed}
                 for i, st in enumerate(res.steps)]
    return rows

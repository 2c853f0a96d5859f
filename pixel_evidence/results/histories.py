"""Training histories (loss and balanced accuracy per epoch) from the checkpoint metadata."""

from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

HISTORY_METRICS = ("train_loss", "val_loss", "test_loss", "val_balanced_accuracy", "test_balanced_accuracy")


def history_frame(metas: Mapping[int, Mapping[str, Any]]) -> pd.DataFrame:
    """Long table ``seed, epoch, metric, value`` from each checkpoint's ``history``."""
    rows = []
    for seed, meta in metas.items():
        for entry in meta.get("history", []) or []:
            epoch = entry.get("epoch")
            if epoch is None:
                continue
            for metric in HISTORY_METRICS:
                value = entry.get(metric)
                if value is not None and isinstance(value, (int, float)) and math.isfinite(value):
                    rows.append({"seed": int(seed), "epoch": int(epoch), "metric": metric, "value": float(value)})
    return pd.DataFrame(rows, columns=["seed", "epoch", "metric", "value"])


def history_bands(history: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per (metric, epoch).

    Columns ``metric, epoch, mean, std, n_seeds``; ``std`` is the sample standard deviation
    (ddof=1), 0 for a single seed so a band collapses to the line instead of vanishing.
    """
    cols = ["metric", "epoch", "mean", "std", "n_seeds"]
    if history.empty:
        return pd.DataFrame(columns=cols)
    g = history.groupby(["metric", "epoch"])["value"]
    out = g.agg(mean="mean", std="std", n_seeds="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out[cols].sort_values(["metric", "epoch"]).reset_index(drop=True)

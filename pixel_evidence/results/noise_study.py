"""The stochastic-noise study's files: its tables written from rows, and read back.

A study is one folder (``pixel-evidence noise --out``; the shipped one is
``pretrained_models/results/noise``) holding

- ``draws/draw=D/``: one sweep store per draw D >= 1 of the stochastic methods (their
  ``seed`` parameter set to D); draw 0 is the whole-field store's own rows (seed 0 is every
  method's default);
- ``noise_images.csv``: per image, :func:`.draw_noise.winner_noise`;
- ``noise_gaps.csv``: per image and stochastic method, :func:`.draw_noise.neighbour_gaps`;
- ``noise_summary.json``: :func:`.draw_noise.noise_summary` with what the study ran on;
- ``sample_counts.csv`` (optional): the convergence curve of each method's sample count
  (:mod:`pixel_evidence.sweep.sample_counts`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pixel_evidence.files import atomic_write_text
from pixel_evidence.metrics.draw_noise import neighbour_gaps, noise_summary, winner_noise
from pixel_evidence.results.reading import results_dir

NOISE_DIR = "noise"  # under a models folder's results/
DRAWS_DIR = "draws"
IMAGES_FILE = "noise_images.csv"
GAPS_FILE = "noise_gaps.csv"
SUMMARY_FILE = "noise_summary.json"
COUNTS_FILE = "sample_counts.csv"


def noise_dir(models_dir: Path | str) -> Path:
    """Where the study of a models folder's seeds lives, and the dashboard looks for it."""
    return results_dir(models_dir) / NOISE_DIR


def draw_store(study: Path, draw: int) -> Path:
    """The sweep store of one draw (D >= 1) of a study folder."""
    return Path(study) / DRAWS_DIR / f"draw={draw}"


def draw_rows(field: pd.DataFrame, draws: dict[int, pd.DataFrame], methods: list[str]) -> pd.DataFrame:
    """The stochastic methods' scores under every draw: image_id, method, draw, tko.

    ``field`` gives draw 0 (the whole-field rows of one seed and split), ``draws`` the other
    draws' rows of the same seed and split; only correctly classified images count, as in the
    rankings.
    """
    parts = []
    for draw, rows in {0: field, **draws}.items():
        rows = rows[rows["method"].isin(methods) & rows["correct"].astype(bool)]
        parts.append(rows[["image_id", "method", "tko"]].assign(draw=draw))
    return pd.concat(parts, ignore_index=True)


def write_study(study: Path, field: pd.DataFrame, draws: dict[int, pd.DataFrame], methods: list[str],
                about: dict[str, Any]) -> dict[str, Any]:
    """Write the study's tables from the whole field's rows and the draws' rows; returns the summary.

    ``about`` (category, seed, split, ...) goes into the summary as it is.
    """
    ranked = field[field["correct"].astype(bool)]
    scores = draw_rows(field, draws, methods)
    wins = winner_noise(ranked, scores)
    gaps = neighbour_gaps(ranked, scores)
    summary = {**about, "methods_studied": methods, **noise_summary(ranked, scores)}
    study.mkdir(parents=True, exist_ok=True)
    atomic_write_text(study / IMAGES_FILE, wins.to_csv(index=False))
    atomic_write_text(study / GAPS_FILE, gaps.to_csv(index=False))
    atomic_write_text(study / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    return summary


@dataclass(frozen=True)
class NoiseStudy:
    """A study read back: ``images`` (one row per image, :func:`winner_noise`'s columns),
    ``gaps`` (:func:`neighbour_gaps`' rows), ``summary`` (the JSON) and ``counts`` (the
    convergence rows, None if not measured)."""

    images: pd.DataFrame
    gaps: pd.DataFrame
    summary: dict[str, Any]
    counts: pd.DataFrame | None

    @property
    def seed(self) -> int:
        return int(self.summary["seed"])

    @property
    def split(self) -> str:
        return str(self.summary["split"])

    @property
    def params(self) -> dict[str, dict[str, Any]]:
        """Each studied method's settings of draw 0 (the other draws differ only in ``seed``)."""
        return self.summary["params"]

    @property
    def n_draws(self) -> int:
        return int(self.summary["n_draws"])

    def covers(self, seed: int, split: str) -> bool:
        return seed == self.seed and split == self.split

    def spreads(self, image_id: str) -> dict[str, float]:
        """``{stochastic method: its score's spread over the draws}`` on one image; {} if not studied."""
        rows = self.gaps[self.gaps["image_id"] == image_id]
        return dict(zip(rows["method"], rows["spread"].astype(float)))

    def image(self, image_id: str) -> dict[str, Any] | None:
        """The study's row of one image as a dict, or None if the study did not rank it."""
        hit = self.images[self.images["image_id"] == image_id]
        return None if hit.empty else hit.iloc[0].to_dict()


def read_study(study: Path | str) -> NoiseStudy | None:
    """The study in ``study``, or None when it has no summary yet."""
    study = Path(study)
    if not (study / SUMMARY_FILE).is_file():
        return None
    counts = study / COUNTS_FILE
    return NoiseStudy(pd.read_csv(study / IMAGES_FILE, dtype={"image_id": str}, keep_default_na=False),
                      pd.read_csv(study / GAPS_FILE, dtype={"image_id": str}),
                      json.loads((study / SUMMARY_FILE).read_text()),
                      pd.read_csv(counts) if counts.is_file() else None)

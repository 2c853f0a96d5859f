"""What one benchmark run measures: its settings (``BenchConfig``) and where it reads and writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pixel_evidence.methods import DEFAULT_METHODS
from pixel_evidence.run_folders import PROJECT_ROOT, RUNS

# A run writes into runs/bench; the shipped report in benchmarks/results/ needs --write-shipped.
DEFAULT_OUT = RUNS / "bench"
DEFAULT_MODELS = PROJECT_ROOT / "pretrained_models"

ALL = DEFAULT_METHODS  # the three methods compared with the original study
IG_QUADRATURES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")
IG_STEPS = (8, 16, 25, 32, 64)
SECTIONS = ("cold", "warm", "contention", "evaluation", "training", "dashboard", "ig_accuracy", "ig_chunks", "methods",
            "sweep")


@dataclass
class BenchConfig:
    """Settings of one run; recorded in ``benchmark.json`` under ``config``."""

    out: Path = DEFAULT_OUT
    data: Path | None = None
    models: Path | None = None
    seed: int | None = None
    device: str = "auto"
    cold_images: int = 5
    warm_requests: int = 300
    eval_images: int | None = None          # None: the whole test split
    eval_multipliers: tuple[int, ...] = (1, 2, 4)
    eval_batch_size: int = 8
    train_steps: int = 3
    ig_steps: tuple[int, ...] = IG_STEPS
    ig_methods: tuple[str, ...] = IG_QUADRATURES
    ig_images: int = 20  # a ranking of quadratures over fewer images is noise
    ig_tolerances: tuple[float, ...] = (0.05, 0.02)
    ig_chunks: tuple[int, ...] = (1, 4, 8, 13, 25)
    engine_ig_steps: int | None = None      # None: the method's default
    widget_changes: int = 40
    server: bool = True
    sessions: tuple[int, ...] = (1, 10)
    server_timeout: float = 240.0
    fallback_image_size: int = 224
    method_images: int = 2
    sweep_chunk: int = 16                   # images per sweep task (pixel_evidence.sweep.spec.DEFAULT_CHUNK)
    sections: tuple[str, ...] = SECTIONS
    update: bool = False                    # keep the skipped sections of the report already in out

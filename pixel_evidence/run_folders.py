"""Where the commands write by default, and the guard that keeps them off the shipped folders.

``train``, ``evaluate`` and ``bench`` write into ``runs/`` under the working directory (the
checkout ignores it in git). The checkout's ``pretrained_models/`` and ``benchmarks/results/``
hold what the project ships; a command writes there only when told so with
``--write-shipped``, so an example run cannot overwrite the shipped models or tables.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODELS = PROJECT_ROOT / "pretrained_models"
SHIPPED_FOLDERS = (SHIPPED_MODELS, PROJECT_ROOT / "benchmarks" / "results")
RUNS = Path("runs")


def is_shipped(path: Path | str) -> bool:
    """Whether ``path`` is one of the shipped folders or lies inside one."""
    path = Path(path).resolve()
    return any(path == folder or folder in path.parents for folder in SHIPPED_FOLDERS)


def default_results(models: Path | str, *, write_shipped: bool) -> Path:
    """Where results of ``models`` go by default: ``<models>/results`` (the folder the dashboard
    reads), but ``runs/results`` for the shipped models unless ``write_shipped``."""
    models = Path(models)
    return RUNS / "results" if is_shipped(models) and not write_shipped else models / "results"


def writable(path: Path | str, *, write_shipped: bool, option: str) -> Path:
    """``path``, refused with one line when it is shipped and ``write_shipped`` is not set.

    ``option`` names the command-line option that chose the path, for the message."""
    path = Path(path)
    if is_shipped(path) and not write_shipped:
        raise ValueError(f"{option} {path} is a shipped folder of the checkout; pass --write-shipped to replace "
                         f"what is shipped there, or choose a folder of your own (default: {RUNS}/)")
    return path


def train_command(models_dir: Path | str, *options: str) -> str:
    """The ``pixel-evidence train`` line that writes into ``models_dir`` (for hints in messages)."""
    shipped = " --write-shipped" if is_shipped(models_dir) else ""
    return " ".join(("pixel-evidence train --models", str(models_dir), *options)) + shipped

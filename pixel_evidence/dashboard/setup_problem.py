"""What went wrong while building the engine, said as a page: what is missing and the
commands that make it (:func:`describe_setup_error`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pixel_evidence.dashboard.config import AppConfig
from pixel_evidence.data.layouts import layout_of
from pixel_evidence.data.mvtec_sources import CATEGORY_URLS, DOWNLOADS_PAGE
from pixel_evidence.data.sample import DataError
from pixel_evidence.run_folders import RUNS
from pixel_evidence.run_folders import SHIPPED_MODELS as DEFAULT_MODELS


@dataclass(frozen=True)
class SetupProblem:
    """What went wrong while building the engine, in words, with the commands that fix it."""

    title: str
    detail: str
    commands: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


def _models_arg(config: AppConfig) -> str:
    """The models folder for a train hint: the configured one, else ``runs/models`` (where
    training writes by default; the shipped folder takes --write-shipped)."""
    return f" --models {config.models or RUNS / 'models'}"


def _served_models_arg(config: AppConfig) -> str:
    """The models folder being served, for a hint that keeps it: the configured one, else the shipped one."""
    return f" --models {config.models or DEFAULT_MODELS}"


def _data_arg(config: AppConfig) -> str:
    return f" --data {config.data}" if config.data else ""


def _mvtec_category(config: AppConfig) -> bool:
    """``--data`` names an MVTec AD category folder, which ``data download`` can bring back."""
    return config.data is not None and Path(config.data).name in CATEGORY_URLS


def _fetch_data(config: AppConfig) -> tuple[str, ...]:
    """The command that brings back the data ``--data`` names: its own MVTec AD category (the
    folder's name) downloaded beside it, or the built-in set regenerated; none for other data,
    which no command here can make."""
    if not config.data:
        return ("pixel-evidence data generate",)
    if not _mvtec_category(config):
        return ()
    data = Path(config.data)
    return (f"pixel-evidence data download {data.name} --data-dir {data.parent}",)


def _by_hand(config: AppConfig) -> tuple[str, ...]:
    """MVTec's own links expire: where to get the archive when the download command fails."""
    if not _mvtec_category(config):
        return ()
    data = Path(config.data)
    return (f"If the download fails, get the archive from {DOWNLOADS_PAGE} and run "
            f"pixel-evidence data download {data.name} --data-dir {data.parent} --archive PATH",)


def _unreadable_data(config: AppConfig) -> str | None:
    """Why ``--data``, an existing folder, is in no layout this program reads (the layouts
    and the nearest match); None when it is readable, or not there at all."""
    if not config.data or not Path(config.data).is_dir():
        return None
    try:
        layout_of(Path(config.data))
    except DataError as err:
        return str(err)
    return None


def describe_setup_error(exc: BaseException, config: AppConfig | None = None) -> SetupProblem:
    """Turn an engine construction error into a page: what is missing and how to make it."""
    config = config or AppConfig()
    name = type(exc).__name__
    message = str(exc)
    models = config.models or DEFAULT_MODELS
    train = f"pixel-evidence train{_data_arg(config)}{_models_arg(config)}"
    quick = f"pixel-evidence train{_data_arg(config)}{_models_arg(config)} --seeds 42 --epochs 2 --image-size 96 --freeze-blocks 6"
    serve = f"panel serve app.py --args{_data_arg(config)}{_models_arg(config)}"  # after training
    serve_again = f"panel serve app.py --args{_data_arg(config)}{_served_models_arg(config)}"
    unreadable = _unreadable_data(config) if name in ("DataError", "CheckpointError") else None
    if unreadable:  # training or a download would fail on it at once: say what the folder lacks
        return SetupProblem(
            "The data folder is in no layout this program reads", unreadable, (),
            ("The README's section \"Your own data\" shows each layout's tree.",
             f"Once the folder is arranged like one of them, train on it: {train}"))
    if name == "CheckpointError" and "no trained models" in message:
        return SetupProblem(
            "No trained models yet",
            f"The folder {models} holds no finished checkpoints (seed_<n>.pt with its seed_<n>.json).",
            (train, serve),
            (f"For a quick try, train one small model instead: {quick}",))
    if name == "DataError" and "manifest not found" in message:
        return SetupProblem(
            "No models (and no split manifest) in the models folder",
            f"{message}. Training writes the manifest and the checkpoints together.",
            (train, serve),
            (f"For a quick try: {quick}",))
    if name == "DataError" and "missing" in message:
        return SetupProblem(
            "Images listed by the models' manifest are missing",
            message,
            (*_fetch_data(config), serve_again),
            (f"Point --data at the category folder the models in {models} were trained on. Without --data the "
             "dashboard uses the built-in synthetic set (regenerate it with `pixel-evidence data generate`).",
             *_by_hand(config)))
    if name == "DataError":
        return SetupProblem("The data cannot be used", message, (*_fetch_data(config), serve_again), _by_hand(config))
    if name == "CheckpointError":
        return SetupProblem("The models cannot be used with this data", message,
                            (f"{train} --force", serve))
    if name == "ConfigError":
        return SetupProblem("The dashboard's arguments are not usable", message,
                            ("panel serve app.py --args --data DIR --models DIR",
                             "panel serve app.py --args --config dashboard.toml"))
    if isinstance(exc, FileNotFoundError):
        return SetupProblem("A file or folder is missing", message, (train,))
    return SetupProblem("The explanation engine could not start", f"{name}: {message}",
                        (), ("The full error is in the server log.",))

"""Where the dashboard finds its data and models: command-line arguments or a config file.

Accepted arguments (after ``panel serve app.py --args``)::

    --data DIR        MVTec-layout category folder (default: the built-in synthetic set)
    --models DIR      folder of seed_<n>.pt/.json checkpoints + manifest.csv
                      (default: the shipped pretrained_models/)
    --manifest FILE   split manifest (default: <models>/manifest.csv)
    --config FILE     TOML or JSON file with any of the keys below
    --device DEV      auto (default), cpu, cuda, mps
    --cache-mb MB     bound of the in-memory explanation cache (default 256)
    --ig-steps N      Integrated Gradients steps of the fixed rule (default: the method's own default)
    --ig-tolerance T  refine each IG path until its completeness gap is at most T of the score
                      change (default: none, the fixed rule: faster, and the page shows its gap)
    --ig-max-steps N  step cap of --ig-tolerance (default 512); maps above it are flagged
    --no-warm         do not fill the cache in the background after the first view

Config file keys: ``data``, ``models``, ``manifest``, ``device``, ``cache_mb``, ``ig_steps``,
``ig_tolerance``, ``ig_max_steps``, ``warm``. Relative paths in a config file are read relative
to the file's folder. Command-line values win over the file's.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Sequence

from pixel_evidence.choices import IG_MAX_STEPS, ig_params


class ConfigError(ValueError):
    """The command-line arguments or the config file are not usable."""


@dataclass(frozen=True)
class AppConfig:
    data: Path | None = None
    models: Path | None = None
    manifest: Path | None = None
    device: str = "auto"
    cache_mb: float = 256.0
    ig_steps: int | None = None
    ig_tolerance: float | None = None
    ig_max_steps: int = IG_MAX_STEPS
    warm: bool = True

    def engine_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"device": self.device, "cache_mb": self.cache_mb}
        if self.manifest is not None:
            kwargs["manifest"] = self.manifest
        if self.ig_tolerance:
            kwargs["method_params"] = {"ig": ig_params(1, self.ig_tolerance, self.ig_max_steps)}
        elif self.ig_steps is not None:
            kwargs["method_params"] = {"ig": ig_params(self.ig_steps, None)}
        return kwargs

    def key(self) -> tuple:
        """Identity of the engine this configuration builds (one engine per key and process)."""
        return (str(self.data), str(self.models), str(self.manifest), self.device, self.cache_mb, self.ig_steps,
                self.ig_tolerance, self.ig_max_steps)


_PATH_KEYS = ("data", "models", "manifest")


def read_config_file(path: Path | str) -> dict[str, Any]:
    """Keys of a TOML (``.toml``) or JSON file, paths resolved against the file's folder."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'TOML'} ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a table of keys such as data = \"...\" and models = \"...\"")
    known = {f.name for f in fields(AppConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    out = dict(raw)
    for key in _PATH_KEYS:
        if out.get(key):
            p = Path(str(out[key])).expanduser()
            out[key] = p if p.is_absolute() else (path.parent / p)
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="panel serve app.py --args", add_help=False)
    p.add_argument("--data")
    p.add_argument("--models")
    p.add_argument("--manifest")
    p.add_argument("--config")
    p.add_argument("--device")
    p.add_argument("--cache-mb", type=float)
    p.add_argument("--ig-steps", type=int)
    p.add_argument("--ig-tolerance", type=float)
    p.add_argument("--ig-max-steps", type=int)
    p.add_argument("--no-warm", action="store_true")
    return p


def parse_args(argv: Sequence[str]) -> AppConfig:
    """Build the configuration from ``argv`` (``sys.argv[1:]`` under ``panel serve``)."""
    parser = _parser()
    args, unknown = parser.parse_known_args(list(argv))
    if unknown:
        raise ConfigError(f"unknown argument(s) {unknown}; use --data DIR --models DIR or --config FILE")
    values: dict[str, Any] = read_config_file(args.config) if args.config else {}
    for key in ("data", "models", "manifest"):
        if getattr(args, key):
            values[key] = Path(getattr(args, key)).expanduser()
    if args.device:
        values["device"] = args.device
    if args.cache_mb is not None:
        values["cache_mb"] = args.cache_mb
    for key in ("ig_steps", "ig_tolerance", "ig_max_steps"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if args.no_warm:
        values["warm"] = False
    try:
        cfg = AppConfig(**values)
        cfg = replace(cfg, data=Path(cfg.data) if cfg.data else None, models=Path(cfg.models) if cfg.models else None,
                      manifest=Path(cfg.manifest) if cfg.manifest else None, cache_mb=float(cfg.cache_mb),
                      ig_steps=int(cfg.ig_steps) if cfg.ig_steps is not None else None,
                      ig_tolerance=float(cfg.ig_tolerance) if cfg.ig_tolerance is not None else None,
                      ig_max_steps=int(cfg.ig_max_steps), warm=bool(cfg.warm))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad configuration value ({exc})") from None
    if cfg.ig_steps is not None and cfg.ig_steps < 1:
        raise ConfigError("ig_steps must be at least 1")
    try:  # the same checks as evaluate's --ig-tolerance and --ig-max-steps
        ig_params(cfg.ig_steps or 1, cfg.ig_tolerance, cfg.ig_max_steps)
    except ValueError as exc:
        raise ConfigError(f"{exc} (config keys ig_tolerance, ig_max_steps, ig_steps)") from None
    if cfg.cache_mb <= 0:
        raise ConfigError("cache_mb must be positive")
    return cfg

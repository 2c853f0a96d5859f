"""What a sweep computes: categories (data + models), seeds, splits, methods, scores, settings.

A sweep file is TOML (read with ``tomllib``)::

    out = "results"                  # the Parquet store (default: <first models>/results/sweep)
    seeds = "42-51"                  # or a list; default: every seed of each models folder
    splits = ["test"]
    methods = "all"                  # or a list of method keys (imported ones too, see import-maps)
    metrics = ["pointing"]           # extra localisation scores of the main table
    device = "cpu"                   # "cuda": tasks ask the scheduler for a GPU worker

    [method_params.ig]
    n_steps = 25

    [[category]]
    name = "hazelnut"
    data = "data/hazelnut"
    models = "models/hazelnut"       # manifest defaults to <models>/manifest.csv

Relative paths are read from the sweep file's folder.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from pixel_evidence.choices import SCORES, TARGETS, parse_seeds
from pixel_evidence.methods import DEFAULT_METHODS, METHODS

# Images per task. One task of the cheap gradient group costs ~0.1 s of work per image at
# 224 px on this CPU, and the scheduler round trip plus the Parquet write ~20 ms per task
# (benchmarks/sweep.py measures both): 16 images keep the overhead near 1 % for the cheapest
# group while a 100-image test split still gives each seed 7 tasks to spread over workers.
DEFAULT_CHUNK = 16


@dataclass(frozen=True)
class Category:
    """One data folder with the models trained on it."""

    name: str
    data: Path
    models: Path
    manifest: Path | None = None

    @property
    def manifest_path(self) -> Path:
        return self.manifest or self.models / "manifest.csv"


@dataclass(frozen=True)
class SweepSpec:
    categories: tuple[Category, ...]
    out: Path
    seeds: tuple[int, ...] | None = None  # None: every seed of each models folder
    splits: tuple[str, ...] = ("test",)
    methods: tuple[str, ...] = DEFAULT_METHODS
    metrics: tuple[str, ...] = ()
    target: str = "predicted"
    maps_for_good: bool = False
    chunk: int = DEFAULT_CHUNK
    batch_size: int = 8
    device: str = "cpu"
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.categories:
            raise ValueError("a sweep needs at least one category: give --data and --models, or [[category]] tables")
        names = [c.name for c in self.categories]
        unsafe = [n for n in names if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", n)]
        if unsafe:  # the name is a folder of the store (category=<name>)
            raise ValueError(f"category names {unsafe}: use letters, digits, '_', '.' and '-' (name them in the "
                             "sweep file)")
        if len(set(names)) != len(names):
            raise ValueError(f"category names must differ, got {names}; name them in the sweep file")
        bad = sorted(set(self.metrics) - set(SCORES))
        if bad:
            raise ValueError(f"sweep metrics {bad}: a sweep adds localisation scores ({', '.join(SCORES)}) "
                             "to the main table; run `pixel-evidence evaluate --metrics` for the analyses")
        if set(self.splits) - {"test", "train"} or not self.splits:
            raise ValueError(f"splits {list(self.splits)}: choose test and/or train")
        if self.target not in TARGETS:
            raise ValueError(f"target {self.target!r}: choose from {TARGETS}")
        if self.chunk < 1 or self.batch_size < 1:
            raise ValueError(f"chunk ({self.chunk}) and batch size ({self.batch_size}) must be at least 1")

    @property
    def wants_gpu(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def ig_refined(self) -> bool:
        """True when IG is refined to a tolerance (evaluate's default), not a fixed rule."""
        return bool(self.method_params.get("ig", {}).get("tolerance"))


def expand_methods(value: Any) -> tuple[str, ...]:
    """Method keys from a sweep file's or the flags' words: "all" is every computed method,
    beside which imported ones may be named."""
    words = [value] if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(m for w in words for m in (METHODS if w == "all" else (w,))))


def _seeds(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(parse_seeds(value))
    return tuple(int(v) for v in value)


def read_spec(path: Path, **overrides: Any) -> SweepSpec:
    """The sweep of a TOML file; ``overrides`` (flags given beside ``--spec``) win."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: unreadable sweep file ({exc}); see README 'Scale-out' for the format") from None
    here = path.parent

    def local(p: str | None) -> Path | None:
        return None if p is None else (here / p).resolve()

    try:
        categories = tuple(Category(name=str(c.get("name") or Path(c["data"]).name), data=local(c["data"]),
                                    models=local(c["models"]), manifest=local(c.get("manifest")))
                           for c in raw.get("category", []))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: each [[category]] needs data and models ({exc})") from None
    known = {"out", "seeds", "splits", "methods", "metrics", "target", "maps_for_good", "chunk", "batch_size",
             "device", "method_params", "category"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; known: {sorted(known)}")
    from pixel_evidence.results.sweep_store import sweep_dir  # pyarrow: only when a file is read

    default_out = sweep_dir(categories[0].models) if categories else None
    spec = SweepSpec(categories=categories, out=local(raw["out"]) if "out" in raw else default_out,
                     seeds=_seeds(raw.get("seeds")), splits=tuple(raw.get("splits", ("test",))),
                     methods=expand_methods(raw.get("methods", DEFAULT_METHODS)),
                     metrics=tuple(raw.get("metrics", ())), target=raw.get("target", "predicted"),
                     maps_for_good=bool(raw.get("maps_for_good", False)), chunk=int(raw.get("chunk", DEFAULT_CHUNK)),
                     batch_size=int(raw.get("batch_size", 8)), device=raw.get("device", "cpu"),
                     method_params=dict(raw.get("method_params", {})))
    return replace(spec, **{k: v for k, v in overrides.items() if v is not None})


def categories_from_flags(data: Sequence[str], models: Sequence[str],
                          manifests: Sequence[str] = ()) -> tuple[Category, ...]:
    """``--data A B --models MA MB``: paired by position, named by the data folder."""
    if len(data) != len(models):
        raise ValueError(f"--data gives {len(data)} folder(s) and --models {len(models)}: give one models folder "
                         "per data folder, in the same order")
    if manifests and len(manifests) != len(data):
        raise ValueError("--manifest: give one per --data folder, or none (default <models>/manifest.csv)")
    return tuple(Category(name=Path(d).resolve().name, data=Path(d).resolve(), models=Path(m).resolve(),
                          manifest=Path(manifests[i]).resolve() if manifests else None)
                 for i, (d, m) in enumerate(zip(data, models)))

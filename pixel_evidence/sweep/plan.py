"""A sweep as a list of tasks: one (category, seed, split, method group, chunk of images) each.

A task's key is the hash of everything its rows depend on: the checkpoint's weights hash, the
settings hash (manifest, target, scores, method settings, image size, Grad-CAM layer) and its
image ids. Equal inputs give equal keys, so a finished task is recognised by its files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from pixel_evidence.data import read_manifest
from pixel_evidence.engine.cache import digest
from pixel_evidence.explainers import get_explainer
from pixel_evidence.files import file_sha256
from pixel_evidence.imported_maps import ImportedMaps
from pixel_evidence.methods import METHODS
from pixel_evidence.models.checkpoint import scan_seeds
from pixel_evidence.sweep.costs import method_seconds
from pixel_evidence.sweep.spec import Category, SweepSpec

# Methods cheaper than this (seconds per image, the benchmark's numbers) share one task: most
# of them ride on one gradient pass, and each alone would be too small to pay a task's overhead.
CHEAP_SECONDS = 0.1


@dataclass(frozen=True)
class Task:
    category: Category
    seed: int
    split: str
    methods: tuple[str, ...]
    image_ids: tuple[str, ...]
    checkpoint_sha256: str
    settings_sha256: str
    key: str
    n_mapped: int  # images that get maps (the others only a prediction): what the cost plan counts

    @property
    def label(self) -> str:
        return f"{self.category.name} seed {self.seed} {self.split} {'+'.join(self.methods)} ({len(self.image_ids)} img)"


def method_groups(methods: Sequence[str], costs: dict[str, float]) -> list[tuple[str, ...]]:
    """The cheap methods together (first: their rows come in minutes), then every other
    method on its own, costliest first so that the long tasks do not start last. A method
    without a cost is an imported one: its maps are read, not computed."""
    cheap = tuple(m for m in methods if costs.get(m, 0.0) < CHEAP_SECONDS)
    dear = sorted((m for m in methods if costs.get(m, 0.0) >= CHEAP_SECONDS), key=lambda m: -costs[m])
    return ([cheap] if cheap else []) + [(m,) for m in dear]


def settings_of(spec: SweepSpec, meta: dict[str, Any], manifest_sha256: str, methods: Sequence[str],
                params_of: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Everything besides the weights and the images that a task's rows depend on."""
    return {"manifest_sha256": manifest_sha256, "target": spec.target, "metrics": sorted(spec.metrics),
            "maps_for_good": spec.maps_for_good, "image_size": meta["image_size"],
            "cam_layer": meta.get("cam_layer"), "methods": {m: params_of(m) for m in methods}}


def params_by_method(spec: SweepSpec, category: Category, imported: ImportedMaps) -> Callable[[str], dict[str, Any]]:
    """What each method's maps depend on: a computed method's settings, an imported one's
    content; a method that is neither is refused, naming what the category offers."""
    unknown = [m for m in spec.methods if m not in METHODS and m not in imported.methods]
    if unknown:
        offered = f"; imported in {category.models}: {', '.join(imported.methods)}" if imported.methods else ""
        raise ValueError(f"{category.name}: unknown method(s) {unknown}; choose from {', '.join(METHODS)} or "
                         f"\"all\"{offered}" + "".join(f" ({w})" for w in imported.warnings))

    def params(m: str) -> dict[str, Any]:
        if m in imported.methods:
            return imported.params(m)
        return {**get_explainer(m).defaults, **spec.method_params.get(m, {})}

    return params


def _chunks(ids: Sequence[str], size: int) -> list[tuple[str, ...]]:
    return [tuple(ids[i:i + size]) for i in range(0, len(ids), size)]


def category_tasks(spec: SweepSpec, category: Category, groups: list[tuple[str, ...]]) -> list[Task]:
    finished, problems = scan_seeds(category.models)
    seeds = spec.seeds if spec.seeds is not None else tuple(sorted(finished))
    missing = [s for s in seeds if s not in finished]
    if missing:
        why = "; ".join(problems[s] for s in missing if s in problems)
        raise ValueError(f"{category.models}: no finished model for seed(s) {missing}"
                         f"{': ' + why if why else ''}; train them or leave them out of --seeds")
    if not seeds:
        raise ValueError(f"{category.models}: no trained models; train them with `pixel-evidence train`")
    samples = read_manifest(category.manifest_path)
    manifest_sha256 = file_sha256(category.manifest_path)
    params_of = params_by_method(spec, category, ImportedMaps(category.models, finished, manifest_sha256))
    every_map = spec.maps_for_good or not any(s.has_mask for s in samples)
    mapped = {s.id for s in samples if every_map or s.has_mask}
    tasks = []
    for split in spec.splits:
        ids = [s.id for s in samples if s.split == split]
        for seed in seeds:
            meta = finished[seed]
            for group in groups:
                settings = digest(settings_of(spec, meta, manifest_sha256, group, params_of))
                for chunk in _chunks(ids, spec.chunk):
                    key = digest(category.name, seed, split, group, chunk, meta["weights_sha256"], settings)[:32]
                    tasks.append(Task(category, seed, split, group, chunk, meta["weights_sha256"], settings, key,
                                      sum(i in mapped for i in chunk)))
    return tasks


def plan(spec: SweepSpec, costs: dict[str, float] | None = None) -> list[Task]:
    """Every task of the sweep: by category, split, seed, then method group (``method_groups``)."""
    costs = costs or method_seconds(ig_refined=spec.ig_refined)
    groups = method_groups(spec.methods, costs)
    return [t for c in spec.categories for t in category_tasks(spec, c, groups)]

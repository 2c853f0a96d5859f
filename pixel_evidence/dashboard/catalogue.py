"""What can be shown: seeds, splits, classes, image ids and methods, read once from the engine.

A plain snapshot, so the state object and its validation can be tested without models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from pixel_evidence.engine.contract import Engine
from pixel_evidence.methods import DEFAULT_METHODS, METHODS

SPLITS = ("test", "train")
TARGETS = ("predicted", "true")
GOOD = "good"


@dataclass(frozen=True)
class Catalogue:
    seeds: tuple[int, ...]
    classes: tuple[str, ...]
    images: Mapping[tuple[str, str], tuple[str, ...]]   # (split, class) -> ids in manifest order
    image_home: Mapping[str, tuple[str, str]]           # id -> (split, class)
    method_labels: Mapping[str, str]                    # key -> label, registry order, then imported
    default_methods: tuple[str, ...]
    cost_notes: Mapping[str, str] = field(default_factory=dict)
    method_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    image_sizes: Mapping[int, int] = field(default_factory=dict)
    seed_models: Mapping[int, str] = field(default_factory=dict)  # seed -> "backbone, kind, training mode"
    slow_methods: frozenset[str] = frozenset()          # perturbation methods: hundreds of forwards
    opening: str = ""                                   # the image a link without one opens (see opening_image)
    has_masks: bool = True                              # False: mask-free data, no top-K scores at all
    # the stochastic-noise study beside the models (results.noise_study.NoiseStudy) or None, and the
    # methods whose settings here are the study's, whose measured noise applies to this dashboard's maps
    noise: Any = None
    noise_methods: frozenset[str] = frozenset()

    @classmethod
    def from_engine(cls, engine: Engine, tko: Any = None, noise: Any = None) -> "Catalogue":
        """What ``engine`` can show; ``tko``, the evaluation's main table beside its models
        (None: none), picks the image a link without one opens (:func:`opening_image`);
        ``noise``, the stochastic-noise study beside them (None: none)."""
        from pixel_evidence.imported_maps import COST_NOTE as IMPORTED_COST_NOTE
        from pixel_evidence.models import model_description

        images: dict[tuple[str, str], list[str]] = {}
        home: dict[str, tuple[str, str]] = {}
        for split in SPLITS:
            for image_id in engine.catalogue.image_ids(split):
                cls_name = engine.catalogue.sample(image_id).cls
                images.setdefault((split, cls_name), []).append(image_id)
                home[image_id] = (split, cls_name)
        labels = dict(engine.method_labels())
        defaults = tuple(m for m in DEFAULT_METHODS if m in labels)
        return cls(
            seeds=tuple(engine.pool.seeds), classes=tuple(engine.catalogue.classes),
            images={k: tuple(v) for k, v in images.items()}, image_home=home, method_labels=labels,
            default_methods=defaults,
            cost_notes={k: METHODS[k].cost_note if k in METHODS else IMPORTED_COST_NOTE for k in labels},
            method_params={k: engine.params_of(k) for k in labels},
            image_sizes={s: engine.pool.image_size(s) for s in engine.pool.seeds},
            seed_models={s: model_description(engine.pool.meta[s]) for s in engine.pool.seeds},
            slow_methods=frozenset(k for k in labels if k in METHODS and METHODS[k].slow),
            has_masks=engine.catalogue.has_masks,
            noise=noise,
            noise_methods=frozenset(m for m, p in (noise.params if noise else {}).items()
                                    if m in labels and dict(engine.params_of(m)) == p),
            opening=opening_image(tko, engine.pool.seeds[0], defaults, home) if engine.pool.seeds and defaults else "")

    # ------------------------------------------------------------------ queries

    def model_note(self, seed: int) -> str:
        """What the sidebar says of ``seed``'s model: backbone, kind, training mode, image size.
        Each seed is described by its own metadata, so one models folder may mix them."""
        parts = [self.seed_models.get(seed), f"{self.image_sizes[seed]} px" if seed in self.image_sizes else None]
        return " · ".join(p for p in parts if p)

    def image_ids(self, split: str, cls: str) -> tuple[str, ...]:
        return tuple(self.images.get((split, cls), ()))

    def classes_in(self, split: str) -> list[str]:
        """Classes with at least one image in ``split`` (all classes if none has any)."""
        present = [c for c in self.classes if self.images.get((split, c))]
        return present or list(self.classes)

    def default_class(self, split: str) -> str:
        """The first defect class with images: the first page should have something to rank."""
        present = self.classes_in(split)
        return next((c for c in present if c != GOOD), present[0])

    def option_label(self, key: str) -> str:
        """The method's name in the sidebar: the cost shows before anyone picks a slow method."""
        label = self.method_labels[key]
        return f"{label} (slow)" if key in self.slow_methods else label

    def method_options(self) -> dict[str, str]:
        """Sidebar label -> key, registry order."""
        return {self.option_label(key): key for key in self.method_labels}

    def label_to_key(self) -> dict[str, str]:
        """Lower-case label -> key; the sidebar's "(slow)" labels are accepted too (copied text)."""
        plain = {label.lower(): key for key, label in self.method_labels.items()}
        return {**{label.lower(): key for label, key in self.method_options().items()}, **plain}

    def parse_methods(self, text: str | Sequence[str]) -> tuple[list[str], list[str]]:
        """Method keys from ``"gradcam,ig"`` (keys or labels, any case); also the unknown words."""
        items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t and t.strip()]
        by_label = self.label_to_key()
        keys, unknown = [], []
        for item in items:
            key = item if item in self.method_labels else by_label.get(item.lower())
            if key is None:
                unknown.append(item)
            elif key not in keys:
                keys.append(key)
        return keys, unknown


def opening_image(tko: Any, seed: int, methods: Sequence[str], known: Mapping[str, Any]) -> str:
    """The image a link that names none opens: of ``seed``'s correctly classified test defect
    images in ``tko`` (the evaluation's main table), the one whose TKO differs most between
    ``methods`` (highest minus lowest), so the first view shows the methods disagreeing; the
    table's first such image on a tie. "" without a table, or when no image qualifies."""
    if tko is None or tko.empty:
        return ""
    rows = tko[(tko["seed"] == seed) & (tko["split"] == "test") & tko["method"].isin(list(methods))
               & (tko["k"] > 0) & tko["correct"].astype(bool) & tko["image_id"].isin(list(known))]
    if rows.empty:
        return ""
    by_image = rows.groupby("image_id", sort=False)["tko"]
    spread = (by_image.max() - by_image.min())[by_image.count() == len(methods)]
    return str(spread.idxmax()) if not spread.empty else ""

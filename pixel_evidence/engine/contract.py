"""What the dashboard asks of the engine, as typing Protocols: no torch, so the dashboard can
name the engine's type without importing it.

``ExplanationEngine`` satisfies :class:`Engine`; so does any stand-in a test builds. The
dashboard reads images and classes from the engine's ``catalogue`` (an ``ImageCatalogue``,
torch-free), the trained models' facts from its ``pool`` (:class:`Models`), unit overlays
from its ``dissector`` (:class:`UnitPictures`), and calls the methods named here for
everything that runs a model.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from pixel_evidence.checks.results import Curve, SanityResult
from pixel_evidence.dissection.overlay import UnitOverlay
from pixel_evidence.engine.catalogue import ImageCatalogue
from pixel_evidence.engine.explanation import Explanation


class Models(Protocol):
    """The trained models the engine serves, one per seed (``ModelPool``)."""

    @property
    def models_dir(self) -> Path: ...

    @property
    def seeds(self) -> Sequence[int]: ...

    @property
    def meta(self) -> Mapping[int, Mapping[str, Any]]:
        """Each seed's checkpoint metadata (backbone, image size, training history, ...)."""
        ...

    def image_size(self, seed: int) -> int:
        """Side in pixels of the images seed ``seed``'s model sees."""
        ...


class UnitPictures(Protocol):
    """Where units of a stage fire (``Dissector``)."""

    def overlays(self, seed: int, stage: str, units: Sequence[int], thresholds: Sequence[float],
                 tie_shares: Sequence[float], image_ids: Sequence[str]) -> list[list[UnitOverlay]]:
        """One list per unit, one overlay per image in ``image_ids`` order."""
        ...


class Engine(Protocol):
    """Everything the dashboard asks of the explanation engine."""

    @property
    def catalogue(self) -> ImageCatalogue: ...

    @property
    def pool(self) -> Models: ...

    @property
    def dissector(self) -> UnitPictures: ...

    @property
    def warnings(self) -> list[str]:
        """Lines for the page: seeds left out, images missing, data changed since training."""
        ...

    def method_labels(self) -> dict[str, str]: ...

    def params_of(self, method: str) -> dict[str, Any]: ...

    def explain(self, seed: int, image_id: str, *, split: str | None = None, methods: Iterable[str] = ...,
                target: str = "predicted") -> Explanation: ...

    def precompute(self, seed: int, split: str, methods: Iterable[str] = ..., target: str = "predicted",
                   progress: Callable[[int, int], None] | None = None,
                   stop: threading.Event | None = None) -> Future[int]: ...

    def faithfulness(self, ex: Explanation, *, start: str = "black",
                     steps: int = 20) -> dict[str, dict[str, Curve]]: ...

    def sanity(self, ex: Explanation, methods: Iterable[str] | None = None) -> dict[str, SanityResult]: ...

    def close(self) -> None: ...

"""The images an engine serves: the split manifest, its classes, and reading images at model size."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .data import DataError, Sample, load_image, load_mask, read_manifest
from .files import file_sha256

SPLITS = ("train", "test")


class ImageCatalogue:
    """The manifest's samples over a category root, looked up by id, split and class.

    Every listed image must exist under ``data_root``: a missing one is a ``DataError``
    naming it, raised here rather than on the first request for it.
    """

    def __init__(self, data_root: Path, manifest: Path):
        self.data_root = Path(data_root)
        self.manifest_path = Path(manifest)
        self.samples: list[Sample] = read_manifest(self.manifest_path)
        self.manifest_sha256 = file_sha256(self.manifest_path)
        self.classes = tuple(sorted({s.cls for s in self.samples}))
        self._by_id = {s.id: s for s in self.samples}
        missing = next((s for s in self.samples if not (self.data_root / s.path).is_file()), None)
        if missing is not None:
            raise DataError(f"{self.data_root / missing.path}: listed in {self.manifest_path} but missing; "
                            "point --data at the category the models were trained on")

    def sample(self, image_id: str) -> Sample:
        try:
            return self._by_id[image_id]
        except KeyError:
            raise KeyError(f"unknown image id {image_id!r}") from None

    def image_ids(self, split: str, cls: str | None = None) -> list[str]:
        """Ids of ``split`` ("train"/"test"), optionally one class, in manifest order."""
        if split not in SPLITS:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return [s.id for s in self.samples if s.split == split and (cls is None or s.cls == cls)]

    def class_index(self, sample: Sample) -> int:
        return self.classes.index(sample.cls)

    def load(self, samples: Sequence[Sample], size: int) -> tuple[np.ndarray, np.ndarray]:
        """Images (N, size, size, 3) uint8 and defect masks (N, size, size) bool."""
        images = np.stack([load_image(self.data_root, s, size) for s in samples])
        masks = np.stack([load_mask(self.data_root, s, size) for s in samples])
        return images, masks

"""The images an engine serves: the split manifest, its classes, and reading images at model size."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from pixel_evidence.data import DataError, Sample, dataset_fingerprint, load_image, load_mask, read_manifest
from pixel_evidence.data.images import check_pair, mask_files
from pixel_evidence.files import file_sha256

SPLITS = ("train", "test")

log = logging.getLogger("pixel_evidence.engine")


class ImageCatalogue:
    """The manifest's samples over a category root, looked up by id, split and class.

    A listed image or mask missing under ``data_root`` leaves out that image only: ``missing``
    names the file (one line per image, also logged), and asking for the image is a
    ``DataError`` naming it (see ``data.load_image``). When half the listed images or more are
    missing, ``data_root`` is taken for the wrong folder and the catalogue itself is a
    ``DataError``. Each pair is checked again as it is read (see ``data.load_mask``).
    """

    def __init__(self, data_root: Path, manifest: Path):
        self.data_root = Path(data_root)
        self.manifest_path = Path(manifest)
        self.samples: list[Sample] = read_manifest(self.manifest_path)
        self.manifest_sha256 = file_sha256(self.manifest_path)
        self.classes = tuple(sorted({s.cls for s in self.samples}))
        # False for mask-free data (class folders only): every mask score then needs masks
        self.has_masks = any(s.has_mask for s in self.samples)
        self._by_id = {s.id: s for s in self.samples}
        # image id -> the line naming its missing image or mask
        self.missing: dict[str, str] = {}
        for s in self.samples:
            # a mask path may name a folder of masks to unite (MVTec LOCO AD, AutoVI)
            gone = next((path for path in (s.path, s.mask_path)
                         if path and not any(p.is_file() for p in mask_files(self.data_root, path))), None)
            if gone is not None:
                self.missing[s.id] = (f"{self.data_root / gone}: listed in {self.manifest_path} but missing; "
                                      "restore it, or point --data at the category the models were trained on")
        if self.samples and 2 * len(self.missing) >= len(self.samples):  # the wrong folder, not a few lost files
            raise DataError(f"{next(iter(self.missing.values()))} (and so are {len(self.missing) - 1} of the other "
                            f"{len(self.samples) - 1} listed images)")
        for line in self.missing.values():
            log.warning("%s", line)

    def changes_since_training(self, meta: Mapping[int, Mapping[str, Any]]) -> list[str]:
        """One line for the seeds (``meta`` by seed) trained on other images or masks than
        the listed ones, and one for seeds that record no dataset fingerprint; else none.

        The fingerprint is the full content hash that training records: on the built-in set
        (720 images, 1040 files, 64 MB) it takes 0.07 s with the files in the page cache and
        0.17 s without, cheap enough for every engine start, so no cheaper stand-in such as
        (path, size, mtime) is kept. A single hash cannot say which file changed.
        """
        if self.missing:  # no fingerprint without every file; ``missing_note`` says what changed
            return []
        recorded = {seed: m.get("dataset_fingerprint") for seed, m in meta.items()}
        current = dataset_fingerprint(self.data_root, self.samples)
        changed = sorted(seed for seed, fingerprint in recorded.items() if fingerprint not in (None, current))
        unknown = sorted(seed for seed, fingerprint in recorded.items() if fingerprint is None)
        lines = []
        if changed:
            lines.append(f"{self.data_root}: the images or masks listed in {self.manifest_path.name} differ from "
                         f"those seeds {changed} were trained on (dataset fingerprint {current[:12]}, recorded "
                         f"{recorded[changed[0]][:12]}); their scores may not hold: point --data at the data they "
                         "were trained on or retrain them with `pixel-evidence train --models <their folder> --force`")
        if unknown:
            lines.append(f"seeds {unknown} record no dataset fingerprint: whether {self.data_root} is the data "
                         "they were trained on cannot be checked")
        for line in lines:
            log.warning("%s", line)
        return lines

    def missing_note(self) -> list[str]:
        """One line for the listed images left out because a file is missing (none when all are there)."""
        if not self.missing:
            return []
        first = next(iter(self.missing.values()))
        more = f" (and {len(self.missing) - 1} other image(s), see the log)" if len(self.missing) > 1 else ""
        return [f"image {next(iter(self.missing))} left out{more}: {first}"]

    def unreadable(self, image_ids: Iterable[str]) -> dict[str, str]:
        """Of ``image_ids``, those whose image or mask is missing or cannot be used (an
        undecodable mask, a mask of another size, an image without a readable header), each
        with the line naming the file. Masks are decoded, images only opened: decoding them
        too would take 13 s instead of 0.7 s for the built-in set's 720 on a busy machine."""
        found = {}
        for image_id in image_ids:
            if image_id in self.missing:
                found[image_id] = self.missing[image_id]
                continue
            try:
                check_pair(self.data_root, self.sample(image_id), decode_image=False)
            except DataError as err:
                found[image_id] = str(err)
        return found

    def empty_mask(self, sample: Sample) -> str:
        """The line naming the mask of defect image ``sample`` when it came out with no defect
        pixels at model size: bad data, not a defect-free image."""
        return (f"{self.data_root / sample.mask_path}: the mask of {sample.cls} image {sample.id} has no defect "
                "pixels at model size (empty, or a defect smaller than a pixel once resized), so the image is "
                "left out of the scores and win rates; fix the mask or remove the image")

    def empty_masks(self, image_ids: Iterable[str]) -> list[str]:
        """:meth:`empty_mask` of each defect image among ``image_ids`` (ids of images found with K = 0)."""
        samples = (self._by_id.get(i) for i in dict.fromkeys(image_ids))
        return [self.empty_mask(s) for s in samples if s is not None and s.has_mask]

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

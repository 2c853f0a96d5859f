"""The split manifest: which image is in train and which in test, as a CSV beside the models."""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from pixel_evidence.data.images import mask_files
from pixel_evidence.data.layouts import scan_data
from pixel_evidence.data.sample import DEFAULT_MASK_THRESHOLD, LEGACY_MASK_THRESHOLD, DataError, Sample
from pixel_evidence.files import atomic_write_text

MANIFEST_FIELDS = ("id", "path", "class", "split", "has_mask", "mask_path")
# The rule each mask was binarised with (see images.defect_pixels), so that scores say which
# masks they used; manifests written before it lack the column and used every value above 0.
MASK_THRESHOLD_FIELD = "mask_threshold"


def stratified_split(samples: Sequence[Sample], *, test_fraction: float = 0.2,
                     split_seed: int = 0) -> list[Sample]:
    """Assign every sample to ``train`` or ``test``, per class, seeded.

    Each class puts ``ceil(test_fraction * n)`` images in test (at least one when it has two
    or more), so every defect class keeps at least ``test_fraction`` of its images for test.
    The result depends only on the ids and the seed, not on listing order.
    """
    if not 0 < test_fraction < 1:
        raise DataError(f"test fraction {test_fraction} must lie strictly between 0 and 1")
    by_class: dict[str, list[Sample]] = {}
    for s in sorted(samples, key=lambda s: s.id):
        by_class.setdefault(s.cls, []).append(s)
    out: list[Sample] = []
    for i, cls in enumerate(sorted(by_class)):
        group = by_class[cls]
        rng = np.random.default_rng([split_seed, i])
        order = rng.permutation(len(group))
        n_test = min(len(group) - 1, math.ceil(test_fraction * len(group))) if len(group) > 1 else 0
        test_idx = set(order[:n_test].tolist())
        out += [replace(s, split="test" if j in test_idx else "train") for j, s in enumerate(group)]
    return sorted(out, key=lambda s: s.id)


def manifest_text(samples: Iterable[Sample], *, mask_thresholds: bool = True) -> str:
    """The manifest CSV; ``mask_thresholds`` False writes the earlier format without the
    mask threshold column (for rewriting such a manifest, byte for byte where nothing changed)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MANIFEST_FIELDS + (MASK_THRESHOLD_FIELD,) * mask_thresholds)
    for s in samples:
        threshold = (f"{s.mask_threshold:g}" if s.has_mask else "",) * mask_thresholds
        writer.writerow([s.id, s.path, s.cls, s.split, int(s.has_mask), s.mask_path or "", *threshold])
    return buf.getvalue()


def has_mask_thresholds(path: Path) -> bool:
    """Whether the manifest at ``path`` records its mask thresholds (written since they exist)."""
    with open(path, newline="") as fh:
        return MASK_THRESHOLD_FIELD in next(csv.reader(fh), [])


def write_manifest(path: Path, samples: Iterable[Sample]) -> str:
    """Write the manifest CSV atomically; return its sha256."""
    text = manifest_text(samples)
    atomic_write_text(Path(path), text)
    return hashlib.sha256(text.encode()).hexdigest()


def read_manifest(path: Path) -> list[Sample]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: manifest not found; create it with `pixel-evidence data split`")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = set(MANIFEST_FIELDS) - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: not a manifest, missing columns {sorted(missing)}; "
                            "recreate it with `pixel-evidence data split`")
        rows = [Sample(r["id"], r["path"], r["class"], r["mask_path"] or None, r["split"],
                       _mask_threshold(r.get(MASK_THRESHOLD_FIELD), f"{path} line {reader.line_num}"))
                for r in reader]
    bad = [r.split for r in rows if r.split not in ("train", "test")]
    if bad:
        raise DataError(f"{path}: split must be train or test, found {bad[0]!r}")
    return rows


def _mask_threshold(text: str | None, where: str) -> float:
    if text is None:  # an earlier manifest, without the column
        return LEGACY_MASK_THRESHOLD
    if not text:  # an image without a mask
        return DEFAULT_MASK_THRESHOLD
    try:
        return check_mask_threshold(float(text))
    except ValueError:
        raise DataError(f"{where}: mask_threshold must be a number from 0 to 1, found {text!r}") from None


def check_mask_threshold(value: float) -> float:
    """``value`` when it is a share of a mask's highest value, from 0 (every value above 0)
    to just below 1 (at 1 no pixel could lie above the highest value)."""
    if not 0 <= value < 1:
        raise DataError(f"mask threshold {value:g} must be at least 0 and below 1 (a share of each mask's highest "
                        "value; 0.5 is half its range, 0 counts every value above 0)")
    return value


def dataset_fingerprint(root: Path, samples: Iterable[Sample]) -> str:
    """sha256 over the relative paths and bytes of every image and mask listed."""
    h = hashlib.sha256()
    for s in sorted(samples, key=lambda s: s.id):
        files = [Path(root) / s.path] + (mask_files(root, s.mask_path) if s.mask_path else [])
        for path in files:
            h.update(path.relative_to(root).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def prepare_manifest(root: Path, manifest: Path, *, test_fraction: float = 0.2, split_seed: int = 0,
                     skip_bad: bool = False, report: Callable[[str], None] | None = None,
                     layout: str | None = None, mask_threshold: float | None = None) -> list[Sample]:
    """Scan ``root`` (in ``layout``, recognised when None) and return the split of
    ``manifest``: the existing one, checked against the data, or else a new one, written to
    ``manifest``: the data's own split when its reader gives every image one (a
    ``split.csv``), else the stratified split. ``mask_threshold`` binarises every mask
    (None: the layout's own rule, half each mask's range but for VisA's label masks).

    An existing manifest is never silently re-split: an image it lists that is now missing
    or bad is a ``DataError`` naming it, images added since are reported, left out, and a
    ``mask_threshold`` other than the one it records is a ``DataError``.
    """
    manifest = Path(manifest)
    samples, _ = scan_data(root, layout, skip_bad=skip_bad, report=report)
    if mask_threshold is not None:
        samples = [replace(s, mask_threshold=check_mask_threshold(mask_threshold)) for s in samples]
    if not manifest.is_file():
        if all(s.split for s in samples):  # the data's own split (split.csv)
            samples = sorted(samples, key=lambda s: s.id)
        else:
            samples = stratified_split(samples, test_fraction=test_fraction, split_seed=split_seed)
        write_manifest(manifest, samples)
        return samples
    listed = read_manifest(manifest)
    found = {s.path for s in samples}
    lost = next((s for s in listed if s.path not in found), None)
    if lost is not None:
        raise DataError(f"{Path(root) / lost.path}: listed in {manifest} but missing or skipped as bad; restore it, "
                        "or re-split with `pixel-evidence data split --force` (models trained on the old split "
                        "will no longer load)")
    other = next((s for s in listed if s.has_mask and mask_threshold not in (None, s.mask_threshold)), None)
    if other is not None:
        raise DataError(f"{manifest} binarises the masks at {other.mask_threshold:g}, not --mask-threshold "
                        f"{mask_threshold:g}; leave the option out, or re-split with `pixel-evidence data split "
                        "--force` (models trained on the old split will no longer load)")
    known = {s.path for s in listed}
    added = [s.path for s in samples if s.path not in known]
    if added and report:
        report(f"{len(added)} image(s) under {root} are not in {manifest} (first: {added[0]}) and are left out; "
               "re-split with `pixel-evidence data split --force` to use them")
    return listed

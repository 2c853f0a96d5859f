"""Reading MVTec-AD-layout category folders, the split manifest, and deterministic transforms.

Layout of a category root (the official one, and what the synthetic generator writes)::

    <root>/train/good/*.png
    <root>/test/<class>/*.png
    <root>/ground_truth/<class>/<stem>_mask.png     (defect classes only)

Every image gets one stable id from its place in that tree, ``<origin>-<class>-<stem>``
(e.g. ``test-crack-003``, ``train-good-017``), used in results, the dashboard and URLs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

GOOD = "good"
MANIFEST_FIELDS = ("id", "path", "class", "split", "has_mask", "mask_path")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class DataError(ValueError):
    """Input data is not usable; the message names the file and how to fix it."""


@dataclass(frozen=True)
class Sample:
    """One image of a category. Paths are relative to the category root."""

    id: str
    path: str
    cls: str
    mask_path: str | None
    split: str = ""

    @property
    def has_mask(self) -> bool:
        return self.mask_path is not None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _check_readable(path: Path) -> tuple[int, int]:
    """Return (width, height); raise DataError if the file cannot be decoded."""
    try:
        with Image.open(path) as im:
            size = im.size
            im.load()
    except Exception as exc:
        raise DataError(f"{path}: unreadable or truncated image ({exc}); replace or remove the file") from None
    return size


def scan_category(root: Path, *, skip_bad: bool = False,
                  report: Callable[[str], None] | None = None) -> tuple[list[Sample], list[str]]:
    """List every image of an MVTec-layout category and check it.

    Returns ``(samples, classes)``; classes are the class folder names, sorted, ``good``
    included. Each bad file raises ``DataError`` naming it, unless ``skip_bad`` is set: the
    file is then left out and ``report`` is called with the same message.
    """
    root = Path(root)
    if not (root / "train" / GOOD).is_dir() or not (root / "test").is_dir():
        raise DataError(
            f"{root} is not an MVTec AD category folder: expected {root}/train/good and "
            f"{root}/test/<class>; point --data at a category such as data/hazelnut")
    classes = sorted({GOOD} | {p.name for p in (root / "test").iterdir() if p.is_dir()})
    folders = [("train", GOOD, root / "train" / GOOD)]
    folders += [("test", c, root / "test" / c) for c in classes if (root / "test" / c).is_dir()]

    samples: list[Sample] = []
    for origin, cls, folder in folders:
        files = _image_files(folder)
        if not files:
            raise DataError(f"{folder} holds no images; add its images or remove the empty folder")
        for path in files:
            try:
                samples.append(_checked_sample(root, origin, cls, path))
            except DataError as err:
                if not skip_bad:
                    raise
                if report:
                    report(f"skipped: {err}")
    return samples, classes


def _checked_sample(root: Path, origin: str, cls: str, path: Path) -> Sample:
    size = _check_readable(path)
    mask_rel = None
    if cls != GOOD:
        mask = root / "ground_truth" / cls / f"{path.stem}_mask.png"
        if not mask.is_file():
            raise DataError(f"{path}: defect image without its mask; expected {mask}")
        mask_size = _check_readable(mask)
        if mask_size != size:
            raise DataError(f"{mask}: mask is {mask_size[0]}x{mask_size[1]} but its image "
                            f"{path.name} is {size[0]}x{size[1]}; masks must match their image")
        mask_rel = mask.relative_to(root).as_posix()
    return Sample(id=f"{origin}-{cls}-{path.stem}", path=path.relative_to(root).as_posix(),
                  cls=cls, mask_path=mask_rel)


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
        out += [Sample(s.id, s.path, s.cls, s.mask_path, "test" if j in test_idx else "train")
                for j, s in enumerate(group)]
    return sorted(out, key=lambda s: s.id)


def manifest_text(samples: Iterable[Sample]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MANIFEST_FIELDS)
    for s in samples:
        writer.writerow([s.id, s.path, s.cls, s.split, int(s.has_mask), s.mask_path or ""])
    return buf.getvalue()


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
        rows = [Sample(r["id"], r["path"], r["class"], r["mask_path"] or None, r["split"]) for r in reader]
    bad = [r.split for r in rows if r.split not in ("train", "test")]
    if bad:
        raise DataError(f"{path}: split must be train or test, found {bad[0]!r}")
    return rows


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def dataset_fingerprint(root: Path, samples: Iterable[Sample]) -> str:
    """sha256 over the relative paths and bytes of every image and mask listed."""
    h = hashlib.sha256()
    for s in sorted(samples, key=lambda s: s.id):
        for rel in (s.path, s.mask_path):
            if rel:
                h.update(rel.encode() + b"\0")
                h.update(hashlib.sha256((Path(root) / rel).read_bytes()).digest())
    return h.hexdigest()


def prepare_manifest(root: Path, manifest: Path, *, test_fraction: float = 0.2, split_seed: int = 0,
                     skip_bad: bool = False, report: Callable[[str], None] | None = None) -> list[Sample]:
    """Read ``manifest`` if it exists, else scan ``root``, split it, and write the manifest."""
    manifest = Path(manifest)
    if manifest.is_file():
        return read_manifest(manifest)
    samples, _ = scan_category(root, skip_bad=skip_bad, report=report)
    samples = stratified_split(samples, test_fraction=test_fraction, split_seed=split_seed)
    write_manifest(manifest, samples)
    return samples


# ---------------------------------------------------------------- transforms

def load_image(root: Path, sample: Sample, size: int) -> np.ndarray:
    """RGB image resized to ``size`` x ``size`` (bilinear): uint8 array (size, size, 3).

    Deterministic: no crop, no flip. Used for evaluation, display and as training input
    before augmentation.
    """
    path = Path(root) / sample.path
    try:
        with Image.open(path) as im:
            im = im.convert("RGB").resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8).copy()
    except Exception as exc:
        raise DataError(f"{path}: unreadable or truncated image ({exc}); replace or remove the file") from None


def load_mask(root: Path, sample: Sample, size: int) -> np.ndarray:
    """Binary defect mask at ``size`` x ``size``: bool array; all False for good images.

    Nearest-neighbour resize then threshold, so the mask stays binary and K (its pixel
    count) is exactly what the metrics see.
    """
    if sample.mask_path is None:
        return np.zeros((size, size), dtype=bool)
    path = Path(root) / sample.mask_path
    try:
        with Image.open(path) as im:
            im = im.convert("L").resize((size, size), Image.NEAREST)
            return np.asarray(im) > 127
    except Exception as exc:
        raise DataError(f"{path}: unreadable or truncated mask ({exc}); replace or remove the file") from None


def load_arrays(root: Path, samples: Sequence[Sample], classes: Sequence[str], size: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images (N, size, size, 3) uint8, masks (N, size, size) bool, labels (N,) int64."""
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({s.cls for s in samples} - set(index))
    if unknown:
        raise DataError(f"classes {unknown} are not among the model's classes {list(classes)}")
    images = np.stack([load_image(root, s, size) for s in samples]) if samples else np.zeros((0, size, size, 3), np.uint8)
    masks = np.stack([load_mask(root, s, size) for s in samples]) if samples else np.zeros((0, size, size), bool)
    labels = np.array([index[s.cls] for s in samples], dtype=np.int64)
    return images, masks, labels


def to_normalized_tensor(images: np.ndarray, mean: Sequence[float], std: Sequence[float]):
    """uint8 (N, H, W, 3) or (H, W, 3) -> float32 torch tensor (N, 3, H, W), normalized."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images))
    if x.ndim == 3:
        x = x[None]
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s

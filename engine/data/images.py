"""Deterministic transforms: an image or mask at model size, and the normalized input tensor."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .sample import DataError, Sample


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

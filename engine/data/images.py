"""Deterministic transforms: an image or mask at model size, and the normalized input tensor."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .sample import DataError, Sample


def _opened(path: Path, what: str, *, decode: bool = True) -> Image.Image:
    """``path`` opened as an image (fully decoded unless ``decode`` is False: header only).

    A missing or undecodable file is a ``DataError`` naming it; ``what`` says which.
    """
    try:
        im = Image.open(path)
        if decode:
            im.load()
    except FileNotFoundError:
        raise DataError(f"{path}: {what} missing; restore it, or re-split the category without it") from None
    except Exception as exc:
        raise DataError(f"{path}: unreadable or truncated {what} ({exc}); replace or remove the file") from None
    return im


def _checked_mask(root: Path, sample: Sample) -> Image.Image | None:
    """The decoded mask of ``sample`` (None for a good image), which must exist and have
    the size of its image: a mask of another size would be stretched onto the image and
    silently give wrong scores."""
    if sample.mask_path is None:
        return None
    image_path, mask_path = Path(root) / sample.path, Path(root) / sample.mask_path
    if not mask_path.is_file():
        raise DataError(f"{image_path}: defect image without its mask, {mask_path} is missing; "
                        "add the mask or remove the image")
    mask = _opened(mask_path, "mask")
    with _opened(image_path, "image", decode=False) as image:
        if mask.size != image.size:
            raise DataError(f"{mask_path}: mask is {mask.size[0]}x{mask.size[1]} but its image {image_path.name} "
                            f"is {image.size[0]}x{image.size[1]}; masks must match their image")
    return mask


def check_pair(root: Path, sample: Sample, *, decode_image: bool = True) -> None:
    """Decode ``sample``'s image and mask fully (the image's header only unless
    ``decode_image``: most of the cost); a ``DataError`` names the first bad file."""
    _opened(Path(root) / sample.path, "image", decode=decode_image).close()
    _checked_mask(root, sample)


def load_image(root: Path, sample: Sample, size: int) -> np.ndarray:
    """RGB image resized to ``size`` x ``size`` (bilinear): uint8 array (size, size, 3).

    Deterministic: no crop, no flip. Used for evaluation, display and as training input
    before augmentation.
    """
    im = _opened(Path(root) / sample.path, "image")
    return np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.uint8).copy()


def load_mask(root: Path, sample: Sample, size: int) -> np.ndarray:
    """Binary defect mask at ``size`` x ``size``: bool array; all False for good images.

    The mask must have its image's size (checked on every read, since files can change
    after the split). Binarised first (see :func:`defect_pixels`), then resized
    nearest-neighbour, so the mask stays binary and K (its pixel count) is exactly what the
    metrics see.
    """
    mask = _checked_mask(root, sample)
    if mask is None:
        return np.zeros((size, size), dtype=bool)
    defect = Image.fromarray(defect_pixels(mask).astype(np.uint8) * 255)
    return np.asarray(defect.resize((size, size), Image.NEAREST)) > 0


# Modes whose array values are the mask's own numbers: palette masks by index, not colour.
_VALUE_MODES = ("1", "L", "P", "I", "I;16", "F")


def defect_pixels(mask: Image.Image) -> np.ndarray:
    """Where ``mask`` (at its own size) marks a defect: every value above 0, as bool (H, W).

    One rule for every layout: MVTec's masks hold 0 and 255, VisA's small label numbers
    (1, 2, ...), many users' 0 and 1, so a threshold such as 127 would lose whole defects.
    """
    return np.asarray(mask if mask.mode in _VALUE_MODES else mask.convert("L")) > 0


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

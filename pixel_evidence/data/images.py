"""Deterministic transforms: an image or mask at model size, and the normalized input tensor."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from pixel_evidence.data.sample import DEFAULT_MASK_THRESHOLD, DataError, Sample, beside

MASK_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


def opened(path: Path, what: str, *, decode: bool = True) -> Image.Image:
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


def mask_files(root: Path, mask_path: str) -> list[Path]:
    """The files of a sample's mask: the file itself, or every mask file of a mask folder
    (MVTec LOCO AD keeps several masks per image, ``ground_truth/<class>/<stem>/000.png``)."""
    path = Path(root) / mask_path
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in MASK_SUFFIXES)
    return [path]


def _checked_masks(root: Path, sample: Sample) -> list[Image.Image]:
    """The decoded mask files of ``sample`` (none for a good image), which must exist and
    have the size of its image: a mask of another size would be stretched onto the image
    and silently give wrong scores."""
    if sample.mask_path is None:
        return []
    image_path = Path(root) / sample.path
    files = mask_files(root, sample.mask_path)
    if not files or not files[0].exists():
        expected = Path(root) / sample.mask_path
        there = beside(expected) if expected.is_dir() else beside(expected.parent, expected.name)
        raise DataError(f"{image_path}: defect image without its mask, {expected} is missing or empty; {there}; "
                        "add the mask or remove the image")
    masks = [opened(path, "mask") for path in files]
    with opened(image_path, "image", decode=False) as image:
        for path, mask in zip(files, masks):
            if mask.size != image.size:
                raise DataError(f"{path}: mask is {mask.size[0]}x{mask.size[1]} but its image {image_path.name} "
                                f"is {image.size[0]}x{image.size[1]}; masks must match their image")
    return masks


def check_pair(root: Path, sample: Sample, *, decode_image: bool = True) -> list[Path]:
    """Decode ``sample``'s image and mask fully (the image's header only unless
    ``decode_image``: most of the cost); a ``DataError`` names the first bad file.

    Returns the mask files holding more than two values (grey edges, JPEG noise): what
    they mark as defect depends on the mask threshold, so the readers warn about them."""
    image_path = Path(root) / sample.path
    with opened(image_path, "image", decode=decode_image) as image:
        if decode_image:
            rgb8(image, image_path)
    masks = _checked_masks(root, sample)
    files = mask_files(root, sample.mask_path) if masks else []
    return [path for path, mask in zip(files, masks) if _more_than_two_values(_mask_values(mask))]


def _more_than_two_values(values: np.ndarray) -> bool:
    """Whether some value lies strictly between the lowest and the highest (one pass, where
    counting distinct values would sort a mask of millions of pixels)."""
    return values.size > 0 and bool(((values != values.min()) & (values != values.max())).any())


# Pillow modes of more than 8 bits per channel, and the largest value each can hold: 16-bit
# PNG and TIFF greyscale open as I;16, whose convert("RGB") clips every value above 255 to white.
_WIDE_RANGES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "F": 1.0}


def rgb8(im: Image.Image, path: Path) -> Image.Image:
    """``im`` as 8-bit RGB. High-bit-depth greyscale is scaled by its type's range (16-bit:
    65535, float: 1.0), not clipped; a 32-bit integer image, or a float one outside 0..1,
    has no known range and is a ``DataError`` naming ``path``."""
    if im.mode == "I":
        raise DataError(f"{path}: 32-bit integer image, whose range is unknown; save it as 8- or 16-bit")
    top = _WIDE_RANGES.get(im.mode)
    if top is None:
        return im.convert("RGB")
    values = np.asarray(im, dtype=np.float64)
    if im.mode == "F" and not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
        raise DataError(f"{path}: floating-point image with values outside 0..1; scale it to 0..1 or save it "
                        "as 8- or 16-bit")
    grey = np.rint(values * (255 / top)).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")


def load_image(root: Path, sample: Sample, size: int) -> np.ndarray:
    """RGB image resized to ``size`` x ``size`` (bilinear): uint8 array (size, size, 3).

    Deterministic: no crop, no flip. Used for evaluation, display and as training input
    before augmentation.
    """
    path = Path(root) / sample.path
    im = rgb8(opened(path, "image"), path)
    return np.asarray(im.resize((size, size), Image.BILINEAR), dtype=np.uint8).copy()


def load_mask(root: Path, sample: Sample, size: int) -> np.ndarray:
    """Binary defect mask at ``size`` x ``size``: bool array; all False for good images.

    The mask must have its image's size (checked on every read, since files can change
    after the split). Binarised first by the sample's ``mask_threshold`` (see
    :func:`defect_pixels`; the masks of a mask folder united), then resized
    nearest-neighbour, so the mask stays binary and K (its pixel count) is exactly what the
    metrics see.
    """
    masks = _checked_masks(root, sample)
    if not masks:
        return np.zeros((size, size), dtype=bool)
    defect = np.logical_or.reduce([defect_pixels(mask, sample.mask_threshold) for mask in masks])
    return np.asarray(Image.fromarray(defect.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) > 0


# Modes whose array values are the mask's own numbers: palette masks by index, not colour.
_VALUE_MODES = ("1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def _mask_values(mask: Image.Image) -> np.ndarray:
    return np.asarray(mask if mask.mode in _VALUE_MODES else mask.convert("L"))


def defect_pixels(mask: Image.Image, threshold: float = DEFAULT_MASK_THRESHOLD) -> np.ndarray:
    """Where ``mask`` (at its own size) marks a defect, as bool (H, W): the values above
    ``threshold`` times the mask's highest value.

    Relative to the mask's own highest value, since masks come as 0/255 (MVTec), 0/1 (many
    users') or 0/65535: a fixed 127 would lose whole 0/1 defects. A black-and-white mask
    reads the same at any threshold below 1; a grey one (JPEG, soft edges) is binarised at
    half its range by default. 0 counts every value above 0, for masks of label numbers
    (VisA's 1, 2, ...).
    """
    values = _mask_values(mask)
    return values > threshold * values.max() if values.size else np.zeros(values.shape, bool)


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

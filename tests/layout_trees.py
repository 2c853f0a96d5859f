"""Tiny data trees in the layouts other than MVTec's (``tests/conftest.py`` builds MVTec's).

Defect images carry a bright red square inside their mask, so a model can learn them; the
mask-free tree's classes differ by colour.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_CLASSES = {"good": 3, "crack": 4, "hole": 4}


def _picture(rng: np.random.Generator, size: int, defect: bool, label: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """A random image and its mask (values 0 and ``label``); the mask is empty unless ``defect``."""
    img = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    if defect:
        y, x = rng.integers(0, size - size // 4, 2)
        mask[y:y + size // 4, x:x + size // 4] = label
        img[mask > 0] = (230, 20, 20)
    return img, mask


def make_masks_tree(root: Path, *, classes: dict[str, int] | None = None, size: int = 32, seed: int = 0,
                    mask_suffix: str = "", split: dict[str, str] | None = None) -> Path:
    """``images/<class>/<stem>.png`` and ``masks/<class>/<stem><mask_suffix>.png`` (masks 0/1,
    as many users' are); ``split`` (stem path -> train/test) writes ``split.csv``."""
    rng = np.random.default_rng(seed)
    for cls, n in (classes or DEFAULT_CLASSES).items():
        (root / "images" / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, mask = _picture(rng, size, cls != "good", label=1)
            Image.fromarray(img).save(root / "images" / cls / f"{i:03d}.png")
            if cls != "good":
                (root / "masks" / cls).mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask, "L").save(root / "masks" / cls / f"{i:03d}{mask_suffix}.png")
    (root / "masks").mkdir(exist_ok=True)
    if split is not None:
        with open(root / "split.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "split"])
            writer.writerows(split.items())
    return root


def make_folders_tree(root: Path, *, classes: dict[str, int] | None = None, size: int = 32, seed: int = 0) -> Path:
    """``<class>/<stem>.png`` without masks; each class has a colour cast of its own."""
    rng = np.random.default_rng(seed)
    casts = [(90, 0, 0), (0, 90, 0), (0, 0, 90)]
    for j, (cls, n) in enumerate((classes or {"cat": 6, "dog": 6, "ship": 6}).items()):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.integers(40, 120, (size, size, 3)).astype(np.int16) + np.array(casts[j % 3], np.int16)
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / cls / f"{i:03d}.png")
    return root


def make_visa_tree(visa: Path, *, obj: str = "candle", n_normal: int = 4, n_anomaly: int = 6, size: int = 32,
                   seed: int = 0, with_csv: bool = True) -> Path:
    """One VisA object under ``visa`` (JPEG images, masks holding the label numbers 1 and 2 as
    VisA's do) and, with ``with_csv``, ``split_csv/1cls.csv`` in VisA's columns, every
    anomaly in test as in VisA's one-class split. Returns the object folder."""
    rng = np.random.default_rng(seed)
    root = visa / obj
    rows = []
    for label, folder, n in (("normal", "Normal", n_normal), ("anomaly", "Anomaly", n_anomaly)):
        (root / "Data" / "Images" / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, mask = _picture(rng, size, label == "anomaly", label=1 + i % 2)
            stem = f"{i:04d}" if label == "normal" else f"{i:03d}"
            Image.fromarray(img).save(root / "Data" / "Images" / folder / f"{stem}.JPG", format="JPEG", quality=95)
            mask_rel = ""
            if label == "anomaly":
                (root / "Data" / "Masks" / folder).mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask, "L").save(root / "Data" / "Masks" / folder / f"{stem}.png")
                mask_rel = f"{obj}/Data/Masks/{folder}/{stem}.png"
            split = "test" if label == "anomaly" or i % 4 == 0 else "train"
            rows.append([obj, split, label, f"{obj}/Data/Images/{folder}/{stem}.JPG", mask_rel])
    if with_csv:
        (visa / "split_csv").mkdir(parents=True, exist_ok=True)
        with open(visa / "split_csv" / "1cls.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["object", "split", "label", "image", "mask"])
            writer.writerows(rows)
    return root


def make_mask_folder_tree(root: Path, *, defect: str = "bad", normal: str = "good", masks: str = "masks",
                          n: int = 4, size: int = 32, seed: int = 0, mask_suffix: str = "",
                          per_class: bool = False) -> Path:
    """The tools' "folder" format: ``<normal>/``, ``<defect>/`` and ``<masks>/`` holding the
    defect images' masks by name (``<masks>/<defect>/`` with ``per_class``), 0/255."""
    rng = np.random.default_rng(seed)
    mask_dir = root / masks / defect if per_class else root / masks
    for folder in (root / normal, root / defect, mask_dir):
        folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img, _ = _picture(rng, size, False)
        Image.fromarray(img).save(root / normal / f"{i:03d}.png")
        img, mask = _picture(rng, size, True)
        Image.fromarray(img).save(root / defect / f"{i:03d}.png")
        Image.fromarray(mask, "L").save(mask_dir / f"{i:03d}{mask_suffix}.png")
    return root

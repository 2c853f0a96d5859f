"""Tiny data trees in MVTec's layout and in the others.

Defect images carry a bright red square inside their mask, so a model can learn them; the
mask-free tree's classes differ by colour.
"""

from __future__ import annotations

import csv
import json
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


# The published anomaly-inspection sets (REFERENCE §5), each with its naming quirks. Every
# builder returns the folder --data points at; defect images carry a red square in their mask.

def _save(path: Path, array: np.ndarray, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def make_mvtec2_tree(root: Path, *, n: int = 5, size: int = 32, seed: int = 0) -> Path:
    """MVTec AD 2: ``<stem>_mask.png`` under ``test_public/ground_truth/bad``, lighting in the
    file names (``000_regular.png``), and unlabelled ``test_private*`` folders not to read."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        _save(root / "train" / "good" / f"{i:03d}_regular.png", _picture(rng, size, False)[0])
        _save(root / "validation" / "good" / f"{i:03d}_regular.png", _picture(rng, size, False)[0])
        _save(root / "test_public" / "good" / f"{i:03d}_regular.png", _picture(rng, size, False)[0])
        img, mask = _picture(rng, size, True)
        _save(root / "test_public" / "bad" / f"{i:03d}_overexposed.png", img)
        _save(root / "test_public" / "ground_truth" / "bad" / f"{i:03d}_overexposed_mask.png", mask)
        _save(root / "test_private" / f"{i:03d}_regular.png", _picture(rng, size, True)[0])
        _save(root / "test_private_mixed" / f"{i:03d}_shift.png", _picture(rng, size, True)[0])
    return root


def make_loco_tree(root: Path, *, n: int = 5, size: int = 32, seed: int = 0, mask_digits: int = 3,
                   validation: bool = True) -> Path:
    """MVTec LOCO AD (``mask_digits`` 4 and no ``validation``: AutoVI): a folder of masks per
    image, ``ground_truth/<class>/<stem>/000.png``; the logical anomalies' even images have
    two masks, a second square beside the first, to be united."""
    rng = np.random.default_rng(seed)
    origins = ("train", "validation") if validation else ("train",)
    for i in range(n):
        for origin in origins:
            _save(root / origin / "good" / f"{i:03d}.png", _picture(rng, size, False)[0])
        _save(root / "test" / "good" / f"{i:03d}.png", _picture(rng, size, False)[0])
        for cls in ("logical_anomalies", "structural_anomalies"):
            img, mask = _picture(rng, size, True)
            masks = [mask]
            if cls == "logical_anomalies" and i % 2 == 0:
                second = np.zeros_like(mask)
                second[:size // 8, :size // 8] = 255
                img[second > 0] = (230, 20, 20)
                masks.append(second)
            _save(root / "test" / cls / f"{i:03d}.png", img)
            for j, m in enumerate(masks):
                _save(root / "ground_truth" / cls / f"{i:03d}" / f"{j:0{mask_digits}d}.png", m)
    return root


def make_btech_tree(root: Path, *, n: int = 5, size: int = 32, seed: int = 0) -> Path:
    """BTech product ``01``: ``.bmp`` images, ``ok``/``ko`` folders, masks ``ground_truth/ko/<stem>.png``
    without a suffix."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        _save(root / "train" / "ok" / f"{i:04d}.bmp", _picture(rng, size, False)[0])
        _save(root / "test" / "ok" / f"{i:04d}.bmp", _picture(rng, size, False)[0])
        img, mask = _picture(rng, size, True)
        _save(root / "test" / "ko" / f"{i:04d}.bmp", img)
        _save(root / "ground_truth" / "ko" / f"{i:04d}.png", mask)
    return root


def make_bmad_tree(root: Path, *, n: int = 4, size: int = 32, seed: int = 0) -> Path:
    """BMAD (Brain): ``img/`` and ``label/`` folders in each class folder, ``Ungood`` for defects,
    slice names like ``00124_60.png``."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        _save(root / "train" / "good" / "img" / f"{i:05d}_60.png", _picture(rng, size, False)[0])
        for origin in ("valid", "test"):
            _save(root / origin / "good" / "img" / f"{i:05d}_61.png", _picture(rng, size, False)[0])
            img, mask = _picture(rng, size, True)
            _save(root / origin / "Ungood" / "img" / f"{i:05d}_62.png", img)
            _save(root / origin / "Ungood" / "label" / f"{i:05d}_62.png", mask)
    return root


def make_kolektor_tree(root: Path, *, folders: int = 3, parts: int = 4, size: int = 32, seed: int = 0) -> Path:
    """Kolektor SDD: ``kosNN/PartN.jpg`` with ``PartN_label.bmp``; the labels of parts 0 and 1
    are all zero (defect-free), the others mark a square."""
    rng = np.random.default_rng(seed)
    for k in range(1, folders + 1):
        for p in range(parts):
            img, mask = _picture(rng, size, p >= 2)
            _save(root / f"kos{k:02d}" / f"Part{p}.jpg", img, quality=95)
            _save(root / f"kos{k:02d}" / f"Part{p}_label.bmp", mask)
    return root


def make_realiad_tree(base: Path, *, category: str = "audiojack", n: int = 4, size: int = 32, seed: int = 0) -> Path:
    """Real-IAD: ``realiad_256/<c>/OK/S0001/<c>_0001_OK_C1_<time>.jpg`` and
    ``NG/<defect>/S0002/..._C1_<time>.jpg`` with ``_mask.png`` beside, listed (with paths from
    ``realiad_256/``) in ``realiad_jsons/<c>.json``, every defect in test, one image listed
    twice. Returns the category folder."""
    rng = np.random.default_rng(seed)
    root = base / "realiad_256" / category
    entries: dict[str, list] = {"train": [], "test": []}
    for i in range(n):
        for kind, defect in (("OK", None), ("NG", "AK"), ("NG", "HS")):
            sample = f"S{i * 3 + (defect is not None) + (defect == 'HS'):04d}"
            stem = f"{category}_{i:04d}_{kind}_C{1 + i % 5}_2023102113{i:04d}"
            folder = f"{category}/{kind}/{defect + '/' if defect else ''}{sample}"
            img, mask = _picture(rng, size, defect is not None)
            _save(base / "realiad_256" / folder / f"{stem}.jpg", img, quality=95)
            entry = {"category": category, "anomaly_class": defect or "OK", "image_path": f"{folder}/{stem}.jpg",
                     "mask_path": None}
            if defect:
                _save(base / "realiad_256" / folder / f"{stem}_mask.png", mask)
                entry["mask_path"] = f"{folder}/{stem}_mask.png"
            entries["test" if defect or i == 0 else "train"].append(entry)
    entries["train"].append(entries["test"][0])
    (base / "realiad_jsons").mkdir(parents=True, exist_ok=True)
    (base / "realiad_jsons" / f"{category}.json").write_text(
        json.dumps({"meta": {"prefix": "", "normal_class": "OK"}, **entries}))
    return root


def make_mvtec_tree(root: Path, *, n_train_good: int = 6, n_test: dict[str, int] | None = None,
                    size: int = 32, seed: int = 0) -> Path:
    """Write a small category in the official layout: random images, square defect masks.

    Defect pixels are painted bright red inside the mask so a model can learn them.
    """
    n_test = n_test if n_test is not None else {"good": 2, "crack": 5, "hole": 5}
    rng = np.random.default_rng(seed)

    def write(folder: Path, stem: str, defect: bool) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        img = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
        if defect:
            mask = np.zeros((size, size), np.uint8)
            y, x = rng.integers(0, size - size // 4, 2)
            mask[y:y + size // 4, x:x + size // 4] = 255
            img[mask > 0] = (230, 20, 20)
            gt = root / "ground_truth" / folder.name
            gt.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask, "L").save(gt / f"{stem}_mask.png")
        Image.fromarray(img).save(folder / f"{stem}.png")

    for i in range(n_train_good):
        write(root / "train" / "good", f"{i:03d}", False)
    for cls, n in n_test.items():
        for i in range(n):
            write(root / "test" / cls, f"{i:03d}", cls != "good")
    return root

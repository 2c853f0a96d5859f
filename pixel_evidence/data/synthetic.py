"""Deterministic synthetic "hazelnut" defect data set in the MVTec AD layout.

The real MVTec AD hazelnut category cannot be shipped with the project, so this
module paints a stand-in that has the same folder structure and the same kind
of pixel-accurate ground truth::

    <root>/train/good/000.png ...
    <root>/test/{crack,cut,good,hole,print}/000.png ...
    <root>/ground_truth/{crack,cut,hole,print}/000_mask.png ...

Images are RGB PNGs of ``size x size`` pixels (default 256).  Masks are
single-channel 8-bit ("L") PNGs of the same size holding only 0 (background)
and 255 (defect).  Good images have no mask.

Every picture shows one brown, striated, egg-shaped nut with a pointed tip on
a dark, slightly noisy background (:mod:`pixel_evidence.data.synthetic_nut`).
Position, rotation, size, lighting direction, brightness and colour tone vary
from image to image.  Defects are painted on the shell
(:mod:`pixel_evidence.data.synthetic_defects`):

* ``crack`` - thin, jagged, dark, branching lines;
* ``cut``   - a straight-edged slice that exposes cream-coloured flesh;
* ``hole``  - a round dark hole with a lit/shadowed rim;
* ``print`` - saturated ink letters or marker strokes.

The ground-truth mask is exactly the set of pixels the defect painter changed
(pixels outside the mask are bit-identical to the defect-free rendering), and
it is always contained in the nut's silhouette.

Determinism: every image has its own ``numpy.random.default_rng`` seeded from
``(seed, split/class code, index)``, so an image does not depend on the order
of generation or on how many other images are requested.  No global random
state is used or touched, PNGs carry no metadata, and two runs with the same
arguments produce byte-identical files (with the same Pillow/numpy build).

This module turns nut and defect into one :class:`RenderedImage`
(:func:`render_image`) and writes, publishes, fingerprints and previews whole
sets.  Importing it has no side effects.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from pixel_evidence.data.synthetic_defects import MIN_AREA_FRAC, PAINTERS
from pixel_evidence.data.synthetic_nut import render_nut

__all__ = [
    "GENERATOR_VERSION",
    "DEFECT_CLASSES",
    "TEST_CLASSES",
    "RenderedImage",
    "render_image",
    "generate",
    "fingerprint",
    "default_data_root",
    "ensure_default_data",
    "contact_sheet",
]

#: Bump whenever the pixels (or file layout) produced for a given seed change.
GENERATOR_VERSION = 1

#: Defect classes, in the order used for folders and the contact sheet.
DEFECT_CLASSES: tuple[str, ...] = ("crack", "cut", "hole", "print")
#: All classes that appear under ``test/`` (sorted, like MVTec AD).
TEST_CLASSES: tuple[str, ...] = ("crack", "cut", "good", "hole", "print")

# Stable integer code per (split, class); part of every image's seed.
_STREAM_CODE = {
    ("train", "good"): 1,
    ("test", "good"): 2,
    ("test", "crack"): 3,
    ("test", "cut"): 4,
    ("test", "hole"): 5,
    ("test", "print"): 6,
}

# Arguments of the default set built by ensure_default_data() (same as generate()'s defaults).
_DEFAULT_PARAMS = {"seed": 0, "n_good_train": 360, "n_good_test": 40, "n_per_defect": 80, "size": 256}

_PNG_COMPRESS_LEVEL = 1  # fast; the pictures are noisy, higher levels gain <10%
_MIN_SIZE = 32


# --------------------------------------------------------------------------
# one picture: the nut plus, for a defect class, one painted defect
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedImage:
    """One rendered picture of the synthetic set, as arrays (:class:`pixel_evidence.data.Sample` is an image file's record).

    Attributes:
        image: (S, S, 3) uint8 RGB, the picture that is written to disk.
        clean: (S, S, 3) uint8 RGB, the same picture before the defect was painted
            (identical to ``image`` for good images).
        mask: (S, S) uint8 in {0, 255} (defect pixels), or ``None`` for good images.
        nut: (S, S) bool, pixels fully covered by the nut.
    """

    image: np.ndarray
    clean: np.ndarray
    mask: np.ndarray | None
    nut: np.ndarray


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(a + 0.5), 0, 255).astype(np.uint8)


def _check_split_class(split: str, cls: str) -> int:
    try:
        return _STREAM_CODE[(split, cls)]
    except KeyError:
        raise ValueError(f"unknown split/class {split!r}/{cls!r}") from None


def render_image(split: str, cls: str, index: int, *, seed: int = 0, size: int = 256) -> RenderedImage:
    """Render image ``index`` of ``<split>/<cls>`` exactly as :func:`generate` writes it.

    Args:
        split: ``"train"`` (class must be ``"good"``) or ``"test"``.
        cls: ``"good"`` or one of :data:`DEFECT_CLASSES`.
        index: non-negative image index inside the class folder.
        seed: base seed (non-negative int), default 0.
        size: side length in pixels (>= 32), default 256.

    Returns:
        A :class:`RenderedImage` with (S, S, 3) uint8 ``image``/``clean``, (S, S) uint8
        ``mask`` (None for good) and (S, S) bool ``nut``.
    """
    code = _check_split_class(split, cls)
    if seed < 0 or index < 0:
        raise ValueError("seed and index must be non-negative")
    if size < _MIN_SIZE:
        raise ValueError(f"size must be >= {_MIN_SIZE}, got {size}")
    rng = np.random.default_rng([int(seed), code, int(index)])
    clean_f, nut = render_nut(rng, size)
    clean = _to_uint8(clean_f)
    on_nut = nut.alpha >= 1.0
    if cls == "good":
        return RenderedImage(image=clean, clean=clean, mask=None, nut=on_nut)

    painter = PAINTERS[cls]
    min_px = MIN_AREA_FRAC[cls] * size * size
    best = None
    for _attempt in range(30):
        alpha, colour = painter(rng, clean_f, nut)
        drawn = alpha > 0
        alpha = np.where(nut.interior, alpha, 0.0)
        kept = alpha > 0
        n_kept = int(kept.sum())
        if n_kept == 0:
            continue
        if n_kept >= 0.92 * drawn.sum() and n_kept >= min_px:
            best = (n_kept, alpha, colour)  # fits on the nut and is big enough
            break
        if best is None or n_kept > best[0]:
            best = (n_kept, alpha, colour)  # fallback if no attempt fits well
    if best is None:
        raise RuntimeError(f"could not place a {cls} defect (size={size})")
    _, alpha, colour = best
    mixed = clean_f * (1.0 - alpha)[..., None] + colour * alpha[..., None]
    image = np.where((alpha > 0)[..., None], _to_uint8(mixed), clean)
    mask = np.where(alpha > 0, 255, 0).astype(np.uint8)
    return RenderedImage(image=image, clean=clean, mask=mask, nut=on_nut)


# --------------------------------------------------------------------------
# writing the data set
# --------------------------------------------------------------------------


def _save_png(arr: np.ndarray, path: Path) -> None:
    """Write ``arr`` as PNG: (S, S, 3) uint8 becomes RGB, (S, S) uint8 becomes "L"."""
    Image.fromarray(arr).save(path, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)


def _stem_width(n: int) -> int:
    return max(3, len(str(max(n - 1, 0))))


def _jobs(n_good_train: int, n_good_test: int, n_per_defect: int):
    yield from (("train", "good", i, _stem_width(n_good_train)) for i in range(n_good_train))
    for cls in TEST_CLASSES:
        n = n_good_test if cls == "good" else n_per_defect
        yield from (("test", cls, i, _stem_width(n)) for i in range(n))


def _write_set(dest: Path, seed: int, n_good_train: int, n_good_test: int, n_per_defect: int, size: int,
               progress: bool = False) -> None:
    """Render and write every image; ``progress`` shows a bar on stderr (the first start of a
    new installation spends over a minute here, and the terminal should say why)."""
    from tqdm import tqdm

    (dest / "train" / "good").mkdir(parents=True)
    for cls in TEST_CLASSES:
        (dest / "test" / cls).mkdir(parents=True)
        if cls != "good":
            (dest / "ground_truth" / cls).mkdir(parents=True)

    def work(job):
        split, cls, i, width = job
        picture = render_image(split, cls, i, seed=seed, size=size)
        stem = f"{i:0{width}d}"
        _save_png(picture.image, dest / split / cls / f"{stem}.png")
        if picture.mask is not None:
            _save_png(picture.mask, dest / "ground_truth" / cls / f"{stem}_mask.png")

    jobs = list(_jobs(n_good_train, n_good_test, n_per_defect))
    workers = max(1, min(4, os.cpu_count() or 1))
    with tqdm(total=len(jobs), desc="generating the built-in data set", unit="img", disable=not progress) as bar:
        if workers == 1 or len(jobs) < 8:
            for job in jobs:
                work(job)
                bar.update()
        else:
            # numpy and PNG encoding release the GIL for most of the work; every
            # image has its own RNG and file, so the output does not depend on order.
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(work, jobs):
                    bar.update()


def _is_nonempty_dir(path: Path) -> bool:
    try:
        with os.scandir(path) as it:
            return any(True for _ in it)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _make_staging_dir(root: Path) -> Path:
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    os.chmod(tmp, 0o755)
    return tmp


def _publish(tmp: Path, root: Path) -> None:
    """Atomically move the finished ``tmp`` folder to ``root``.

    Raises FileExistsError if ``root`` exists and is not an empty folder.
    """
    if root.is_dir() and not root.is_symlink() and not _is_nonempty_dir(root):
        try:
            root.rmdir()
        except OSError:
            pass  # somebody else filled it meanwhile; rename below will fail
    elif root.exists() or root.is_symlink():
        raise FileExistsError(errno.EEXIST, "target exists and is not an empty folder", str(root))
    try:
        os.rename(tmp, root)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) or isinstance(exc, FileExistsError):
            raise FileExistsError(errno.EEXIST, "target appeared while generating", str(root)) from exc
        raise


def generate(
    root: Path,
    *,
    seed: int = 0,
    n_good_train: int = 360,
    n_good_test: int = 40,
    n_per_defect: int = 80,
    size: int = 256,
) -> Path:
    """Write a synthetic hazelnut data set in MVTec AD layout to ``root``.

    Files written (``NNN`` = zero-padded index, at least 3 digits)::

        root/train/good/NNN.png                       n_good_train RGB images
        root/test/good/NNN.png                        n_good_test RGB images
        root/test/{crack,cut,hole,print}/NNN.png      n_per_defect RGB images each
        root/ground_truth/{crack,cut,hole,print}/NNN_mask.png   one "L" mask per defect image

    Images are (size, size) RGB; masks are (size, size) 8-bit with values {0, 255}.
    Defaults: seed 0, 360 train-good, 40 test-good, 80 per defect class, 256 px
    (720 images in total).

    The set is built in a hidden temporary sibling folder and renamed to
    ``root`` only when complete, so ``root`` is never left half-written.

    Raises:
        FileExistsError: ``root`` exists and is not an empty folder.
        ValueError: bad counts, seed or size.
    """
    root = Path(root).expanduser()
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if size < _MIN_SIZE:
        raise ValueError(f"size must be >= {_MIN_SIZE}, got {size}")
    if min(n_good_train, n_good_test, n_per_defect) < 0:
        raise ValueError("image counts must be non-negative")
    if root.is_symlink() or (root.exists() and (not root.is_dir() or _is_nonempty_dir(root))):
        raise FileExistsError(
            errno.EEXIST,
            "refusing to generate: target exists and is not an empty folder (delete it or pick another root)",
            str(root),
        )
    tmp = _make_staging_dir(root)
    try:
        _write_set(tmp, seed, n_good_train, n_good_test, n_per_defect, size)
        _publish(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def fingerprint(root: Path) -> str:
    """SHA-256 hex digest over all ``*.png`` files below ``root``.

    Files are visited in sorted order of their POSIX relative path; for each the
    relative path (UTF-8), a NUL byte, the file length (8 bytes, big-endian) and
    the file bytes are hashed.  Other files are ignored.
    """
    root = Path(root)
    h = hashlib.sha256()
    files = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*.png") if p.is_file())
    for rel, path in files:
        data = path.read_bytes()
        h.update(rel.encode("utf-8"))
        h.update(b"\0")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def default_data_root() -> Path:
    """Cache folder for the default set.

    ``$PIXEL_EVIDENCE_CACHE/synthetic-hazelnut-v{GENERATOR_VERSION}`` if that
    variable is set, else ``$XDG_CACHE_HOME/pixel-evidence/...`` (when set to an
    absolute path), else ``~/.cache/pixel-evidence/...``.
    """
    name = f"synthetic-hazelnut-v{GENERATOR_VERSION}"
    env = os.environ.get("PIXEL_EVIDENCE_CACHE")
    if env:
        return Path(env).expanduser() / name
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "pixel-evidence" / name


def ensure_default_data(root: Path | None = None, progress: bool = True) -> Path:
    """Return ``root`` (default :func:`default_data_root`), generating the default set if needed.

    If ``root`` already holds a data set it is returned untouched.  Otherwise the
    default set (seed 0, default counts and size) is written to a unique
    temporary sibling and renamed into place; if another process finished first,
    this process's copy is discarded and the existing one is used. ``progress``: a bar on
    stderr while the set is written.
    """
    root = Path(root).expanduser() if root is not None else default_data_root()
    if not _is_nonempty_dir(root):
        tmp = _make_staging_dir(root)
        try:
            _write_set(tmp, **_DEFAULT_PARAMS, progress=progress)
            _publish(tmp, root)
        except FileExistsError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not _is_nonempty_dir(root):
                raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if not (root / "train" / "good").is_dir() or not (root / "test").is_dir():
        raise RuntimeError(f"{root} exists but does not look like a synthetic MVTec-style data set")
    return root


# --------------------------------------------------------------------------
# contact sheet
# --------------------------------------------------------------------------


def _label_font(px: int):
    try:
        return ImageFont.load_default(size=px)
    except Exception:  # Pillow without FreeType: small bitmap font
        return ImageFont.load_default()


def contact_sheet(root: Path, out_png: Path, per_class: int = 4) -> Path:
    """Save a labelled grid of test images to ``out_png`` and return the path.

    One row per class in :data:`TEST_CLASSES` order (good first), ``per_class``
    images per row (the first ones by file name).  Each defect mask's outline
    (a 1-px ring just outside the mask edge) is drawn in bright cyan over the image.
    """
    root, out_png = Path(root), Path(out_png)
    order = ["good"] + [c for c in TEST_CLASSES if c != "good"]
    rows: list[tuple[str, list[Image.Image]]] = []
    tile = None
    for cls in order:
        files = sorted((root / "test" / cls).glob("*.png"))[:per_class]
        tiles = []
        for f in files:
            img = Image.open(f).convert("RGB")
            tile = tile or img.size[0]
            mpath = root / "ground_truth" / cls / f"{f.stem}_mask.png"
            if mpath.exists():
                # 1-px ring just outside the mask edge, so thin defects stay visible
                m = Image.open(mpath).convert("L")
                grown = np.asarray(m.filter(ImageFilter.MaxFilter(3)))
                ring = (grown > 0) & (np.asarray(m) == 0)
                img.paste((0, 255, 255), (0, 0), Image.fromarray(ring.astype(np.uint8) * 255))
            tiles.append(img)
        rows.append((cls, tiles))
    tile = tile or 64
    pad = max(4, tile // 32)
    label_w = max(80, tile // 2)
    font = _label_font(max(12, tile // 9))
    W = label_w + per_class * (tile + pad) + pad
    H = len(rows) * (tile + pad) + pad
    sheet = Image.new("RGB", (W, H), (240, 240, 240))
    draw = ImageDraw.Draw(sheet)
    for r, (cls, tiles) in enumerate(rows):
        y = pad + r * (tile + pad)
        draw.text((pad, y + tile // 2 - font.getbbox(cls)[3] // 2), cls, fill=(20, 20, 20), font=font)
        for c, img in enumerate(tiles):
            if img.size != (tile, tile):
                img = img.resize((tile, tile), Image.BILINEAR)
            sheet.paste(img, (label_w + pad + c * (tile + pad), y))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png, format="PNG")
    return out_png


def resolve_data(data: str | Path | None) -> Path:
    """The category root: ``data`` when given, else the built-in set (generated on first use)."""
    return Path(data) if data else ensure_default_data()

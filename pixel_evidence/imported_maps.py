"""Maps made elsewhere (captum, Zennit, pytorch-grad-cam, an anomaly detector), ranked beside
the engine's own.

``pixel-evidence import-maps SOURCE --models DIR`` reads a folder or an archive (``.zip``,
``.tar``, ``.tar.gz``, ``.tar.xz``, ``.tar.bz2``) of maps laid out as::

    <method>/<image id>.npy                 one map for every seed (a map of your own model)
    <method>/seed_<n>/<image id>.npy        the map of seed n's model (maps of the models in DIR)

``<image id>`` is the id in the split manifest (``crack-003``); an id holding ``/`` is a
path of folders. A map is a 2-D array of the size the models score at (their image size,
square): ``.npy``, ``.npz`` (its one array, or the one named ``map``) or a 16-bit greyscale
``.png`` (read as value / 65535). Higher values mean more important pixels; only their order
counts for TKO.

Every image of the splits asked for (default: test) needs its map. Every missing, misfit or
unreadable file is named on a line of its own, and then nothing is stored. Otherwise each
method becomes one file, ``DIR/imported_maps/<method>.npz``, written atomically; an engine on
DIR (``evaluate``, the sweep's workers, the dashboard) then serves those maps under the
method's name, beside the computed methods, labelled "(imported)".
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import io
import json
import logging
import re
import tarfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from pixel_evidence.data import Sample, read_manifest
from pixel_evidence.files import atomic_write_bytes, file_sha256
from pixel_evidence.methods import METHODS

log = logging.getLogger("pixel_evidence.imported_maps")

IMPORTED_SUBDIR = "imported_maps"
MAP_SUFFIXES = (".npy", ".npz", ".png")
# A method's name is a file name here, a column value in every table and a word in links.
METHOD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
SEED_FOLDER = re.compile(r"seed_(-?\d+)")
# The summary's baseline pseudo-method (pixel_evidence.results.summaries.CHANCE) is a reserved name too.
RESERVED = ("chance",)
LABEL_MARK = " (imported)"
COST_NOTE = "imported: made elsewhere, not timed here"
MAX_FILE_BYTES = 256 * 1024 * 1024  # an 8192 x 8192 float32 map; anything larger is not a map
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")  # Pillow's modes of a 16-bit greyscale PNG


@dataclass(frozen=True)
class MapFile:
    """One file of the source: where it came from and what its path says."""

    name: str              # the path in the source, for messages
    method: str
    seed: int | None       # None: one map for every seed
    image_id: str
    data: bytes


# --------------------------------------------------------------------------- reading the source

def _source_files(source: Path, problems: list[str]) -> Iterator[tuple[str, bytes]]:
    """(path in the source, bytes) of every file of a folder or archive, hidden files left out."""
    name = source.name.lower()
    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            rel = path.relative_to(source).as_posix()
            if not _hidden(rel):
                yield rel, path.read_bytes()
    elif name.endswith(".zip"):
        yield from _zip_files(source, problems)
    elif re.search(r"\.(tar|tar\.gz|tgz|tar\.xz|tar\.bz2)$", name):
        yield from _tar_files(source, problems)
    elif source.exists():
        problems.append(f"{source}: not a folder, .zip or .tar archive of maps")
    else:
        problems.append(f"{source}: no such folder or archive")


def _hidden(rel: str) -> bool:
    """Files a file manager or archiver adds (``.DS_Store``, ``__MACOSX/``), never maps."""
    return any(part.startswith(".") or part == "__MACOSX" for part in rel.split("/"))


def _unsafe_name(name: str) -> str | None:
    """Why an archive member's name could point outside the archive, or None."""
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "has an absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "climbs out of the archive (..)"
    return None


def _zip_files(source: Path, problems: list[str]) -> Iterator[tuple[str, bytes]]:
    try:
        with zipfile.ZipFile(source) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            unsafe = [(m.filename, why) for m in members if (why := _unsafe_name(m.filename))]
            if unsafe:  # the whole archive is refused: it was not made by a map exporter
                problems += [f"{source}: member {n!r} {why}; nothing is read from this archive" for n, why in unsafe]
                return
            for m in members:
                if _hidden(m.filename):
                    continue
                if m.file_size > MAX_FILE_BYTES:
                    problems.append(f"{source}: {m.filename}: {m.file_size:,} bytes, too large for a map")
                    continue
                yield m.filename, zf.read(m)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        problems.append(f"{source}: damaged or not a zip archive ({exc})")


def _tar_files(source: Path, problems: list[str]) -> Iterator[tuple[str, bytes]]:
    from pixel_evidence.data.archive import UnsafeArchiveError, vetted_member

    check = functools.partial(vetted_member, source)
    try:
        with tarfile.open(source, "r:*") as tar:
            members = tar.getmembers()
            unsafe = []
            for m in members:
                try:  # tarfile's data filter, plus no absolute names and no links at all
                    check(m, "/nonexistent-destination")
                except UnsafeArchiveError as exc:
                    unsafe.append(f"{source}: member {exc.member!r} {exc.reason}; nothing is read from this archive")
            if unsafe:
                problems += unsafe
                return
            for m in members:
                if not m.isfile() or _hidden(m.name):
                    continue
                if m.size > MAX_FILE_BYTES:
                    problems.append(f"{source}: {m.name}: {m.size:,} bytes, too large for a map")
                    continue
                yield m.name, tar.extractfile(m).read()
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        problems.append(f"{source}: damaged or not a tar archive ({exc})")


def _read_path(path: str, ids: Mapping[str, Sample]) -> tuple[str, int | None, str] | str:
    """(method, seed or None, image id) from ``<method>[/seed_<n>]/<image id>.<suffix>``, or
    why the path is not that of a map of a known image."""
    parts = PurePosixPath(path).parts
    suffix = PurePosixPath(path).suffix.lower()
    if suffix not in MAP_SUFFIXES:
        return "not a map file (.npy, .npz or 16-bit .png)"
    if len(parts) < 2:
        return f"outside a method folder; put it at <method>/{path}"
    method, rest = parts[0], list(parts[1:])
    seed = None
    if len(rest) > 1 and (match := SEED_FOLDER.fullmatch(rest[0])):
        seed, rest = int(match.group(1)), rest[1:]
    image_id = "/".join(rest)[:-len(suffix)]
    if image_id not in ids:
        near = difflib.get_close_matches(image_id, list(ids), n=1)
        return f"no image {image_id!r} in the manifest" + (f" (nearest: {near[0]!r})" if near else "")
    return method, seed, image_id


def _wrapper(names: Sequence[str], ids: Mapping[str, Sample]) -> str:
    """The folder every file sits in when the maps were archived inside it
    (``export/mycam/crack-003.npy``), else "". It is set aside only when the paths below it
    name more known images than the paths as given (an image id may hold a '/')."""
    tops = {name.split("/", 1)[0] for name in names}
    if len(tops) != 1 or not all("/" in name for name in names):
        return ""
    wrapper = f"{tops.pop()}/"

    def known(strip: int) -> int:
        return sum(isinstance(_read_path(name[strip:], ids), tuple) for name in names)

    return wrapper if known(len(wrapper)) > known(0) else ""


def read_map(name: str, data: bytes) -> np.ndarray:
    """A 2-D float32 map from a file's bytes; ValueError with a one-line reason."""
    suffix = PurePosixPath(name).suffix.lower()
    try:
        if suffix == ".png":
            with Image.open(io.BytesIO(data)) as im:
                if im.format != "PNG":
                    raise ValueError(f"a {im.format} file named .png")
                if im.mode not in SIXTEEN_BIT:
                    raise ValueError(f"a {im.mode} PNG; a map PNG is 16-bit greyscale (8 bits give too few levels "
                                     "and a colour heatmap is not a map): save it 16-bit or as .npy")
                array = np.asarray(im, dtype=np.float64) / 65535.0
        else:
            magic = b"\x93NUMPY" if suffix == ".npy" else b"PK"
            if not data.startswith(magic):  # np.load would take it for a pickle and say so
                raise ValueError(f"unreadable: not a NumPy {suffix} file")
            loaded = np.load(io.BytesIO(data), allow_pickle=False)
            if isinstance(loaded, np.lib.npyio.NpzFile):
                with loaded:
                    keys = loaded.files
                    if "map" in keys:
                        array = loaded["map"]
                    elif len(keys) == 1:
                        array = loaded[keys[0]]
                    else:
                        raise ValueError(f"holds arrays {keys}; name the map's array 'map'")
            else:
                array = loaded
    except (OSError, EOFError, UnidentifiedImageError, zipfile.BadZipFile) as exc:
        raise ValueError(f"unreadable ({exc.__class__.__name__}: {exc})") from None
    except ValueError as exc:
        raise ValueError(" ".join(str(exc).split())) from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise ValueError(f"holds {getattr(array, 'dtype', type(array))} values, not numbers")
    if array.ndim != 2:
        raise ValueError(f"has shape {tuple(array.shape)}; a map is 2-D (height, width): reduce channels first "
                         "(e.g. the absolute sum over colour channels)")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError("holds NaN or infinite values")
    return array


# --------------------------------------------------------------------------- checking and storing

@dataclass(frozen=True)
class ModelsInfo:
    """What the maps must fit: the models' seeds and image size, and the manifest."""

    seeds: dict[int, dict[str, Any]]   # seed -> checkpoint metadata
    samples: list[Sample]
    manifest_sha256: str


def read_models(models: Path, manifest: Path | None = None) -> ModelsInfo:
    from pixel_evidence.models.checkpoint import scan_seeds

    manifest = Path(manifest) if manifest else Path(models) / "manifest.csv"
    if not manifest.is_file():
        raise ValueError(f"{manifest}: no split manifest; give the models folder the maps belong to (--models) "
                         "or --manifest")
    finished, problems = scan_seeds(Path(models))
    if not finished:
        why = f": {problems[min(problems)]}" if problems else ""
        raise ValueError(f"{models}: no trained models{why}; the maps are scored at their image size")
    return ModelsInfo(finished, read_manifest(manifest), file_sha256(manifest))


def collect(source: Path, info: ModelsInfo, *, splits: Sequence[str] = ("test",),
            existing: Sequence[str] = ()) -> tuple[dict[str, dict[tuple[int | None, str], np.ndarray]], list[str]]:
    """Every method's maps ``{method: {(seed or None, image id): map}}`` read from ``source``,
    and one line per problem (an empty list: everything fits). ``existing``: methods already
    imported, refused unless replaced on purpose."""
    problems: list[str] = []
    ids = {s.id: s for s in info.samples}
    sizes = {seed: int(meta["image_size"]) for seed, meta in info.seeds.items()}
    found: dict[str, dict[tuple[int | None, str], tuple[str, np.ndarray]]] = {}
    suffixes: dict[str, str] = {}
    given: set[tuple[str, int | None, str]] = set()  # files named already, usable or not: not "missing"
    files = list(_source_files(Path(source), problems))
    wrapper = _wrapper([name for name, _ in files], ids)
    for name, data in files:
        parsed = _read_path(name[len(wrapper):], ids)
        if isinstance(parsed, str):
            problems.append(f"{name}: {parsed}")
            continue
        method, seed, image_id = parsed
        given.add(parsed)
        suffixes.setdefault(method, PurePosixPath(name).suffix)
        maps = found.setdefault(method, {})  # also for a method whose every file is refused: its name is checked
        if seed is not None and seed not in sizes:
            problems.append(f"{name}: no model of seed {seed} (seeds: {sorted(sizes)})")
            continue
        try:
            array = read_map(name, data)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            continue
        wanted = {sizes[seed]} if seed is not None else set(sizes.values())
        if array.shape[0] != array.shape[1] or array.shape[0] not in wanted or len(wanted) > 1:
            need = " or ".join(f"{s} x {s}" for s in sorted(wanted))
            problems.append(f"{name}: {array.shape[0]} x {array.shape[1]} map; the models score images at {need} "
                            "(their image size): resize the map to that"
                            + ("; models of several image sizes need maps per seed (seed_<n>/ folders)"
                               if len(wanted) > 1 else ""))
            continue
        if (seed, image_id) in maps:
            problems.append(f"{name}: a second map of image {image_id!r} beside {maps[seed, image_id][0]}")
            continue
        maps[seed, image_id] = (name, array)
    if not found and not problems:
        problems.append(f"{source}: no maps found; lay them out as <method>/<image id>.npy")
    required = [s.id for s in info.samples if s.split in splits]
    out = {}
    for method, maps in sorted(found.items()):
        bad_name = _bad_method_name(method, METHODS, existing)
        if bad_name:
            problems.append(bad_name)
            continue
        per_seed = {seed for m, seed, _ in given if m == method}
        if None in per_seed and len(per_seed) > 1:
            problems.append(f"{method}/: both maps for every seed and seed_<n>/ folders; use one or the other")
            continue
        seeds = [None] if None in per_seed else sorted(sizes)
        for seed in seeds:
            folder = f"{wrapper}{method}" + ("" if seed is None else f"/seed_{seed}")
            problems += [f"{folder}/{image_id}{suffixes[method]}: missing ({ids[image_id].split} image)"
                         for image_id in required if (method, seed, image_id) not in given]
        out[method] = {key: array for key, (_, array) in maps.items()}
    return out, problems


def _bad_method_name(method: str, registry: Mapping[str, Any], existing: Sequence[str]) -> str | None:
    if not METHOD_NAME.fullmatch(method):
        return (f"{method}/: a method folder's name is its name in every table: use letters, digits, '_' and '-', "
                "starting with a letter")
    if method in registry or method.lower() in RESERVED:
        return f"{method}/: {method!r} is taken (a computed method or the chance baseline); rename the folder"
    if method in existing:
        return f"{method}/: already imported; pass --force to replace it"
    return None


def store_method(models: Path, method: str, maps: Mapping[tuple[int | None, str], np.ndarray], info: ModelsInfo,
                 source: str) -> Path:
    """Write one method's maps as ``<models>/imported_maps/<method>.npz`` (atomically)."""
    keys = sorted(maps, key=lambda k: (-1 if k[0] is None else k[0], k[1]))
    digest = hashlib.sha256()
    arrays = {}
    for i, (seed, image_id) in enumerate(keys):
        array = np.ascontiguousarray(maps[seed, image_id], dtype=np.float32)
        digest.update(json.dumps([seed, image_id, array.shape]).encode())
        digest.update(array.tobytes())
        arrays[f"map_{i}"] = array
    per_seed = keys[0][0] is not None
    meta = {"method": method, "source": source, "sha256": digest.hexdigest(),
            "manifest_sha256": info.manifest_sha256, "keys": [[seed, image_id] for seed, image_id in keys],
            # per-seed maps belong to those weights; maps for every seed to the image size only
            "weights_sha256": {str(s): info.seeds[s]["weights_sha256"] for s in sorted({k[0] for k in keys})}
            if per_seed else {},
            "image_size": sorted({int(m["image_size"]) for m in info.seeds.values()})}
    buf = io.BytesIO()
    np.savez_compressed(buf, meta=np.array(json.dumps(meta)), **arrays)
    path = Path(models) / IMPORTED_SUBDIR / f"{method}.npz"
    atomic_write_bytes(path, buf.getvalue())
    return path


def import_maps(source: Path, models: Path, *, manifest: Path | None = None, splits: Sequence[str] = ("test",),
                force: bool = False) -> tuple[list[Path], list[str]]:
    """Check every map of ``source`` and store each method's; returns (files written, problems).
    With any problem nothing is written."""
    info = read_models(models, manifest)
    existing = [] if force else sorted(ImportedMaps.stored(models))
    found, problems = collect(Path(source), info, splits=splits, existing=existing)
    if problems:
        return [], problems
    return [store_method(models, m, maps, info, str(source)) for m, maps in found.items()], []


# --------------------------------------------------------------------------- serving the maps

class ImportedMaps:
    """The imported methods of a models folder, as the engine serves them.

    A stored method that no longer fits (retrained seeds for per-seed maps, another image size
    or manifest) is left out with a line in ``warnings``. Each file stays open: a later import
    replaces it by a rename, and this engine keeps reading the maps its index describes.
    """

    def __init__(self, models_dir: Path, seeds: Mapping[int, Mapping[str, Any]], manifest_sha256: str):
        self.warnings: list[str] = []
        self._files: dict[str, np.lib.npyio.NpzFile] = {}
        self._index: dict[str, dict[tuple[int | None, str], str]] = {}
        self._sha: dict[str, str] = {}
        self._lock = threading.Lock()  # one zip file handle per method, shared by the request threads
        sizes = {int(m["image_size"]) for m in seeds.values()}
        for method, path in sorted(self.stored(models_dir).items()):
            try:
                npz = np.load(path, allow_pickle=False)
                meta = json.loads(str(npz["meta"]))
            except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
                self.warnings.append(f"{path}: unreadable imported maps ({exc.__class__.__name__}); import them "
                                     "again with `pixel-evidence import-maps --force`")
                continue
            why = self._unfit(meta, seeds, sizes, manifest_sha256)
            if why:
                npz.close()
                self.warnings.append(f"imported method {method} left out: {why}; import its maps again with "
                                     "`pixel-evidence import-maps --force`")
                continue
            self._files[method] = npz
            self._sha[method] = meta["sha256"]
            self._index[method] = {(seed, image_id): f"map_{i}" for i, (seed, image_id) in enumerate(meta["keys"])}
        for line in self.warnings:
            log.warning("%s", line)

    @staticmethod
    def stored(models_dir: Path) -> dict[str, Path]:
        folder = Path(models_dir) / IMPORTED_SUBDIR
        return {p.stem: p for p in folder.glob("*.npz") if not p.name.startswith(".")} if folder.is_dir() else {}

    @staticmethod
    def _unfit(meta: Mapping[str, Any], seeds: Mapping[int, Mapping[str, Any]], sizes: set[int],
               manifest_sha256: str) -> str | None:
        if meta.get("manifest_sha256") != manifest_sha256:
            return "the split manifest changed since the import (image ids may differ)"
        recorded = meta.get("weights_sha256") or {}
        changed = sorted(int(s) for s, sha in recorded.items()
                         if int(s) in seeds and seeds[int(s)]["weights_sha256"] != sha)
        if changed:
            return f"seeds {changed} were retrained since their maps were made"
        if not recorded and set(meta.get("image_size", [])) != sizes:
            return f"its maps are {meta.get('image_size')} px, the models score at {sorted(sizes)} px"
        return None

    @property
    def methods(self) -> list[str]:
        return list(self._files)

    def labels(self) -> dict[str, str]:
        return {m: m + LABEL_MARK for m in self._files}

    def params(self, method: str) -> dict[str, str]:
        """What an imported method's maps depend on: their content (so results of other maps
        imported under the same name are never reused)."""
        return {"imported_sha256": self._sha[method]}

    def map(self, method: str, seed: int, image_id: str) -> np.ndarray:
        index = self._index[method]
        name = index.get((None, image_id)) or index.get((seed, image_id))
        if name is None:
            raise ValueError(f"imported method {method} has no map of image {image_id!r} (seed {seed}); import "
                             "maps of its split with `pixel-evidence import-maps --splits ... --force`")
        with self._lock:
            return self._files[method][name]

    def close(self) -> None:
        for npz in self._files.values():
            npz.close()

"""Moving a models folder (and its results) from the earlier image ids to the current ones.

The earlier ids named MVTec's source folder (``test-good-000``), which our own split
contradicts; the current ones do not (see :mod:`pixel_evidence.data.mvtec`). A manifest keeps the
ids it was written with, so old folders keep working as they are; this rewrites one to
the current ids, for tables and links that read well:

- every results CSV's ``image_id`` column (the values only; every other byte is kept);
- each ``seed_N.json``: its validation ids, manifest hash and dataset fingerprint (the
  fingerprint hashes the files in id order, so it is recomputed, after checking that the
  data is still the data the seed was trained on);
- each results sidecar's ``manifest_sha256``;
- the manifest itself, last.

Every file is replaced atomically and the manifest goes last, so a run that is killed
leaves a folder that a second run finishes (values already current are left as they are).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Callable

from pixel_evidence.data import DataError, Sample, dataset_fingerprint, manifest_text, read_manifest
from pixel_evidence.data.manifest import has_mask_thresholds
from pixel_evidence.data.mvtec import image_id
from pixel_evidence.files import atomic_write_text

ID_COLUMN = "image_id"


def current_ids(samples: list[Sample]) -> dict[str, str]:
    """Old id -> current id for every sample, from its path (``<origin>/<class>/<stem>.*``)."""
    mapping = {}
    for s in samples:
        parts = Path(s.path).parts
        if len(parts) != 3:
            raise DataError(f"manifest entry {s.path!r} is not <train|test>/<class>/<file>; "
                            "only MVTec-layout folders have ids to rename")
        mapping[s.id] = image_id(parts[0], parts[1], Path(parts[2]).stem)
    if len(set(mapping.values())) != len(mapping):
        raise DataError("the current ids would not be unique for this manifest; keep its ids")
    return mapping


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _rewrite_csv(path: Path, mapping: dict[str, str]) -> bool:
    """Map the ``image_id`` column of ``path``; True when something changed."""
    text = path.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or ID_COLUMN not in rows[0]:
        return False
    col = rows[0].index(ID_COLUMN)
    changed = False
    for row in rows[1:]:
        if len(row) > col and row[col] in mapping and mapping[row[col]] != row[col]:
            row[col] = mapping[row[col]]
            changed = True
    if changed:
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n" if "\r\n" in text else "\n").writerows(rows)
        atomic_write_text(path, out.getvalue())
    return changed


def _rewrite_json(path: Path, edit: Callable[[dict], bool]) -> bool:
    record = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(record, dict) or not edit(record):
        return False
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return True


def rename_image_ids(data_root: Path, models_dir: Path, *, results_dir: Path | None = None,
                     report: Callable[[str], None] = print) -> int:
    """Rewrite ``models_dir`` (its manifest, seeds and ``results_dir``, by default
    ``models_dir/results``) to the current ids; the number of files changed."""
    models_dir = Path(models_dir)
    manifest = models_dir / "manifest.csv"
    old_samples = read_manifest(manifest)
    mapping = current_ids(old_samples)
    # in id order, as a split written today lists them (byte for byte the same manifest)
    new_samples = sorted((replace(s, id=mapping[s.id]) for s in old_samples),
                         key=lambda s: s.id)
    old_text = manifest.read_text(encoding="utf-8")
    new_text = manifest_text(new_samples, mask_thresholds=has_mask_thresholds(manifest))
    old_sha, new_sha = _sha256(old_text), _sha256(new_text)
    if old_sha != new_sha:
        old_fp = dataset_fingerprint(data_root, old_samples)
        new_fp = dataset_fingerprint(data_root, new_samples)
    else:  # the manifest is current: a killed run may have left seeds to finish, recognised by new_sha
        old_fp = new_fp = dataset_fingerprint(data_root, new_samples)
    changed = 0

    for meta_path in sorted(models_dir.glob("seed_*.json")):
        def edit_seed(meta: dict) -> bool:
            if meta.get("manifest_sha256") not in (old_sha, new_sha):
                raise DataError(f"{meta_path} was trained on another manifest than {manifest}; "
                                "leave it out of this folder or retrain it")
            if meta.get("dataset_fingerprint") not in (None, old_fp, new_fp):
                raise DataError(f"{meta_path}: the data under {data_root} is not what this seed was trained on, "
                                "so its fingerprint cannot be carried over; point --data at that data")
            before = dict(meta)
            meta["manifest_sha256"] = new_sha
            if meta.get("dataset_fingerprint") is not None:
                meta["dataset_fingerprint"] = new_fp
            if isinstance(meta.get("validation_ids"), list):
                meta["validation_ids"] = [mapping.get(i, i) for i in meta["validation_ids"]]
            return meta != before
        changed += _rewrite_json(meta_path, edit_seed)

    results = Path(results_dir) if results_dir is not None else models_dir / "results"
    if results.is_dir():
        for path in sorted(results.rglob("*.csv")):
            changed += _rewrite_csv(path, mapping)

        def edit_sidecar(record: dict) -> bool:
            if record.get("manifest_sha256") != old_sha or old_sha == new_sha:
                return False
            record["manifest_sha256"] = new_sha
            return True
        for path in sorted(results.rglob("*.json")):
            changed += _rewrite_json(path, edit_sidecar)

    if old_sha != new_sha:
        atomic_write_text(manifest, new_text)
        changed += 1
    report(f"{models_dir}: {changed} file(s) rewritten to the current image ids" if changed
           else f"{models_dir}: already on the current image ids")
    return changed

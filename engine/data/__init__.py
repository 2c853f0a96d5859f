"""Data: one image's record, the MVTec-layout reader, the split manifest, model-size
transforms; the built-in synthetic set (``synthetic``) and downloads (``download``)."""

from .images import load_arrays, load_image, load_mask, to_normalized_tensor
from .manifest import (MANIFEST_FIELDS, dataset_fingerprint, manifest_text, prepare_manifest, read_manifest,
                       stratified_split, write_manifest)
from .mvtec import scan_category
from .scan import IMAGE_SUFFIXES
from .sample import GOOD, DataError, Sample

__all__ = ["GOOD", "IMAGE_SUFFIXES", "MANIFEST_FIELDS", "DataError", "Sample", "dataset_fingerprint", "load_arrays",
           "load_image", "load_mask", "manifest_text", "prepare_manifest", "read_manifest", "scan_category",
           "stratified_split", "to_normalized_tensor", "write_manifest"]

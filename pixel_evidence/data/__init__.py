"""Data: one image's record, the layout readers (MVTec, VisA, class folders with or without
masks) and their recognition, the split manifest, model-size transforms; the built-in
synthetic set (``synthetic``) and downloads (``download``)."""

from pixel_evidence.data.images import load_arrays, load_image, load_mask, to_normalized_tensor
from pixel_evidence.data.layouts import LAYOUTS, Layout, layout_of, scan_data
from pixel_evidence.data.manifest import (MANIFEST_FIELDS, dataset_fingerprint, manifest_text, prepare_manifest,
                                          read_manifest, stratified_split, write_manifest)
from pixel_evidence.data.mvtec import scan_category
from pixel_evidence.data.sample import GOOD, DataError, Sample
from pixel_evidence.data.scan import IMAGE_SUFFIXES

__all__ = ["GOOD", "IMAGE_SUFFIXES", "LAYOUTS", "MANIFEST_FIELDS", "DataError", "Layout", "Sample",
           "dataset_fingerprint", "layout_of", "load_arrays", "load_image", "load_mask", "manifest_text",
           "prepare_manifest", "read_manifest", "scan_category", "scan_data", "stratified_split",
           "to_normalized_tensor", "write_manifest"]

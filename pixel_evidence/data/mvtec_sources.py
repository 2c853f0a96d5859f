"""Where MVTec AD is published: category names, archive links, the full archive's digest.

Kept as plain data in this one module so that updating a dead link touches nothing else.
MVTec's file host (mydrive.ch) has moved its shares before: the ``...0f282`` share of the
first release answers 404 (anomalib issue #3121), and the ``...0f283`` share below, which
replaced it, has also been reported dead (anomalib issue #3608).  MVTec now hands out
short-lived links per visitor after a form on :data:`DOWNLOADS_PAGE`, so these defaults are
the latest known links, not a promise; ``--url`` and ``--archive`` cover the rest.
"""

from __future__ import annotations

__all__ = ["MVTEC_CATEGORIES", "DOWNLOADS_PAGE", "CATEGORY_URLS", "FULL_ARCHIVE_NAME", "FULL_ARCHIVE_ROOT",
           "FULL_ARCHIVE_URL", "FULL_ARCHIVE_SHA256"]

#: The 15 MVTec AD categories (5 textures, 10 objects), alphabetical.
MVTEC_CATEGORIES: tuple[str, ...] = (
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill", "screw",
    "tile", "toothbrush", "transistor", "wood", "zipper",
)

#: MVTec's page that hands out download links after a form.
DOWNLOADS_PAGE = "https://www.mvtec.com/company/research/datasets/mvtec-ad/downloads"

_SHARE = "https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f283/download"

#: The latest known link of each category's own ``<category>.tar.xz``.
CATEGORY_URLS: dict[str, str] = {
    category: f"{_SHARE}/{file_id}/{category}.tar.xz"
    for category, file_id in {
        "bottle": "420937370-1629958698",
        "cable": "420937413-1629958794",
        "capsule": "420937454-1629958872",
        "carpet": "420937484-1629959013",
        "grid": "420937487-1629959044",
        "hazelnut": "420937545-1629959162",
        "leather": "420937607-1629959262",
        "metal_nut": "420937637-1629959294",
        "pill": "420938129-1629960351",
        "screw": "420938130-1629960389",
        "tile": "420938133-1629960456",
        "toothbrush": "420938134-1629960477",
        "transistor": "420938166-1629960554",
        "wood": "420938383-1629960649",
        "zipper": "420938385-1629960680",
    }.items()
}

#: The whole data set in one archive (about 4.9 GB).
FULL_ARCHIVE_NAME = "mvtec_anomaly_detection.tar.xz"
#: The folder some copies of the full archive put the categories in; others have them at the top.
FULL_ARCHIVE_ROOT = "mvtec_anomaly_detection"
FULL_ARCHIVE_URL = f"{_SHARE}/420938113-1629960298/{FULL_ARCHIVE_NAME}"
#: SHA-256 of the full archive, as pinned by anomalib.  No per-category digests are published.
FULL_ARCHIVE_SHA256 = "cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d"

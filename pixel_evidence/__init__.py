"""Pixel Evidence: rank explainable-AI methods by how much of each map's top-K pixels falls on
the ground-truth defect mask.

Importing the package loads nothing heavy; each subpackage holds one kind of thing:

- ``data``: image folders, masks and manifests, the built-in synthetic set, downloads;
- ``models``: the networks, their checkpoints, training, and users' own models;
- ``explainers``: one module per attribution method, behind one base class;
- ``metrics``: torch-free arithmetic on maps and masks (TKO, pointing game, win rates, ...);
- ``checks``: what needs the model again: faithfulness curves, sanity checks, model checks;
- ``dissection``: Network Dissection of a stage's units against the defect masks;
- ``engine``: the explanation engine that the dashboard and the commands ask for maps;
- ``results``: the result tables on disk, read and written;
- ``sweep``: many seeds, methods and categories on one machine or a Dask cluster;
- ``dashboard``: the Panel views (no torch);
- ``cli``: the ``pixel-evidence`` command (``python -m pixel_evidence`` is the same).

Three torch-free registries name what the rest lists: ``methods`` (the attribution methods),
``metrics.scores`` (the localisation scores) and ``analyses`` (agreement, faithfulness, sanity).
"""

__version__ = "0.1.0"

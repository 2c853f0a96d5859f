"""Pixel Evidence dashboard: which explanation method hits the defect?

Start it with Panel's server::

    panel serve app.py --warm                   # built-in synthetic data + pretrained_models/
    panel serve app.py --warm --args --data DIR --models DIR
    panel serve app.py --warm --args --config dashboard.toml

``--warm`` runs this script once as the server starts: it imports the engine's modules (torch)
before the server listens, then builds the engine and computes the opening view before the
first visitor asks (that start-up page is closed at once and never built).

``--data`` is an MVTec-AD-layout category folder (e.g. ``.../hazelnut``), ``--models`` a folder
of checkpoints written by ``pixel-evidence train`` (``seed_<n>.pt`` + ``seed_<n>.json`` and the
``manifest.csv`` they were trained on). Evaluation tables for the summary tab are read from
``<models>/results`` (written by ``pixel-evidence evaluate``). A config file is TOML or JSON::

    data = "/data/mvtec/hazelnut"      # relative paths are relative to the config file
    models = "/data/models"
    # optional: manifest, device ("auto", "cpu", "cuda", "mps"), cache_mb (256), ig_steps, warm (true)

More options after ``--args``: ``--manifest FILE``, ``--device DEV``, ``--cache-mb MB``,
``--ig-steps N``, ``--no-warm``. Useful server options: ``--num-threads 8`` (the app sets 8
when none is given, so one slow image never blocks other visitors), ``--port``, ``--address``,
``--allow-websocket-origin``: requests whose Host or Origin is neither localhost / 127.0.0.1 on
the served port nor allowed by it are refused (:mod:`pixel_evidence.dashboard.allowed_hosts`; with ``--warm``
from before the server listens).

The models are loaded once per server process and shared by every browser session; once the
first view is drawn, the viewed split fills the cache in the background, behind every click. If data or
models are missing, the page says which ``pixel-evidence`` command creates them.
"""

import logging
import sys

from pixel_evidence.dashboard.app import create_app, problem_view
from pixel_evidence.dashboard.config import ConfigError, parse_args
from pixel_evidence.dashboard.setup_problem import describe_setup_error

_log = logging.getLogger("pixel_evidence")
if not _log.handlers:  # once per process: the script runs again for every session
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    _log.addHandler(_handler)
    _log.setLevel(logging.INFO)
    _log.propagate = False

try:
    CONFIG = parse_args(sys.argv[1:])
except ConfigError as exc:
    import panel as pn

    pn.template.FastListTemplate(title="Pixel Evidence", main=[problem_view(describe_setup_error(exc, None))]).servable()
else:
    create_app(CONFIG).servable()

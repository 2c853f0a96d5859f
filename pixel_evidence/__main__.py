"""``python -m pixel_evidence``: the ``pixel-evidence`` command."""

import sys

from pixel_evidence.cli import main

sys.exit(main())

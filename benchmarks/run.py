"""Run the pixel-evidence benchmark: ``python benchmarks/run.py [options]``.

Same as ``pixel-evidence bench``; see ``engine/bench.py`` for what is measured and
``python benchmarks/run.py --help`` for the options. Results go to ``benchmarks/results/``
unless ``--out`` says otherwise.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

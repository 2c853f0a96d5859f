"""``python -m benchmarks [options]`` from a checkout's root: ``pixel-evidence bench`` without installing."""
import sys

from .bench import main

sys.exit(main(prog="python -m benchmarks"))

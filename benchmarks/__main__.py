"""``python -m benchmarks [options]`` from a checkout's root: the speed and memory benchmark."""
import sys

from .bench import main

sys.exit(main())

"""siamgui: image verification with Siamese networks, as a desktop app and a CLI."""

__version__ = "0.1.0"

import os as _os

import sys as _sys

# Idle OpenMP threads spin briefly, then sleep: fast both idle and on a busy machine
# (bench/README.md, "OpenMP wait setting"). Set before torch loads; the user's value wins.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    if _sys.platform.startswith("linux"):
        _os.environ["GOMP_SPINCOUNT"] = "30000"
    else:
        _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

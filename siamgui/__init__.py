"""siamgui: image verification with Siamese networks, as a desktop app and a CLI."""

__version__ = "0.1.0"

import os as _os

import sys as _sys

# How long torch's idle OpenMP threads spin before they sleep (must be set before
# torch loads; a value the user set is kept). GNU libgomp's default, 300,000 spins,
# made a 2-thread forward pass 10-20x slower on a busy machine (the spinning thread
# takes the core the working one needs). Never spinning (OMP_WAIT_POLICY=PASSIVE)
# fixed that but made a warm face compare 80-95 ms instead of 52-55 on an idle
# machine (MTCNN and the landmarks run many short parallel regions, and every one
# then pays a wake-up). 30,000 spins measured as well as PASSIVE under load and as
# well as the default when idle (bench/README.md). Linux wheels of torch use
# libgomp; elsewhere (other OpenMP runtimes, not measured) threads wait passively.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    if _sys.platform.startswith("linux"):
        _os.environ["GOMP_SPINCOUNT"] = "30000"
    else:
        _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

"""siamgui: image verification with Siamese networks, as a desktop app and a CLI."""

__version__ = "0.1.0"

import os as _os

# OpenMP threads that wait for work sleep instead of spinning. With the default
# (spin), a 2-thread forward pass on a busy machine ran 10-20x slower, because
# the spinning thread takes the core the working one needs (bench/README.md).
# Must be set before torch loads; a value the user set is kept.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

"""Encoder architectures (a registry by name) and the Siamese network.

An architecture is stored in a model file as ``{"name": ..., "kwargs": {...}}``
and rebuilt with :func:`build_encoder`. Importing this package registers every
architecture that ships (timm's way: the package imports its model files).
"""

from siamgui.core.models.base import (  # noqa: F401
    Encoder,
    SiameseNetwork,
    architecture_description,
    architecture_names,
    build_encoder,
    count_parameters,
    register_architecture,
)
from siamgui.core.models import cnn, dlib_resnet  # noqa: F401,E402  (registers the architectures)

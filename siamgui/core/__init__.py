"""The Siamese engine: no Qt here, ever.

Sub-modules are imported on demand so that ``import siamgui.core`` stays cheap
(torch is imported only by the modules that need it).
"""

from siamgui.core.errors import (  # noqa: F401
    DatasetError,
    DeviceError,
    ImageError,
    ModelFileError,
    SiamguiError,
    TrainingCancelled,
)

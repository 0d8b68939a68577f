"""The project's own error types.

Everything that is the user's input being wrong (a bad image, a damaged model
file, an unusable dataset folder) raises a subclass of :class:`SiamguiError`,
whose message is one readable sentence. The CLI turns these into exit code 2
and one line on stderr; the GUI shows the message. Anything else is a bug.
"""


class SiamguiError(Exception):
    """Base class: a problem with the user's input, with a readable message."""


class ImageError(SiamguiError):
    """An image could not be read or is not acceptable."""


class ModelFileError(SiamguiError):
    """A model file is missing, damaged, unsafe or of the wrong kind."""


class DatasetError(SiamguiError):
    """A dataset folder cannot be used for training or evaluation."""


class DeviceError(SiamguiError):
    """A compute device problem that the user can act on (e.g. out of memory)."""


class TrainingCancelled(SiamguiError):
    """Training was stopped by the user before anything could be kept."""


class GalleryError(SiamguiError):
    """The gallery cannot do what was asked (unknown name, damaged file...)."""


class EvaluationCancelled(SiamguiError):
    """The user stopped the evaluation."""


class PeopleError(SiamguiError):
    """Sorting a photo folder by person failed (no faces, nothing readable, a damaged people file)."""

"""Locating the app's bundled files (never via the working directory).

Looked up in order: ``$SIAMGUI_RESOURCES``; a PyInstaller bundle
(``sys._MEIPASS/resources``); the ``resources/`` folder beside the package
(source checkout and editable install).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BUNDLED_MODEL_NAME = "face.safetensors"


def resources_dir() -> Path:
    env = os.environ.get("SIAMGUI_RESOURCES")
    if env:
        return Path(env)
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return _CHECKOUT_RESOURCES


#: Resolved once: path resolution was a tenth of a millisecond on every face prepared.
_CHECKOUT_RESOURCES = Path(__file__).resolve().parent.parent.parent / "resources"


def bundled_model_path() -> Path:
    return resources_dir() / "models" / BUNDLED_MODEL_NAME


def has_bundled_model() -> bool:
    return bundled_model_path().is_file()


def user_data_dir() -> Path:
    """The app's data folder (gallery database...): ``$SIAMGUI_DATA_DIR``, else the
    platform's user data folder (platformdirs). Not created here."""
    env = os.environ.get("SIAMGUI_DATA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("siamgui", appauthor=False))

"""The app's QSettings: an INI file in the user's config folder.

The path is computed on every call (``platformdirs`` honours
``XDG_CONFIG_HOME``), so tests that redirect the config folder get their own
file. QSettings' native format caches its folders per process, hence IniFormat
with an explicit path.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

#: Bump to discard saved window layouts after an incompatible change.
SETTINGS_VERSION = 1
MAX_RECENT = 8


def settings_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("siamgui", appauthor=False)) / "siamgui.ini"


def app_settings() -> QSettings:
    return QSettings(str(settings_path()), QSettings.Format.IniFormat)


def recent_models() -> list[str]:
    value = app_settings().value("models/recent", [])
    if isinstance(value, str):
        value = [value] if value else []
    return [str(v) for v in (value or [])]


def add_recent_model(path: str) -> list[str]:
    items = [p for p in recent_models() if p != path]
    items.insert(0, path)
    items = items[:MAX_RECENT]
    s = app_settings()
    s.setValue("models/recent", items)
    s.sync()
    return items


def clear_recent_models() -> None:
    s = app_settings()
    s.remove("models/recent")
    s.sync()


def as_bool(value) -> bool:
    """A boolean setting: the INI file gives back ``"true"``/``"false"`` strings."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)

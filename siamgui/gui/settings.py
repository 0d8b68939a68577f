"""The app's QSettings: an INI file in the user's config folder.

The path is computed on every call (``platformdirs`` honours
``XDG_CONFIG_HOME``), so tests that redirect the config folder get their own
file. QSettings' native format caches its folders per process, hence IniFormat
with an explicit path.

Qt writes the file atomically (a temporary file renamed over it), so a crash
leaves the old or the new settings. A file Qt cannot parse, or one holding
zero bytes (a power cut can leave those), is set aside as ``siamgui.ini.damaged`` the first
time the app opens it, and the app starts from defaults with a note
(:func:`settings_notes`). Values are read defensively (:func:`as_int`,
:func:`as_bool`, :func:`recent_models`): a hand-edited file never breaks start-up.
A write that fails (read-only folder, full disk) leaves the old file, and
:func:`save_settings` says so through :func:`notifier`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal

log = logging.getLogger(__name__)

#: Bump to discard saved window layouts after an incompatible change.
SETTINGS_VERSION = 1
MAX_RECENT = 8

_checked: set[str] = set()
_notes: list[str] = []


def settings_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("siamgui", appauthor=False)) / "siamgui.ini"


def _damaged(path: Path) -> bool:
    """Qt cannot parse the file, or it holds zero bytes (no INI text does; a power cut can leave them)."""
    try:
        with open(path, "rb") as fh:
            if b"\0" in fh.read(1 << 20):
                return True
    except OSError:
        return False
    probe = QSettings(str(path), QSettings.Format.IniFormat)
    probe.allKeys()  # Qt parses on first access; status() says nothing before
    return probe.status() == QSettings.Status.FormatError


def _set_aside_if_damaged(path: Path) -> str | None:
    """Move a damaged settings file to ``<name>.damaged``; the note to show, or None."""
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return None
    except OSError:
        return None
    if not _damaged(path):
        return None
    kept = path.with_name(path.name + ".damaged")
    try:
        os.replace(path, kept)
        where = f"the damaged file is kept as {kept.name}"
    except OSError as exc:
        where = f"the damaged file could not be moved aside ({exc.strerror or exc})"
    log.warning("settings file %s was damaged; starting from defaults", path)
    return f"The settings file {path} was damaged and the settings were reset to their defaults; {where}."


def _remove_stale_temp_files(path: Path) -> None:
    """Remove the temporary files of a save that was killed before Qt renamed it over the file.

    QSettings writes ``<name>.XXXXXX`` and renames it while holding ``<name>.lock``; holding
    that lock ourselves means no live process is writing one now (Qt frees a dead owner's lock).
    """
    from PySide6.QtCore import QLockFile

    lock = QLockFile(str(path) + ".lock")
    if not lock.tryLock(1000):
        return
    try:
        for f in path.parent.glob(path.name + ".??????"):
            if f.suffix[1:].isalnum():
                with contextlib.suppress(OSError):
                    f.unlink()
    finally:
        lock.unlock()


def app_settings() -> QSettings:
    path = settings_path()
    if str(path) not in _checked:
        _checked.add(str(path))
        _remove_stale_temp_files(path)
        note = _set_aside_if_damaged(path)
        if note:
            _notes.append(note)
    return QSettings(str(path), QSettings.Format.IniFormat)


def settings_notes() -> list[str]:
    """Notes about the settings file since the last call (e.g. it was damaged and reset)."""
    out = list(_notes)
    _notes.clear()
    return out


class _Notifier(QObject):
    #: A settings write failed: the message for the user.
    problem = Signal(str)


_notifier: _Notifier | None = None


def notifier() -> _Notifier:
    """The object whose ``problem(str)`` signal reports settings that could not be saved."""
    global _notifier
    if _notifier is None:
        _notifier = _Notifier()
    return _notifier


def save_settings(settings: QSettings) -> str | None:
    """Write ``settings`` now; None when saved, else the message (also sent through :func:`notifier`)."""
    settings.sync()
    if settings.status() != QSettings.Status.AccessError:
        return None
    message = (f"Could not save the settings to {settings.fileName()} (read-only folder or full disk); "
               "the app keeps working and the earlier settings file is unchanged.")
    log.warning(message)
    notifier().problem.emit(message)
    return message


def recent_models() -> list[str]:
    value = app_settings().value("models/recent", [])
    if isinstance(value, str):
        value = [value] if value else []
    if not isinstance(value, (list, tuple)):
        return []
    return [str(v) for v in value if isinstance(v, str) and v][:MAX_RECENT]


def add_recent_model(path: str) -> list[str]:
    items = [p for p in recent_models() if p != path]
    items.insert(0, path)
    items = items[:MAX_RECENT]
    s = app_settings()
    s.setValue("models/recent", items)
    save_settings(s)
    return items


def clear_recent_models() -> None:
    s = app_settings()
    s.remove("models/recent")
    save_settings(s)


def as_bool(value) -> bool:
    """A boolean setting: the INI file gives back ``"true"``/``"false"`` strings."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def as_int(value, default: int = 0) -> int:
    """An integer setting; ``default`` for anything that is not one (a hand-edited or damaged value)."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default


def as_text(value, default: str = "") -> str:
    """A text setting; ``default`` for a value of another type."""
    return value if isinstance(value, str) else default

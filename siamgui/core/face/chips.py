"""A disk cache of prepared training chips (no Qt).

Preparing a face image (decode, detection, 5 landmarks, warp) is the slow part
of face training, paid for every image before the first step of every run
(bench/README.md, "Training: chip cache"). :class:`ChipCache` keeps each prepared uint8
array (H, W, C) as a small ``.npy`` file in the user cache folder, keyed by

* the image file: its real path (symbolic links resolved), size and
  modification time (ns), so an edited or replaced file is prepared again;
* the preprocessing: the whole :class:`PreprocessSpec`, a format version, a
  digest of the preparing code (images, preprocess, face, alignment and landmark
  modules) and, for landmark aligners, of the landmark model file's content.

Location: ``$SIAMGUI_CACHE_DIR``, else ``platformdirs.user_cache_dir("siamgui")``,
then ``chips/<spec key>/<2 hex>/<file key>.npy``. ``SIAMGUI_CHIP_CACHE=0``
turns it off. Entries are written atomically (temporary file + ``os.replace``),
so concurrent runs and interrupted writes never leave a torn entry; an entry
that cannot be read is treated as missing. Failed images are never cached.
Deleting the folder is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from siamgui.core.preprocess import PreprocessSpec

#: Bump when the meaning of a cached chip changes (aligner code, resize method).
CACHE_VERSION = 1


def cache_root() -> Path:
    env = os.environ.get("SIAMGUI_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("siamgui", appauthor=False))


def cache_enabled() -> bool:
    return os.environ.get("SIAMGUI_CHIP_CACHE", "1").strip().lower() not in ("0", "off", "no", "false")


_digests: dict = {}


def _file_digest(path) -> str:
    """sha1 of a file's content (remembered per path, size and mtime): a copied or
    checked-out landmark model keeps its cache, a different one gets a new one."""
    st = os.stat(path)
    key = (os.fspath(path), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        h = hashlib.sha1()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _digests[key] = h.hexdigest()
    return _digests[key]


#: The modules whose code decides what a prepared chip looks like.
def _code_files() -> list[Path]:
    """The sources that decide what a prepared chip looks like: the face pipeline and the
    image loading and preprocessing it runs under."""
    core = Path(__file__).resolve().parent.parent
    return sorted((core / "face").glob("*.py")) + [core / "images.py", core / "preprocess.py"]


def _code_digest() -> str:
    """Digest of the preparing code, so a changed detector or aligner never reuses old chips
    (the package version where the sources are not shipped, as in a frozen app)."""
    files = _code_files()
    h = hashlib.sha1()
    for path in files:
        try:
            h.update(_file_digest(path).encode())
        except OSError:
            from siamgui import __version__

            h.update(f"{path.name}:{__version__}".encode())
    return h.hexdigest()


def spec_key(spec: PreprocessSpec) -> str:
    """A short hex key for everything that decides what a prepared chip looks like."""
    parts: dict = {"v": CACHE_VERSION, "spec": spec.to_dict(), "code": _code_digest()}
    face = spec.face or {}
    if face.get("align", "box") != "box":
        try:
            from siamgui.core.face.alignment import landmark_model_path

            parts["landmarks"] = _file_digest(landmark_model_path(face))
        except (ImportError, OSError, ValueError):
            parts["landmarks"] = None
    if face.get("detector") in ("mtcnn", "yunet"):  # the detectors whose weights are a file
        try:
            from siamgui.core.face.alignment import detector_model_path

            parts["detector"] = _file_digest(detector_model_path(face))
        except (ImportError, OSError, ValueError):
            parts["detector"] = None
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


class ChipCache:
    """Prepared chips of one preprocessing spec, on disk."""

    def __init__(self, spec: PreprocessSpec, root: str | os.PathLike | None = None):
        self.spec = spec
        self.dir = Path(root if root is not None else cache_root()) / "chips" / spec_key(spec)
        self.shape = (spec.image_size, spec.image_size, spec.channels)
        self.hits = 0
        self.misses = 0

    def file_key(self, path: str | os.PathLike) -> str | None:
        """Key of an image file, or None when it cannot be stat'ed."""
        try:
            real = os.path.realpath(path)
            st = os.stat(real)
        except OSError:
            return None
        return hashlib.sha1(f"{real}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()

    def _entry(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.npy"

    def get(self, path: str | os.PathLike) -> np.ndarray | None:
        key = self.file_key(path)
        if key is None:
            return None
        try:
            arr = np.load(self._entry(key), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            self.misses += 1
            return None
        if arr.shape != self.shape or arr.dtype != np.uint8:
            self.misses += 1
            return None
        self.hits += 1
        return arr

    def put(self, path: str | os.PathLike, arr: np.ndarray) -> bool:
        """Store one prepared chip; False (and no exception) when the cache cannot be written."""
        key = self.file_key(path)
        if key is None or arr.shape != self.shape or arr.dtype != np.uint8:
            return False
        entry = self._entry(key)
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".chip-", suffix=".tmp", dir=entry.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.save(fh, np.ascontiguousarray(arr), allow_pickle=False)
                os.replace(tmp, entry)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError:
            return False
        return True

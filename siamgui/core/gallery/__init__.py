"""The gallery: enrolled identities for one-shot identification.

- :mod:`~siamgui.core.gallery.store`: the SQLite file (schema, migrations, transactions);
- :mod:`~siamgui.core.gallery.index`: nearest-identity search over a snapshot of embeddings;
- :mod:`~siamgui.core.gallery.ann`: the same search through faiss for large galleries (optional);
- :mod:`~siamgui.core.gallery.enrol`: :class:`Gallery`, the store plus enrolment,
  re-embedding and identification with a model;
- :mod:`~siamgui.core.gallery.oneshot`: N-way K-shot evaluation episodes.
"""

from siamgui.core.gallery.enrol import Gallery  # noqa: F401
from siamgui.core.gallery.index import RANKINGS, Candidate, GalleryIndex, Identification  # noqa: F401
from siamgui.core.gallery.store import (  # noqa: F401
    SCHEMA_VERSION,
    EnrolResult,
    ExampleInfo,
    GalleryError,
    GalleryStore,
    IdentityInfo,
    ImportResult,
    SyncResult,
    cached_fingerprint,
    check_name,
    default_gallery_path,
    model_fingerprint,
)

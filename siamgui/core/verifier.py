"""Inference: load a model once, embed images, compare pairs."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from siamgui.core.device import DeviceChoice, PrecisionChoice, select_device, select_precision
from siamgui.core.distances import get_distance
from siamgui.core.errors import DeviceError
from siamgui.core.face.detect import FaceInfo
from siamgui.core.face.multi import MAX_FACES, Face, FacesInfo, detect_all, face_crops
from siamgui.core.images import ImageSource, load_image
from siamgui.core.modelfile import LoadedModel, load_model
from siamgui.core.preprocess import Preprocessor, stack_prepared
from siamgui.core.resources import bundled_model_path

# -- a guard the GUI installs so that its own thread never runs a forward pass ----
_forbidden_threads: set[int] = set()


def forbid_inference_on_thread(ident: int | None = None) -> None:
    """Make any forward pass on this thread (default: the caller's) raise AssertionError."""
    _forbidden_threads.add(threading.get_ident() if ident is None else ident)


def allow_inference_on_thread(ident: int | None = None) -> None:
    _forbidden_threads.discard(threading.get_ident() if ident is None else ident)


def _guard() -> None:
    if _forbidden_threads and threading.get_ident() in _forbidden_threads:
        raise AssertionError("A forward pass was run on a thread that must stay responsive (the GUI thread).")


#: What ``face_policy`` may be for :meth:`Verifier.compare`: the main face, the whole image, or the
#: best-matching pair of faces (each face of A against each face of B).
COMPARE_FACE_POLICIES = ("largest", "whole", "best")


def _prepare_all(prepare: Callable, images: list, parallel: bool = True) -> list:
    """``[prepare(image) for image in images]``, on two threads when ``parallel`` (the caller's
    and a short-lived one, so no thread outlives the call): decoding and YuNet release the GIL,
    so a compare's two images overlap (bench/README.md, "Tried and not kept": with MTCNN's
    torch threads it was slower)."""
    if not parallel or len(images) < 2 or (os.cpu_count() or 1) < 2:
        return [prepare(image) for image in images]
    out: list = [None] * len(images)
    failures: dict[int, BaseException] = {}

    def run(indices):
        for i in indices:
            try:
                out[i] = prepare(images[i])
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                failures[i] = exc
                return

    helper = threading.Thread(target=run, args=(range(0, len(images), 2),), name="siamgui-prepare", daemon=True)
    helper.start()
    run(range(1, len(images), 2))
    helper.join()
    if failures:  # the first image's error, as one thread would have raised it
        raise failures[min(failures)]
    return out


@dataclass
class Comparison:
    distance: float
    threshold: float
    #: The verdict: distance below threshold; None when there is no verdict because a face
    #: model found no face in an image (:attr:`missing_faces`); the distance is then only informational.
    same: bool | None
    faces: tuple[FaceInfo | None, FaceInfo | None] = (None, None)
    #: The prepared inputs the model saw, (H, W, C) uint8, for display.
    inputs: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    notes: list[str] = field(default_factory=list)
    #: ``face_policy="best"``: the index of the face of A and of B that decided (into
    #: :attr:`face_boxes`), and every face pair's distance (rows: faces of A, columns:
    #: faces of B; None for a face not judged). None otherwise.
    faces_used: tuple[int, int] | None = None
    face_distances: list[list[float | None]] | None = None
    #: ``face_policy="best"``: per image, the boxes the indices refer to (None: no face was
    #: detected and the image's main-face answer was used).
    face_boxes: tuple[list, list] | None = None
    #: "A" and/or "B": the images in which a face model found no face (the aligner fell back
    #: to the centre of the image); then :attr:`same` is None. Empty with ``face_policy="whole"``.
    missing_faces: tuple[str, ...] = ()
    #: Per image the face's quality (:class:`~siamgui.core.face.quality.FaceQuality` or None), for
    #: callers that judge it (:func:`~siamgui.core.face.quality.assess_source`); compare leaves it unset.
    quality: tuple = (None, None)

    @property
    def has_verdict(self) -> bool:
        return not self.missing_faces

    def apply_threshold(self, threshold: float) -> None:
        """A new threshold: the verdict changes (unless there is none), the distance does not."""
        self.threshold = float(threshold)
        self.same = None if self.missing_faces else self.distance < self.threshold

    def no_face_message(self) -> str:
        """One line naming the image(s) without a face ("" when both have one)."""
        if not self.missing_faces:
            return ""
        which = " and ".join(f"image {x}" for x in self.missing_faces)
        return f"No face found in {which}: no verdict (compare the whole images to compare them anyway)."

    def __iter__(self):  # ``distance, threshold, same = verifier.compare(a, b)``
        return iter((self.distance, self.threshold, self.same))


@dataclass
class Analysis:
    """One image as the model sees it (:meth:`Verifier.analyse`)."""

    face: FaceInfo | None
    #: The prepared input, (H, W, C) uint8.
    input: np.ndarray


def image_key(image: ImageSource) -> tuple | None:
    """What identifies an image's content, cheaply: a file's path, size and modification
    time; the SHA-256 of bytes, a PIL image's pixels or an array. None: not cacheable
    (a file that cannot be read is left for ``prepare`` to report)."""
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        try:
            st = os.stat(image)
        except (OSError, ValueError):
            return None
        return ("file", os.path.realpath(image), st.st_size, st.st_mtime_ns, st.st_ino)
    if isinstance(image, (bytes, bytearray)):
        return ("bytes", hashlib.sha256(image).digest())
    if isinstance(image, Image.Image):
        return ("pil", image.mode, image.size, hashlib.sha256(image.tobytes()).digest())
    if isinstance(image, np.ndarray):
        a = np.ascontiguousarray(image)
        return ("array", a.dtype.str, a.shape, hashlib.sha256(a.data).digest())
    return None


@dataclass
class FacesAnalysis:
    """Every face of one image, embedded (:meth:`Verifier.analyse_faces`).

    ``faces`` are the detected faces, largest first (at most :data:`MAX_FACES`); empty when
    none was detected or the model is not a face model, and then the one row is the
    image's usual answer (``info`` says what it used). ``rows[k]`` is the index into
    ``faces`` of ``inputs[k]`` and ``embeddings[k]`` (None for that usual answer): the
    judged faces, or every face when none can be judged.
    """

    faces: list[Face]
    info: FaceInfo | None
    inputs: list[np.ndarray]
    rows: list[int | None]
    embeddings: torch.Tensor

    @property
    def judged_none(self) -> bool:
        """Faces were found but none can be judged (they were embedded anyway)."""
        return bool(self.faces) and not any(f.judged for f in self.faces)

    @property
    def boxes(self) -> list:
        """Per row of :attr:`face_distances`-style tables: the face boxes, or [the usual answer's box]."""
        if self.faces:
            return [list(f.box) for f in self.faces]
        used = self.info.used_box if self.info is not None else None
        return [list(used) if used is not None else None]


class EmbeddingCache:
    """The last few images' prepared input, face report and embedding (least recently
    used dropped first), so that a comparison which keeps one image (a new photo or
    camera capture against the same reference, the two images swapped) embeds only
    the new one. Keys come from :func:`image_key` plus the face rule and colour order."""

    def __init__(self, size: int = 8):
        self.size = int(size)
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        if key is None or self.size <= 0:
            return None
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key, item) -> None:
        if key is None or self.size <= 0:
            return
        with self._lock:
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class Verifier:
    """A loaded model ready to embed and compare images.

    ``model`` is a path, a :class:`LoadedModel`, or None for the bundled model.
    Thread-safe for concurrent calls (inference only). ``compare`` and ``analyse`` keep
    the last ``cache_size`` images' embeddings (:class:`EmbeddingCache`; 0 turns it off).
    ``precision`` is the encoder's dtype for inference (:func:`select_precision`):
    ``auto`` runs it in bfloat16 on CPUs that compute bfloat16 natively. ``network``
    itself stays float32 (it is what gets saved).
    """

    def __init__(self, model: str | os.PathLike | LoadedModel | None = None, device: str = "auto",
                 threshold: float | None = None, cache_size: int = 8, precision: str = "auto"):
        if isinstance(model, LoadedModel):
            self.loaded = model
        else:
            self.loaded = load_model(model if model is not None else bundled_model_path())
        self.device_choice: DeviceChoice = select_device(device)
        self.device = self.device_choice.device
        self.network = self.loaded.network.to(self.device).eval()
        self.precision_choice: PrecisionChoice = select_precision(precision, self.device)
        if self.dtype == torch.float32:
            self.inference_network = self.network
        else:  # a converted copy, channels-last: oneDNN's fastest bfloat16 layout (bench/README.md)
            self.inference_network = copy.deepcopy(self.network).to(dtype=self.dtype, memory_format=torch.channels_last)
        self.preprocessor = Preprocessor(self.loaded.spec, device=str(self.device))  # face detector on the same device
        self.distance = get_distance(self.loaded.distance)
        self.model_threshold = self.loaded.threshold
        self.threshold = float(threshold) if threshold is not None else self.model_threshold
        self._lock = threading.Lock()
        #: Test-time flip averaging (model metadata ``embedding.flip_average``): the
        #: embedding is the mean of the image's and its mirror image's.
        self.flip_average = bool((self.loaded.meta.get("embedding") or {}).get("flip_average", False))
        self.cache = EmbeddingCache(cache_size)
        #: Two images are prepared on two threads, unless a torch face detector (MTCNN) would compete for the cores.
        self._parallel_prepare = str((self.loaded.spec.face or {}).get("detector", "")) != "mtcnn"
        #: The model's preprocessing after the face step, for faces cut by :mod:`siamgui.core.face.multi`.
        self._chip_preprocessor = Preprocessor(dataclasses.replace(self.loaded.spec, face=None))

    @property
    def dtype(self) -> torch.dtype:
        """The encoder's arithmetic for inference (``precision_choice``)."""
        return self.precision_choice.dtype

    @property
    def meta(self) -> dict:
        return self.loaded.meta

    @property
    def path(self) -> Path | None:
        return self.loaded.path

    @property
    def face_mode(self) -> bool:
        return self.loaded.spec.face is not None

    # -- preprocessing -------------------------------------------------------------
    def prepare(self, image: ImageSource, *, face_policy: str = "largest", bgr: bool = False
                ) -> tuple[np.ndarray, FaceInfo | None]:
        return self.preprocessor.prepare(image, face_policy=face_policy, bgr=bgr)

    # -- embeddings ------------------------------------------------------------------
    def embed_prepared(self, arrays: Sequence[np.ndarray] | torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Embeddings (N, D) on the CPU for prepared uint8 arrays (or an (N,C,H,W) uint8 tensor)."""
        _guard()
        batch = arrays if isinstance(arrays, torch.Tensor) else stack_prepared(list(arrays))
        out = []
        try:
            with self._lock, torch.inference_mode():
                for i in range(0, len(batch), batch_size):
                    x = self.preprocessor.normalize(batch[i:i + batch_size].to(self.device))
                    if self.flip_average:  # image and mirror in one forward pass (bigger batch, faster)
                        x = torch.cat([x, x.flip(3)])
                    if self.dtype != torch.float32:
                        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
                    z = self.inference_network.embed(x).float()
                    if self.flip_average:
                        z = (z[:len(z) // 2] + z[len(z) // 2:]) / 2
                    out.append(z.cpu())
        except torch.cuda.OutOfMemoryError:
            raise DeviceError(f"The GPU ran out of memory embedding images (batch {batch_size}); "
                              "close other GPU programs or use the CPU.") from None
        if not out:
            return torch.empty(0, self.network.embedding_dim)
        return torch.cat(out)

    def embed(self, images: Sequence[ImageSource], *, face_policy: str = "largest", bgr: bool = False,
              batch_size: int = 64) -> torch.Tensor:
        arrays = [self.prepare(im, face_policy=face_policy, bgr=bgr)[0] for im in images]
        return self.embed_prepared(arrays, batch_size)

    def distances(self, emb_a: torch.Tensor, emb_b: torch.Tensor) -> np.ndarray:
        return self.distance.pairwise(emb_a, emb_b).numpy().astype(np.float64)

    # -- every face of an image ------------------------------------------------------------
    def prepare_faces(self, image: ImageSource, *, bgr: bool = False, max_faces: int = MAX_FACES
                      ) -> tuple[list[Face], FaceInfo | None, list[np.ndarray], list[int | None]]:
        """Every face of ``image`` ready for the network: ``(faces, info, inputs, rows)`` as in
        :class:`FacesAnalysis`. The detector runs once; each face is aligned as the model's
        preset says. No face (or not a face model): the image's usual main-face answer."""
        pil = load_image(image, bgr=bgr)
        cfg = self.loaded.spec.face
        faces: list[Face] = []
        if cfg is not None:
            if self.preprocessor.device is not None:
                cfg = dict(cfg, device=self.preprocessor.device)
            faces, found = detect_all(pil, cfg, max_faces)
        if not faces:
            arr, info = self.prepare(pil)
            return [], info, [arr], [None]
        rows = [k for k, f in enumerate(faces) if f.judged] or list(range(len(faces)))
        crops = face_crops(pil, cfg, [faces[k] for k in rows], self.loaded.spec.image_size)
        return faces, FacesInfo.of(faces, found), [self._chip_preprocessor.prepare(c)[0] for c in crops], rows

    def analyse_faces(self, image: ImageSource, *, bgr: bool = False) -> FacesAnalysis:
        """Every face of ``image``, embedded in one batch (kept in the embedding cache)."""
        (analysis,) = self._faces_embedded([image], bgr)
        return analysis

    def _faces_embedded(self, images: Sequence[ImageSource], bgr: bool) -> list[FacesAnalysis]:
        def prepare(image):
            faces, info, inputs, rows = self.prepare_faces(image, bgr=bgr)
            return inputs, (faces, info, rows)

        return [FacesAnalysis(faces, info, inputs, rows, emb)
                for inputs, (faces, info, rows), emb in self._cached_batch(images, "all-faces", bgr, prepare)]

    # -- comparison ------------------------------------------------------------------
    def _cached_batch(self, images: Sequence[ImageSource], policy: str, bgr: bool, prepare) -> list[tuple]:
        """``(inputs, report, embeddings (len(inputs), D))`` per image, where ``prepare(image)``
        gives ``(inputs, report)``: from the cache where it has them, the others prepared and
        embedded in one batch (an image given twice once)."""
        keys = [self._cache_key(image, policy, bgr) for image in images]
        found = [self.cache.get(key) for key in keys]
        first: dict = {}  # key -> index of its first occurrence
        new = []
        for i, key in enumerate(keys):
            if found[i] is None and (key is None or first.setdefault(key, i) == i):
                new.append(i)
        if new:
            prepared = _prepare_all(prepare, [images[i] for i in new], self._parallel_prepare)
            emb = self.embed_prepared([arr for inputs, _ in prepared for arr in inputs])
            start = 0
            for (inputs, report), i in zip(prepared, new):
                found[i] = (inputs, report, emb[start:start + len(inputs)].clone())
                start += len(inputs)
                self.cache.put(keys[i], found[i])
        return [found[i] if found[i] is not None else found[first[keys[i]]] for i in range(len(images))]

    def _embedded(self, images: Sequence[ImageSource], face_policy: str, bgr: bool) -> list[tuple]:
        """(prepared input, face report, embedding (1, D)) per image (:meth:`_cached_batch`)."""
        def prepare(image):
            arr, info = self.prepare(image, face_policy=face_policy, bgr=bgr)
            return [arr], info

        return [(inputs[0], info, emb) for inputs, info, emb in self._cached_batch(images, face_policy, bgr, prepare)]

    def analyse(self, image: ImageSource, *, face_policy: str = "largest", bgr: bool = False) -> Analysis:
        """One image as the model sees it (face report, prepared input); its embedding is
        kept, so a comparison with it that follows embeds only the other image. With
        ``face_policy="best"`` the report holds every face and the input is the first one used."""
        if face_policy == "best":
            a = self.analyse_faces(image, bgr=bgr)
            return Analysis(a.info, a.inputs[0])
        ((arr, info, _),) = self._embedded([image], face_policy, bgr)
        return Analysis(info, arr)

    def compare(self, image_a: ImageSource, image_b: ImageSource, *, threshold: float | None = None,
                face_policy: str = "largest", bgr: bool = False) -> Comparison:
        """The distance and verdict for two images. ``face_policy``: the main face (``"largest"``),
        the whole image, or ``"best"``: every face of A against every face of B, the closest
        pair decides (:attr:`Comparison.faces_used`). With a face model and no face found in an
        image (except with ``"whole"``) there is no verdict (:attr:`Comparison.missing_faces`)."""
        if face_policy == "best":
            return self._compare_best(image_a, image_b, threshold, bgr)
        (arr_a, info_a, emb_a), (arr_b, info_b, emb_b) = self._embedded((image_a, image_b), face_policy, bgr)
        d = float(self.distance.pairwise(emb_a, emb_b)[0])
        t = self.threshold if threshold is None else float(threshold)
        result = Comparison(d, t, d < t, inputs=(arr_a, arr_b))
        result.faces = (info_a, info_b)
        if self.face_mode and face_policy != "whole":
            result.missing_faces = tuple(label for label, info in (("A", info_a), ("B", info_b))
                                         if info is None or info.mode != "face")
            result.apply_threshold(t)
        if self.face_mode:
            for label, info in (("A", info_a), ("B", info_b)):
                if info is not None and (info.count != 1 or info.mode != "face"):
                    result.notes.append(f"Image {label}: {info.message()}")
        return result

    def _compare_best(self, image_a: ImageSource, image_b: ImageSource, threshold: float | None,
                      bgr: bool) -> Comparison:
        fa, fb = self._faces_embedded((image_a, image_b), bgr)
        m, n = len(fa.rows), len(fb.rows)
        d = self.distance.pairwise(fa.embeddings.repeat_interleave(n, 0), fb.embeddings.repeat(m, 1))
        d = d.view(m, n).numpy().astype(np.float64)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        t = self.threshold if threshold is None else float(threshold)
        dist = float(d[i, j])
        table: list[list[float | None]] = [[None] * len(fb.boxes) for _ in fa.boxes]
        for r, ra in enumerate(fa.rows):
            for c, cb in enumerate(fb.rows):
                table[ra or 0][cb or 0] = float(d[r, c])
        result = Comparison(dist, t, dist < t, inputs=(fa.inputs[i], fb.inputs[j]),
                            faces_used=(fa.rows[i] or 0, fb.rows[j] or 0), face_distances=table,
                            face_boxes=(fa.boxes, fb.boxes))
        result.faces = tuple(self._chosen(a, k) for a, k in ((fa, i), (fb, j)))
        if self.face_mode:
            result.missing_faces = tuple(label for label, a, info in zip("AB", (fa, fb), result.faces)
                                         if not a.faces and (info is None or info.mode != "face"))
            result.apply_threshold(t)
        for label, a, info in zip("AB", (fa, fb), result.faces):
            if info is None:
                continue
            if not a.faces and (info.count != 1 or info.mode != "face"):
                result.notes.append(f"Image {label}: {info.message()}")
            elif a.faces and (info.count > 1 or info.unjudged or info.found > info.count):
                result.notes.append(f"Image {label}: {info.message()}")
            if a.judged_none:
                result.notes.append(f"Image {label}: no face could be judged; the closest one was used anyway.")
        return result

    @staticmethod
    def _chosen(a: FacesAnalysis, k: int) -> FaceInfo | None:
        """The image's face report with the face of row ``k`` as the one used."""
        if not a.faces:
            return a.info
        face = a.faces[a.rows[k]]
        return dataclasses.replace(a.info, used_box=face.box, landmarks=face.landmarks)

    def _cache_key(self, image: ImageSource, face_policy: str, bgr: bool) -> tuple | None:
        if self.cache.size <= 0:
            return None
        key = image_key(image)
        return None if key is None else (key, face_policy, bool(bgr))

    def pair_distances(self, pairs: Sequence[tuple[ImageSource, ImageSource]], *, batch_size: int = 64,
                       progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Distances for many pairs; each distinct image is prepared and embedded once."""
        keys: dict = {}
        for a, b in pairs:
            for im in (a, b):
                k = os.fspath(im) if isinstance(im, (str, os.PathLike)) else id(im)
                if k not in keys:
                    keys[k] = (len(keys), im)
        items = list(keys.values())
        embs = []
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            embs.append(self.embed([im for _, im in chunk], batch_size=batch_size))
            if progress:
                progress(min(start + batch_size, len(items)), len(items))
        emb = torch.cat(embs) if embs else torch.empty(0)

        def idx(im):
            return keys[os.fspath(im) if isinstance(im, (str, os.PathLike)) else id(im)][0]

        ia = torch.tensor([idx(a) for a, _ in pairs], dtype=torch.long)
        ib = torch.tensor([idx(b) for _, b in pairs], dtype=torch.long)
        return self.distances(emb[ia], emb[ib])

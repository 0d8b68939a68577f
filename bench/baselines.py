"""The reference implementations every speed figure is divided by.

These are written the way a tutorial does it, on purpose, and are timed in the
same process run as siamgui's own code:

- :class:`TutorialVerifier`: PIL ``open`` per image, the face crop the model's
  preset asks for (the same function siamgui uses: detector box or dlib 5-point
  alignment), a torchvision ``Compose`` built per call, one forward pass per image
  under ``torch.no_grad`` (and a second one for the mirror image when the model's
  metadata asks for flip averaging, as siamgui's does: the same work),
  ``F.pairwise_distance``. Nothing is reused between calls except the loaded model
  (as tutorials load it once at the top).
- :func:`naive_train`: a ``Dataset`` that decodes both images of a pair from disk
  (and crops the face per the preset) on every access, a ``DataLoader`` with no workers, no
  prefetch and no cache, two forward passes per batch, the contrastive loss.

Run as a script, ``python bench/baselines.py compare MODEL A B`` is the cold-start
baseline for ``siamgui compare``.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image

_cascade = None


def _face_cascade():
    global _cascade
    if _cascade is None:
        import cv2

        _cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
    return _cascade


def preset_face_crop(img: Image.Image, spec) -> Image.Image:
    """The face crop the model's preset asks for (Haar box, or dlib 5-point alignment).

    The same function siamgui uses, called the plain way, so both sides do the same
    work and give the same embedding (the runner checks the two distances agree).
    """
    from siamgui.core.face.aligners import get_aligner

    cfg = spec.face or {}
    crop, _ = get_aligner(cfg.get("align", "box"))(img, cfg, "largest", spec.image_size)
    return crop


class TutorialVerifier:
    """Compare two image files the plain tutorial way (see the module doc)."""

    def __init__(self, network: torch.nn.Module, spec, threshold: float, distance: str = "euclidean",
                 flip_average: bool = False):
        self.model = network.eval()
        self.spec = spec
        self.threshold = threshold
        self.distance = distance
        self.flip_average = flip_average

    def _transform(self):
        s = self.spec
        return T.Compose([
            T.Resize((s.image_size, s.image_size)),
            T.ToTensor(),
            T.Normalize([m / 255.0 for m in s.mean], [v / 255.0 for v in s.std]),
        ])

    def embed_one(self, path: str) -> torch.Tensor:
        img = Image.open(path).convert("RGB")
        if self.spec.face is not None:
            img = preset_face_crop(img, self.spec)
        if self.spec.channels == 1:
            img = img.convert("L")
        x = self._transform()(img).unsqueeze(0)
        forward = self.model.embed if hasattr(self.model, "embed") else self.model
        with torch.no_grad():
            z = forward(x)
            if self.flip_average:  # the mirror image through its own forward pass
                z = (z + forward(x.flip(3))) / 2
        return z

    def compare(self, path_a: str, path_b: str) -> tuple[float, bool]:
        ea = self.embed_one(path_a)
        eb = self.embed_one(path_b)
        if self.distance == "cosine":
            d = float(1 - F.cosine_similarity(ea, eb)[0])
        else:
            d = float(F.pairwise_distance(ea, eb)[0])
        return d, d < self.threshold


# -- naive training ----------------------------------------------------------------------
class NaivePairDataset(torch.utils.data.Dataset):
    """Pairs drawn up front (half same class); both images decoded from disk on every access."""

    def __init__(self, paths: list[str], labels: np.ndarray, n_pairs: int, spec, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.paths, self.spec = paths, spec
        by_class = [np.flatnonzero(labels == c) for c in range(int(labels.max()) + 1)]
        multi = [c for c, idx in enumerate(by_class) if len(idx) >= 2]
        self.pairs = []
        for i in range(n_pairs):
            if i % 2 == 0:
                c = multi[rng.integers(len(multi))]
                a, b = rng.choice(by_class[c], 2, replace=False)
                self.pairs.append((int(a), int(b), 0.0))
            else:
                ca, cb = rng.choice(len(by_class), 2, replace=False)
                self.pairs.append((int(rng.choice(by_class[ca])), int(rng.choice(by_class[cb])), 1.0))
        s = spec
        self.transform = T.Compose([
            T.Resize((s.image_size, s.image_size)),
            T.RandomHorizontalFlip() if s.hflip else T.Lambda(lambda im: im),
            T.RandomAffine(8, translate=(0.06, 0.06), scale=(0.92, 1.08)),
            T.ColorJitter(0.2, 0.2),
            T.ToTensor(),
            T.Normalize([m / 255.0 for m in s.mean], [v / 255.0 for v in s.std]),
        ])

    def __len__(self):
        return len(self.pairs)

    def _load(self, i: int) -> torch.Tensor:
        img = Image.open(self.paths[i]).convert("RGB")
        if self.spec.face is not None:
            img = preset_face_crop(img, self.spec)
        if self.spec.channels == 1:
            img = img.convert("L")
        return self.transform(img)

    def __getitem__(self, k):
        a, b, dissimilar = self.pairs[k]
        return self._load(a), self._load(b), torch.tensor(dissimilar)


def contrastive_loss(o1, o2, dissimilar, margin: float = 1.0):
    d = F.pairwise_distance(o1, o2)
    return torch.mean((1 - dissimilar) * 0.5 * d.pow(2) + dissimilar * 0.5 * torch.clamp(margin - d, min=0).pow(2))


def naive_train(network: torch.nn.Module, dataset: NaivePairDataset, batch_size: int, steps: int,
                lr: float = 2e-3, warmup: int = 1) -> dict:
    """Train ``steps`` batches; returns {'pairs_per_s', 'seconds', 'steps'} for the steps after ``warmup``."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0,
                                         drop_last=True)
    opt = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=1e-4)
    network.train()
    done, t_start, last = 0, None, None
    for x1, x2, y in loader:
        if done == warmup:
            t_start = time.perf_counter()
        o1 = network(x1) if not hasattr(network, "embed") else network.embed(x1)
        o2 = network(x2) if not hasattr(network, "embed") else network.embed(x2)
        loss = contrastive_loss(o1, o2, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if not math.isfinite(float(loss.detach())):
            raise RuntimeError("naive baseline diverged")
        done += 1
        last = time.perf_counter()
        if done >= steps + warmup:
            break
    timed = done - warmup
    secs = (last - t_start) if t_start is not None else float("nan")
    return {"pairs_per_s": timed * batch_size / secs, "seconds": secs, "steps": timed}


def _main(argv: list[str]) -> int:
    """``compare MODEL A B``: load, compare, print one JSON line (the cold-start baseline)."""
    import json

    if len(argv) != 4 or argv[0] != "compare":
        print("usage: baselines.py compare MODEL A B", file=sys.stderr)
        return 2
    from siamgui.core.modelfile import load_model

    loaded = load_model(argv[1])
    v = TutorialVerifier(loaded.network, loaded.spec, loaded.threshold, loaded.distance,
                         bool((loaded.meta.get("embedding") or {}).get("flip_average", False)))
    d, same = v.compare(argv[2], argv[3])
    print(json.dumps({"distance": d, "same": same}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

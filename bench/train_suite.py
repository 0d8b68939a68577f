"""The training suite: siamgui's defaults vs a plain baseline, same data, same wall-clock budget, same run.

For each dataset (split by class: every score is on classes never trained on):

1. **siamgui** trains with its defaults, exactly what ``siamgui train DIR --out M``
   does with no other flag (``TrainConfig(DIR)``: the generic preset and the
   automatic amount of training); ``--budget-minutes B`` adds ``--max-minutes B``.
   Its wall time, from scanning the folder to the model file, is the budget W.
2. **The baseline**, written the way the tutorials do it: three conv layers, 64 px
   grey, contrastive loss (margin 1), Adam (lr 1e-3), batch 64, no augmentation,
   a fixed number of epochs (50; ``--baseline-epochs``) of random balanced pairs
   (twice the images per epoch, at least 10 batches), threshold = best accuracy
   on its own training pairs. It gets the same wall time W (loading its images included)
   and stops at it if its epochs are not done.
3. Both models are scored on the same unseen pairs with siamgui's evaluation
   (``siamgui evaluate``'s code): AUC, EER, and accuracy at the stored threshold.

    python bench/train_suite.py [--budget-minutes B] [--only tiny,glyphs] [--json OUT]

Datasets: signatures (../shared/data/signatures: train/, scored on
test_random_pairs.csv and test_skilled_pairs.csv), lfw-scratch and
lfw-finetune (honest protocol: identities not in pairsDevTest.txt, scored on
pairsDevTest.txt; the fine-tuned run starts from the bundled model), shapes
(colour), glyphs (grey strokes), glyphs-hard (colour, any rotation, clutter),
few-shot (3 images per class), tiny (10 classes x 5 images), mid (200 classes x
15 images). Synthetic sets are generated into a temporary folder (seeded).
Prints a table and writes JSON (default bench/results/train_suite.json).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"


# -- datasets ------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A training folder and the named pair sets (on unseen classes) it is scored on."""

    train_dir: Path
    #: {name: [(path_a, path_b, same), ...]}
    tests: dict[str, list[tuple[str, str, bool]]]
    note: str
    #: Extra TrainConfig options for siamgui (only the fine-tuning run has one: init="bundled").
    siamgui_options: dict = field(default_factory=dict)


def _synthetic(make: Callable[[Path], Path], note: str, test_fraction: float = 1 / 3, pairs: int = 2000):
    """A generated class folder, split by class: 2/3 of the classes to train on, pairs from the rest."""

    def prepare(work: Path) -> Prepared:
        from siamgui.core.datasets import scan_folder
        from siamgui.core.training.sampling import fixed_pairs

        full = make(work / "all")
        classes = sorted(p.name for p in full.iterdir() if p.is_dir())
        rng = np.random.default_rng(0)
        test = set(rng.permutation(classes)[:max(2, int(round(len(classes) * test_fraction)))].tolist())
        train_dir, test_dir = work / "train", work / "test"
        for name in classes:
            dest = (test_dir if name in test else train_dir)
            dest.mkdir(exist_ok=True)
            os.rename(full / name, dest / name)  # moved, not linked: the scan does not follow folder links
        ds = scan_folder(test_dir)
        ia, ib, dis = fixed_pairs(ds.labels, pairs, seed=0)
        paths = ds.paths
        test_pairs = [(paths[a], paths[b], d == 0) for a, b, d in zip(ia, ib, dis)]
        return Prepared(train_dir, {"unseen": test_pairs},
                        f"{note}; {len(classes) - len(test)} classes train, {len(test)} unseen")

    return prepare


def _signatures(work: Path) -> Prepared:
    from siamgui.core.datasets import read_pairs_csv

    root = SHARED / "signatures"
    if not (root / "train").is_dir():
        raise FileNotFoundError(f"no {root / 'train'}")
    return Prepared(root / "train", {name: read_pairs_csv(root / f"test_{name}_pairs.csv")
                                     for name in ("random", "skilled")},
                    "writers w001-w069 train, w070-w099 scored (../shared/data/signatures/README.md)")


def _lfw_folder(work: Path, max_per_identity: int = 10) -> tuple[Path, list, str]:
    """Identities not in pairsDevTest.txt with 2+ images (at most ``max_per_identity``), as links."""
    from bench.lfw_recipe import devtest_identities
    from siamgui.core.datasets import read_lfw_pairs

    lfw = Path(os.environ.get("SIAMGUI_LFW", SHARED / "lfw"))
    devtest = lfw / "pairsDevTest.txt"
    if not devtest.is_file():
        raise FileNotFoundError(f"no {devtest}")
    held = devtest_identities(devtest)
    dest = work / "lfw_train"
    n_ids = n_img = 0
    for person in sorted(os.listdir(lfw / "lfw")):
        files = sorted(os.listdir(lfw / "lfw" / person))
        if person in held or len(files) < 2:
            continue
        (dest / person).mkdir(parents=True)
        for f in files[:max_per_identity]:
            os.symlink(lfw / "lfw" / person / f, dest / person / f)
            n_img += 1
        n_ids += 1
    pairs, _ = read_lfw_pairs(devtest, lfw / "lfw")
    return dest, pairs, (f"{n_ids} non-DevTest identities with 2+ images (at most {max_per_identity} each, "
                         f"{n_img} images); scored on pairsDevTest.txt")


def _lfw(init: str | None):
    def prepare(work: Path) -> Prepared:
        folder, pairs, note = _lfw_folder(work)
        if not init:
            return Prepared(folder, {"devtest": pairs}, note)
        # fine-tuning has no automatic plan (3 epochs of the whole folder would take the better part of an
        # hour here): it gets the automatic plan's default budget, --init bundled --max-minutes 5
        from siamgui.core.training.config import AUTO_BUDGET_MIN

        return Prepared(folder, {"devtest": pairs}, note + "; siamgui fine-tunes the bundled model",
                        {"init": init, "time_budget_s": AUTO_BUDGET_MIN * 60.0})

    return prepare


def _datasets() -> dict[str, Callable[[Path], Prepared]]:
    from siamgui.core.synthetic import make_glyph_dataset, make_shapes_dataset

    return {
        "signatures": _signatures,
        "lfw-scratch": _lfw(None),
        "lfw-finetune": _lfw("bundled"),
        "shapes": _synthetic(lambda d: make_shapes_dataset(d, n_classes=16, per_class=12, size=64, seed=11),
                             "16 colour shapes x 12 images (64 px)", test_fraction=0.375),
        "glyphs": _synthetic(lambda d: make_glyph_dataset(d, n_classes=30, per_class=12, size=64, seed=12),
                             "30 grey stroke glyphs x 12 images"),
        "glyphs-hard": _synthetic(lambda d: make_glyph_dataset(d, n_classes=30, per_class=12, size=64, seed=13,
                                                               colour=True, rotate=math.pi, clutter=5),
                                  "30 colour glyphs x 12, any rotation, clutter"),
        "few-shot": _synthetic(lambda d: make_glyph_dataset(d, n_classes=60, per_class=3, size=64, seed=14),
                               "60 grey glyphs x 3 images"),
        "tiny": _synthetic(lambda d: make_glyph_dataset(d, n_classes=10, per_class=5, size=64, seed=15),
                           "10 grey glyphs x 5 images", test_fraction=0.4),
        "mid": _synthetic(lambda d: make_glyph_dataset(d, n_classes=200, per_class=15, size=64, seed=16),
                          "200 grey glyphs x 15 images (3,000)", test_fraction=0.25),
    }


# -- scoring -------------------------------------------------------------------------------
def score(model_path: Path, pairs: list[tuple[str, str, bool]]) -> dict:
    """AUC, EER and accuracy at the model's stored threshold, with ``siamgui evaluate``'s code."""
    from siamgui.core.evaluation.run import PairSet, run_evaluation
    from siamgui.core.verifier import Verifier

    v = Verifier(str(model_path), device="cpu")
    r = run_evaluation(v, PairSet(pairs, None, "csv", "pairs"), worst=0, explain=False)
    return {"auc": round(r.metrics.auc, 4), "eer": round(r.metrics.eer, 4), "accuracy": round(r.metrics.accuracy, 4),
            "threshold": round(r.threshold, 4), "pairs": r.metrics.pairs}


# -- siamgui -------------------------------------------------------------------------------
def run_siamgui(train_dir: Path, out: Path, budget_minutes: float | None, options: dict) -> dict:
    """``siamgui train DIR --out OUT`` (plus ``--max-minutes`` when given), in this process; returns its record."""
    from siamgui.core.training import Finished, TrainConfig, train

    options = dict(options)
    if budget_minutes:
        options["time_budget_s"] = budget_minutes * 60.0
    cfg = TrainConfig(str(train_dir), **options)
    t0 = time.perf_counter()
    result = None
    for ev in train(cfg):
        if isinstance(ev, Finished):
            result = ev.result
    if result is None:
        raise RuntimeError("siamgui training kept no model")
    result.save(out)
    wall = time.perf_counter() - t0
    tr = result.meta["training"]
    return {"wall_s": round(wall, 1), "epochs_run": tr["epochs_run"], "best_epoch": tr["best_epoch"],
            "pairs_seen": tr["timing"].get("pairs"), "preset": tr["config"]["preset"], "init": tr["init"],
            "timing": tr["timing"], "train_classes": tr["data"]["train_classes"], "val_classes": tr["data"]["val_classes"],
            "val_eer_history": [round(h["val_eer"], 4) for h in tr["history"]]}


# -- the plain baseline --------------------------------------------------------------------
class PlainNet(nn.Module):
    """The tutorial network: three conv layers, two dense layers (64 px grey in, 64-D out)."""

    def __init__(self, embedding_dim: int = 64):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(128 * 8 * 8, 256), nn.ReLU(), nn.Linear(256, embedding_dim))

    def forward(self, x):
        return self.head(self.features(x))

    def embed(self, x):
        return self(x)


def _load_grey(path: str) -> torch.Tensor:
    from siamgui.core.images import load_image

    im = load_image(path).convert("L").resize((64, 64))
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)[None]


def run_baseline(train_dir: Path, out: Path, budget_s: float, epochs: int = 50, batch: int = 64,
                 seed: int = 0) -> dict:
    """Train the plain baseline for ``epochs`` (or until ``budget_s`` of wall time); save it as a model file."""
    from siamgui.core import evaluation as ev
    from siamgui.core.datasets import scan_folder
    from siamgui.core.training.sampling import PairSampler

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    ds = scan_folder(train_dir)
    x = torch.stack([_load_grey(p) for p in ds.paths])
    labels = ds.labels
    net = PlainNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sampler = PairSampler(labels, seed)
    pairs_per_epoch = max(10 * batch, 2 * len(ds))
    steps = done_epochs = 0
    out_of_time = False
    for _ in range(epochs):
        for _ in range(pairs_per_epoch // batch):
            a, b, dissimilar = sampler.sample(batch)
            o1, o2 = net(x[a]), net(x[b])
            y = torch.from_numpy(dissimilar).float()
            d = F.pairwise_distance(o1, o2)
            loss = torch.mean((1 - y) * d.pow(2) + y * torch.clamp(1.0 - d, min=0).pow(2)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if time.perf_counter() - t0 >= budget_s:
                out_of_time = True
                break
        if out_of_time:
            break
        done_epochs += 1
    net.eval()
    with torch.no_grad():  # the tutorial's threshold: best accuracy on pairs of its own training data
        a, b, dissimilar = sampler.sample(2000)
        dist = torch.cat([F.pairwise_distance(net(x[a[i:i + 256]]), net(x[b[i:i + 256]]))
                          for i in range(0, len(a), 256)]).double().numpy()
    threshold, _ = ev.best_threshold(dist, dissimilar == 0)
    _PLAIN_MODELS[str(out)] = (net, float(threshold))
    return {"wall_s": round(time.perf_counter() - t0, 1), "epochs_run": done_epochs, "steps": steps,
            "stopped_by_budget": out_of_time}


#: The trained baselines of this run, kept in memory for scoring (the plain network is not a siamgui model file).
_PLAIN_MODELS: dict[str, tuple[PlainNet, float]] = {}


def score_plain(out: Path, pairs: list[tuple[str, str, bool]]) -> dict:
    """The baseline on ``pairs``: its own preprocessing, siamgui's metric functions (the same as :func:`score`)."""
    from siamgui.core import evaluation as ev

    net, threshold = _PLAIN_MODELS[str(out)]
    images = list(dict.fromkeys(p for a, b, _ in pairs for p in (a, b)))
    index = {p: i for i, p in enumerate(images)}
    with torch.no_grad():
        emb = torch.cat([net(torch.stack([_load_grey(p) for p in images[i:i + 256]]))
                         for i in range(0, len(images), 256)])
    ia = torch.tensor([index[a] for a, _, _ in pairs])
    ib = torch.tensor([index[b] for _, b, _ in pairs])
    d = F.pairwise_distance(emb[ia], emb[ib]).double().numpy()
    same = np.array([s for _, _, s in pairs], dtype=bool)
    m = ev.evaluate(d, same, threshold)
    return {"auc": round(m.auc, 4), "eer": round(m.eer, 4), "accuracy": round(m.accuracy, 4),
            "threshold": round(threshold, 4), "pairs": m.pairs}


# -- the suite -----------------------------------------------------------------------------
def run_one(name: str, prepare: Callable[[Path], Prepared], budget_minutes: float | None, work: Path,
            baseline_epochs: int = 50, overrides: dict | None = None, baseline: bool = True) -> list[dict]:
    data = prepare(work)
    ours = run_siamgui(data.train_dir, work / "siamgui.safetensors", budget_minutes,
                       {**data.siamgui_options, **(overrides or {})})
    base = run_baseline(data.train_dir, work / "plain", ours["wall_s"], epochs=baseline_epochs) if baseline else {}
    rows = []
    for test_name, pairs in data.tests.items():
        s = score(work / "siamgui.safetensors", pairs)
        b = score_plain(work / "plain", pairs) if baseline else {"auc": math.nan, "eer": math.nan,
                                                                 "accuracy": math.nan}
        rows.append({"dataset": name if len(data.tests) == 1 else f"{name}/{test_name}", "note": data.note,
                     "budget_s": ours["wall_s"], "siamgui": {**s, **ours}, "baseline": {**b, **base},
                     "overrides": overrides or {},
                     **({"outcome": outcome(s, b)} if baseline else {})})
    return rows


def outcome(s: dict, b: dict) -> str:
    """siamgui against the baseline, on AUC (4 places) and EER (0.1 %), rounded as the table prints them:
    "ties" when both are equal (e.g. both perfect), "beats" when neither is worse, "loses" when neither is
    better, "mixed" when one is better and the other worse."""
    auc_s, auc_b = round(s["auc"], 4), round(b["auc"], 4)
    eer_s, eer_b = round(100 * s["eer"], 1), round(100 * b["eer"], 1)
    if auc_s == auc_b and eer_s == eer_b:
        return "ties"
    if auc_s >= auc_b and eer_s <= eer_b:
        return "beats"
    if auc_s <= auc_b and eer_s >= eer_b:
        return "loses"
    return "mixed"


def parse_override(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` for a TrainConfig field (VALUE as JSON when it parses, else a string)."""
    from dataclasses import fields as dc_fields

    from siamgui.core.training import TrainConfig

    key, sep, value = text.partition("=")
    if not sep or key not in {f.name for f in dc_fields(TrainConfig)}:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with a TrainConfig field as KEY, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def table(rows: list[dict]) -> str:
    head = f"{'dataset':<22} {'siamgui AUC':>11} {'EER':>7} {'acc':>6} | {'baseline AUC':>12} {'EER':>7} {'acc':>6} | " \
           f"{'budget':>7} siamgui"
    lines = [head, "-" * len(head)]
    for r in rows:
        s, b = r["siamgui"], r["baseline"]
        if "error" in r:
            lines.append(f"{r['dataset']:<22} skipped: {r['error']}")
            continue
        lines.append(f"{r['dataset']:<22} {s['auc']:>11.4f} {100 * s['eer']:>6.1f}% {100 * s['accuracy']:>5.1f}% | "
                     f"{b['auc']:>12.4f} {100 * b['eer']:>6.1f}% {100 * b['accuracy']:>5.1f}% | "
                     f"{r['budget_s']:>6.0f}s {r.get('outcome', '-')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    sets = _datasets()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget-minutes", type=float, help="siamgui's --max-minutes (default: its own default budget)")
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(sets)}")
    p.add_argument("--baseline-epochs", type=int, default=50, help="the baseline's fixed epochs (default 50)")
    p.add_argument("--json", default=str(RESULTS / "train_suite.json"), help="where to write the JSON results")
    p.add_argument("--set", dest="overrides", action="append", type=parse_override, default=[], metavar="KEY=VALUE",
                   help="ablations: a TrainConfig option for siamgui (JSON value), e.g. --set augment=false; "
                        "repeatable. The figures of the defaults are runs without it")
    p.add_argument("--no-baseline", action="store_true", help="ablations: train and score siamgui only")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(sets)
    unknown = [n for n in names if n not in sets]
    if unknown:
        p.error(f"unknown dataset(s): {', '.join(unknown)}; choose from {', '.join(sets)}")
    rows = []
    t_all = time.perf_counter()
    for name in names:
        print(f"[{name}] ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix=f"siamgui-suite-{name}-") as tmp:
            try:
                rows.extend(run_one(name, sets[name], args.budget_minutes, Path(tmp), args.baseline_epochs,
                                    dict(args.overrides), not args.no_baseline))
            except FileNotFoundError as exc:  # a shared data set that is not on this machine
                rows.append({"dataset": name, "error": str(exc), "siamgui": {}, "baseline": {}})
        if "error" not in rows[-1]:
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(rows))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"budget_minutes": args.budget_minutes, "overrides": dict(args.overrides), "torch_threads": torch.get_num_threads(),
           "total_s": round(time.perf_counter() - t_all, 1), "rows": rows}
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, out)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

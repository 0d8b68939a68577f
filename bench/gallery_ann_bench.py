"""Identification over large galleries: numpy scan against faiss (exact, IVF, HNSW) at 10k-1M embeddings.

Synthetic 128-D embeddings shaped like the face model's: identity centres about
1.0 apart, 5 examples per identity about 0.4 from each other; each probe is a
new example of a random identity, so there is a true nearest identity. For each
size and index kind, in a child process of its own:

- ``build_s``: building the search snapshot from the arrays (faiss: add, IVF training);
- ``identify_ms_p50/p90``: ``index.identify(probe, threshold, top=5)`` (min rule; ``_cpu_``: the
  calling thread's CPU time, what an idle core would take when the machine is busy), and
  ``mean_ms_p50`` for the mean-of-3 rule (faiss builds on ``--threads`` threads and
  searches one probe on ``ann.SEARCH_THREADS``; ``--search-threads`` overrides it);
- ``recall_at_1``: how often the top-1 identity equals the exact index's (numpy or faiss
  exact: the same answers), ``accuracy``: how often it is the probe's true identity;
- ``index_mb``: resident memory the snapshot holds (RSS with it, the source arrays
  freed, minus RSS before the data existed); ``peak_mb``: the child's peak RSS.

IVF is also timed at several ``nprobe`` and HNSW at several ``efSearch`` values
(same built index). ``--store N`` also writes N embeddings into a real gallery
file and times ``Gallery.index()`` (read from SQLite and build, as after any
change; wall and CPU seconds) for the automatic choice, then again after one
more enrolment.

    .venv/bin/python bench/gallery_ann_bench.py [--sizes 10000 100000 1000000]
        [--kinds numpy exact ivf hnsw] [--queries 200] [--threads 2] [--store 1000000] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DIM = 128
PER_IDENTITY = 5
SPREAD, NOISE = 0.0625, 0.025  # per-dimension sd of the centres and of an example around its centre
NPROBES = (8, 16, 32, 64)
EF_SEARCHES = (32, 64, 128)


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(n: int, queries: int, seed: int = 0):
    """Examples grouped by identity, their owners, probes and the probes' identities."""
    rng = np.random.default_rng(seed)
    m = (n + PER_IDENTITY - 1) // PER_IDENTITY
    centres = rng.standard_normal((m, DIM), dtype=np.float32) * SPREAD
    owner = np.repeat(np.arange(m), PER_IDENTITY)[:n]
    vectors = np.empty((n, DIM), np.float32)
    for start in range(0, n, 100_000):  # in chunks: no float64 copy of a million rows
        stop = min(n, start + 100_000)
        vectors[start:stop] = centres[owner[start:stop]] + rng.standard_normal((stop - start, DIM),
                                                                               dtype=np.float32) * NOISE
    truth = rng.integers(0, int(owner[-1]) + 1, queries)
    probes = centres[truth] + rng.standard_normal((queries, DIM), dtype=np.float32) * NOISE
    return vectors, owner, probes, truth


def _times(fn, probes) -> tuple[list[float], list[float]]:
    """Wall and this thread's CPU milliseconds per call (after 10 warm-up calls)."""
    for q in probes[:10]:
        fn(q)
    wall, cpu = [], []
    for q in probes:
        t, c = time.perf_counter(), time.thread_time()
        fn(q)
        cpu.append((time.thread_time() - c) * 1000)
        wall.append((time.perf_counter() - t) * 1000)
    return wall, cpu


def _pct(values, q) -> float:
    return round(float(np.percentile(values, q)), 3)


def child(size: int, kind: str, queries: int, threads: int, search_threads: int | None = None) -> dict:
    """One size and kind (this process's RSS is the index's)."""
    from siamgui.core.gallery import ann
    from siamgui.core.gallery.index import GalleryIndex

    if search_threads:
        ann.SEARCH_THREADS = search_threads

    ann.faiss_module()  # the library's own pages are not the index's
    base = rss_mb()
    vectors, owner, probes, truth = synthetic(size, queries)
    names = [f"person {i:07d}" for i in range(int(owner[-1]) + 1)]
    t, c = time.perf_counter(), time.process_time()
    if kind == "numpy":
        index = GalleryIndex(vectors, owner, names)
    else:
        index = ann.FaissIndex(vectors, owner, names, approximate=kind != "exact",
                               method=kind if kind != "exact" else ann.APPROXIMATE, threads=threads)
    build_s, build_cpu_s = time.perf_counter() - t, time.process_time() - c
    del vectors, owner
    gc.collect()
    out = {"size": size, "kind": kind, "identities": len(names), "build_s": round(build_s, 2),
           "build_cpu_s": round(build_cpu_s, 2), "index_mb": round(rss_mb() - base, 1), "threads": threads, "search_threads": ann.SEARCH_THREADS}

    def run(label: str = "") -> None:
        top1 = []
        times, cpu = _times(lambda q: top1.append(index.identify(q, 0.6, 5, "min").candidates[0].identity_id),
                            probes)
        top1 = top1[10:]  # the warm-up's answers
        out[f"identify_ms_p50{label}"], out[f"identify_ms_p90{label}"] = _pct(times, 50), _pct(times, 90)
        out[f"identify_cpu_ms_p50{label}"] = _pct(cpu, 50)
        out[f"top1{label}"] = [int(i) for i in top1]
        out[f"accuracy{label}"] = round(float(np.mean(np.array(top1) == truth)), 4)

    if kind == "ivf":
        for nprobe in NPROBES:
            index.faiss_index.nprobe = nprobe
            run(f"@nprobe{nprobe}")
        index.faiss_index.nprobe = ann.IVF_NPROBE
        out["nlist"] = int(index.faiss_index.nlist)
    elif kind == "hnsw":
        for ef in EF_SEARCHES:
            index.faiss_index.hnsw.efSearch = ef
            run(f"@ef{ef}")
        index.faiss_index.hnsw.efSearch = ann.HNSW_EF_SEARCH
    run()
    mean, cpu = _times(lambda q: index.identify(q, 0.6, 5, "mean", 3), probes[: max(20, queries // 4)])
    out["mean_ms_p50"], out["mean_cpu_ms_p50"] = _pct(mean, 50), _pct(cpu, 50)
    out["peak_mb"] = round(peak_mb(), 1)
    return out


def store_child(size: int, queries: int, threads: int) -> dict:
    """``Gallery.index()`` from a real gallery file of ``size`` embeddings, before and after one enrolment."""
    from siamgui.core.gallery import Gallery, ann
    from siamgui.core.gallery.store import _Stored

    if ann.faiss_module() is not None:  # build threads for the store's snapshots
        ann._build_threads = threads
    vectors, owner, probes, _ = synthetic(size, queries)
    tiny = _Stored(b"x", "copy", b"t", 1, 1, "", "0")  # image bytes are not used by identify
    out = {"size": size, "kind": "store"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite"
        t = time.perf_counter()
        with Gallery(path) as g, g.transaction() as con:
            bounds = np.r_[0, np.flatnonzero(np.diff(owner)) + 1, len(owner)]
            for i in range(len(bounds) - 1):
                iid = con.execute("INSERT INTO identities (name, notes, created) VALUES (?, '', '')",
                                  (f"person {i:07d}",)).lastrowid
                for row in vectors[bounds[i]:bounds[i + 1]]:
                    g._insert_embedding(con, g._insert_example(con, iid, tiny), "bench", row)
        out["write_s"] = round(time.perf_counter() - t, 1)
        out["file_mb"] = round(path.stat().st_size / 2**20, 1)
        del vectors, owner
        gc.collect()
        with Gallery(path) as g:
            t, c = time.perf_counter(), time.process_time()
            index = g.index("bench")
            out["index_load_s"], out["index_load_cpu_s"] = round(time.perf_counter() - t, 2), round(
                time.process_time() - c, 2)
            out["chosen"] = getattr(index, "kind", "numpy")
            times, cpu = _times(lambda q: g.index("bench").identify(q, 0.6, 5, "min"), probes)
            out["identify_via_store_ms_p50"], out["identify_via_store_cpu_ms_p50"] = _pct(times, 50), _pct(cpu, 50)
            with g.transaction() as con:  # one more enrolment: the snapshot is rebuilt from the store
                iid = con.execute("INSERT INTO identities (name, notes, created) VALUES ('new', '', '')").lastrowid
                for row in probes[:PER_IDENTITY]:
                    g._insert_embedding(con, g._insert_example(con, iid, tiny), "bench", row)
            t, c = time.perf_counter(), time.process_time()
            again = g.index("bench")
            out["rebuild_after_enrol_s"], out["rebuild_after_enrol_cpu_s"] = round(time.perf_counter() - t, 2), round(
                time.process_time() - c, 2)
            out["centroids_reused"] = getattr(index, "training", None) is not None and (
                getattr(again, "training", None) is getattr(index, "training", None))
            assert len(again) == size + PER_IDENTITY
    out["peak_mb"] = round(peak_mb(), 1)
    return out


def _spawn(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--kinds", nargs="+", default=["numpy", "exact", "ivf", "hnsw"],
                    choices=("numpy", "exact", "ivf", "hnsw"))
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2, help="faiss build threads (default 2)")
    ap.add_argument("--search-threads", type=int, help="faiss search threads (default: ann.SEARCH_THREADS)")
    ap.add_argument("--store", type=int, nargs="*", default=[], help="gallery-file sizes to time Gallery.index() at")
    ap.add_argument("--json", help="write all figures to this file")
    ap.add_argument("--child", nargs=2, metavar=("SIZE", "KIND"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        size, kind = int(args.child[0]), args.child[1]
        result = store_child(size, args.queries, args.threads) if kind == "store" else child(
            size, kind, args.queries, args.threads, args.search_threads)
        print(json.dumps(result))
        return 0
    rows, stores = [], []
    common = ["--queries", str(args.queries), "--threads", str(args.threads)]
    if args.search_threads:
        common += ["--search-threads", str(args.search_threads)]
    for size in args.sizes:
        found = {}
        for kind in args.kinds:
            r = _spawn(["--child", str(size), kind, *common])
            r.setdefault("size", size)
            r.setdefault("kind", kind)
            found[kind] = r
            print(json.dumps({k: v for k, v in r.items() if not k.startswith("top1")}), file=sys.stderr)
        exact = next((found[k]["top1"] for k in ("exact", "numpy") if "top1" in found.get(k, {})), None)
        for r in found.values():
            for key in [k for k in r if k.startswith("top1")]:
                label = key[len("top1"):]
                if exact is not None:
                    r[f"recall_at_1{label}"] = round(float(np.mean(np.array(r[key]) == np.array(exact))), 4)
                del r[key]
            rows.append(r)
    for size in args.store:
        stores.append(_spawn(["--child", str(size), "store", *common]))
        print(json.dumps(stores[-1]), file=sys.stderr)
    meta = {"dim": DIM, "per_identity": PER_IDENTITY, "queries": args.queries, "threads": args.threads,
            "load_average": os.getloadavg()[0], "cpus": os.cpu_count()}
    print("| size | index | build s (CPU s) | identify p50 ms (CPU) | p90 ms | mean-of-3 p50 ms (CPU) | "
          "recall@1 vs exact | accuracy | index MB | peak MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        if "error" in r:
            print(f"| {r['size']:,} | {r['kind']} | error: {r['error']} |")
            continue
        kind = r["kind"] + (f" (nlist {r['nlist']})" if r["kind"] == "ivf" else "")
        print(f"| {r['size']:,} | {kind} | {r['build_s']} ({r['build_cpu_s']}) | {r['identify_ms_p50']} "
              f"({r['identify_cpu_ms_p50']}) | {r['identify_ms_p90']} | {r['mean_ms_p50']} ({r['mean_cpu_ms_p50']}) | "
              f"{r.get('recall_at_1', '-')} | {r['accuracy']} | {r['index_mb']} | {r['peak_mb']} |")
        for key in sorted((k for k in r if k.startswith("identify_ms_p50@")),
                          key=lambda k: int("".join(c for c in k.split("@")[1] if c.isdigit()))):
            label = key.split("@")[1]
            print(f"| {r['size']:,} | {r['kind']} {label} | | {r[key]} ({r[f'identify_cpu_ms_p50@{label}']}) | "
                  f"{r[f'identify_ms_p90@{label}']} | | {r.get(f'recall_at_1@{label}', '-')} | "
                  f"{r[f'accuracy@{label}']} | | |")
    for s in stores:
        print(json.dumps(s))
    print(json.dumps(meta))
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows, "store": stores}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

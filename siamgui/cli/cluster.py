"""``siamgui cluster DIR --out clusters.json``: sort a photo folder by person."""

from __future__ import annotations

import json
import os

from siamgui.cli.common import EXIT_OK, UsageError, finite_float, open_verifier, progress

METHODS = ("auto", "agglomerative", "chunked", "dbscan")  # siamgui.core.people.cluster.METHODS (no sklearn import to parse)


def add_parser(sub, shared) -> None:
    c = sub.add_parser("cluster", help="sort a photo folder by person (every face of every photo)",
                       parents=shared("model", "device", "precision", "json"))
    c.add_argument("folder", metavar="DIR", help="folder of photos (sub-folders included)")
    c.add_argument("--out", required=True, help="where to write clusters.json")
    c.add_argument("--link-into", metavar="OUT_DIR",
                   help="also write OUT_DIR/person_<id>/ and OUT_DIR/unsorted/ of links to the photos "
                        "(a new or empty folder; the photos are never moved or changed)")
    c.add_argument("--threshold", type=finite_float, help="override the model's threshold")
    c.add_argument("--method", choices=METHODS, default="auto",
                   help="auto (default): agglomerative up to 10,000 faces, chunked above (docs/people.md)")
    c.add_argument("--cache", help="face cache file (default: faces.sqlite in the app's cache folder)")
    c.set_defaults(func=run)


def _check_paths(args) -> None:
    """Refuse what would fail after the long part: before any photo is read."""
    if not os.path.isdir(args.folder):
        raise UsageError(f"{args.folder} is not a folder")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise UsageError(f"the folder of --out does not exist: {out_dir}")
    if args.link_into:
        links = os.path.realpath(args.link_into)
        if os.path.exists(links) and (not os.path.isdir(links) or os.listdir(links)):
            raise UsageError(f"--link-into {args.link_into} is not an empty folder; choose a new one")
        root = os.path.realpath(args.folder)
        if os.path.commonpath([links, root]) == root:
            raise UsageError("--link-into must be outside DIR (the links would be sorted as photos next time)")


def run(args) -> int:
    _check_paths(args)
    from siamgui.core.people.cache import FaceCache
    from siamgui.core.people.cluster import link_into, sort_folder, write_json

    verifier = open_verifier(args)
    with FaceCache(args.cache) as cache:
        result = sort_folder(verifier, args.folder, cache=cache, method=args.method, threshold=args.threshold,
                             progress=progress("photos", args.json))
    write_json(result, args.out)
    links = link_into(result, args.link_into) if args.link_into else 0
    if args.json:
        print(json.dumps({"out": args.out, "people": len(result.clusters), "unsorted": len(result.unsorted),
                          "skipped": len(result.skipped), "faces": result.face_count, "photos": result.photos,
                          "embedded": result.embedded, "no_face": result.no_face, "method": result.method,
                          "threshold": result.threshold, "links": links}))
    else:
        print(result.summary())
        for image, reason in result.skipped[:5]:
            print(f"skipped   {image}: {reason}")
        if len(result.skipped) > 5:
            print(f"skipped   ... {len(result.skipped) - 5} more (see {args.out})")
        print(f"wrote     {args.out}" + (f"\nlinked    {links} photo(s) into {args.link_into}" if links else ""))
    return EXIT_OK

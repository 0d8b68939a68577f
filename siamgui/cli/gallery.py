"""``siamgui gallery ...``: enrol identities and identify probes from the command line.

Every action takes ``--gallery G`` (default: ``gallery.sqlite`` in the app's
data folder) and ``--model`` (default: the bundled model). Bad input (unknown
name, unreadable image, damaged gallery) exits with code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os

from siamgui.cli.common import (EXIT_OK, Parser, UsageError, add_batch_options, batch_progress, existing_mode,
                                finish_batch, finite_float, interrupted_batch, note, open_verifier, positive_int,
                                progress)

#: siamgui.core.face.multi.MAX_FACES (not imported: parsing stays free of the engine)
MAX_FACES = 32
#: siamgui.core.gallery.ann.INDEX_KINDS (not imported, as above)
INDEX_KINDS = ("auto", "numpy", "exact", "approximate")
INDEX_HELP = ("the search index (docs/large-galleries.md): auto (default) chooses by the gallery's size, numpy "
              "scans every embedding, exact and approximate use faiss (pip install 'siamgui[faiss]')")
ALLOW_POOR_HELP = ("face models: also enrol faces judged poor (blurred, small, sideways, badly exposed, "
                   "or no face found); by default they are refused (docs/quality.md)")


def add_parser(sub, shared) -> None:
    """``gallery`` with its actions add/import/list/remove/rename/identify."""
    g = sub.add_parser("gallery", help="one-shot identification: enrol identities, identify probes")
    gsub = g.add_subparsers(dest="gallery_command", parser_class=Parser, metavar="ACTION", required=True)
    gallery_opt = argparse.ArgumentParser(add_help=False)
    gallery_opt.add_argument("--gallery", metavar="G",
                             help="gallery file (default: gallery.sqlite in the app's data folder)")
    common = [gallery_opt, *shared("model", "device", "precision", "json")]
    with_face = [*common, *shared("face")]

    a = gsub.add_parser("add", help="add an identity (or more examples of one) from image files", parents=with_face)
    a.add_argument("name", metavar="NAME")
    a.add_argument("images", nargs="+", metavar="IMAGE")
    a.add_argument("--notes", help="free text kept with the identity")
    a.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images and poor faces instead of failing")
    a.add_argument("--allow-poor", action="store_true", help=ALLOW_POOR_HELP)
    a.set_defaults(func=cmd_add)

    i = gsub.add_parser("import", help="add one identity per sub-folder of DIR", parents=with_face)
    i.add_argument("data_dir", metavar="DIR")
    i.add_argument("--allow-poor", action="store_true", help=ALLOW_POOR_HELP)
    i.set_defaults(func=cmd_import)

    ls = gsub.add_parser("list", help="list the identities", parents=common)
    ls.set_defaults(func=cmd_list)

    r = gsub.add_parser("remove", help="remove an identity and its examples", parents=common)
    r.add_argument("name", metavar="NAME")
    r.set_defaults(func=cmd_remove)

    rn = gsub.add_parser("rename", help="rename an identity", parents=common)
    rn.add_argument("name", metavar="NAME")
    rn.add_argument("new_name", metavar="NEW_NAME")
    rn.set_defaults(func=cmd_rename)

    d = gsub.add_parser("identify", help="rank the enrolled identities for a probe image (or many, with --out)",
                        parents=with_face)
    d.add_argument("images", nargs="+", metavar="IMAGE",
                   help="a probe image; with --out, any number of images and folders (searched recursively)")
    d.add_argument("--top", type=positive_int, default=5, help="candidates to show (default 5)")
    d.add_argument("--rank", choices=("min", "mean"), default="min",
                   help="identity distance: nearest example (min, default) or mean of the k nearest")
    d.add_argument("--k", type=positive_int, default=3, help="examples averaged by --rank mean (default 3)")
    d.add_argument("--threshold", type=finite_float, help="override the model's threshold (Unknown at or above)")
    d.add_argument("--all-faces", action="store_true",
                   help=f"one result per face of the photo, largest first (face models; at most {MAX_FACES} faces)")
    d.add_argument("--index", choices=INDEX_KINDS, default="auto", help=INDEX_HELP)
    add_batch_options(d, "image")
    d.set_defaults(func=cmd_identify)


def _open(args, create: bool = False):
    """The gallery of ``--gallery`` (default: the app's); only enrolment creates a missing one."""
    from siamgui.core.gallery import Gallery

    return Gallery(args.gallery, create=create, index_kind=getattr(args, "index", "auto"))


def _sync(gallery, verifier, quiet: bool) -> None:
    from siamgui.core.gallery import model_fingerprint

    pending = gallery.unembedded_count(model_fingerprint(verifier))
    if pending:
        if not quiet:
            note(f"embedding {pending} stored example(s) for this model")
        res = gallery.sync(verifier, progress=progress("embedding examples", quiet))
        for ex_id, why in res.failed:
            note(f"stored example {ex_id} skipped: {why}")


def _skipped(items, quiet: bool) -> None:
    if quiet:
        return
    for label, why in items:
        note(f"skipped {label}: {why}")


def _min_quality(args, verifier):
    """The quality a face must reach to be enrolled: the default thresholds, None with --allow-poor."""
    if args.allow_poor or not verifier.face_mode or args.face == "whole":
        return None
    from siamgui.core.face.quality import DEFAULT_THRESHOLDS

    return DEFAULT_THRESHOLDS


def cmd_add(args) -> int:
    verifier = open_verifier(args)
    with _open(args, create=True) as g:
        res = g.enroll(verifier, args.name, args.images, notes=args.notes, face_policy=args.face,
                       skip_bad=args.skip_bad, min_quality=_min_quality(args, verifier))
        _skipped(res.skipped, args.json)
        if args.json:
            print(json.dumps({"name": res.name, "added": res.added, "skipped": len(res.skipped),
                              "gallery": str(g.path)}))
        else:
            for msg in res.notes:
                note(msg)
            n = g.identity(res.name).examples
            print(f"added {res.added} example(s) to {res.name!r} ({n} in all) in {g.path}")
    return EXIT_OK


def cmd_import(args) -> int:
    verifier = open_verifier(args)
    with _open(args, create=True) as g:
        res = g.import_folder(verifier, args.data_dir, face_policy=args.face,
                              progress=progress("importing images", args.json),
                              min_quality=_min_quality(args, verifier))
        _skipped(res.skipped, args.json)
        if args.json:
            print(json.dumps({"identities": res.identities, "added": res.added, "skipped": len(res.skipped),
                              "gallery": str(g.path)}))
        else:
            print(f"imported {res.identities} identities, {res.added} example(s) "
                  f"({len(res.skipped)} skipped) into {g.path}")
    return EXIT_OK


def cmd_list(args) -> int:
    fp = None
    if args.model:
        from siamgui.core.gallery import model_fingerprint

        fp = model_fingerprint(open_verifier(args))
    with _open(args) as g:
        idents = g.identities(fp)
        if args.json:
            print(json.dumps({"gallery": str(g.path), "identities": [
                {"name": i.name, "examples": i.examples, "notes": i.notes, "created": i.created,
                 **({"embedded": i.embedded} if fp else {})} for i in idents]}))
            return EXIT_OK
        if not idents:
            print(f"the gallery {g.path} is empty")
            return EXIT_OK
        width = max(len(i.name) for i in idents)
        for i in idents:
            extra = f"  ({i.embedded} embedded for this model)" if fp and i.embedded != i.examples else ""
            notes = f"  {i.notes}" if i.notes else ""
            print(f"{i.name:<{width}}  {i.examples:>3} example(s){extra}{notes}")
        print(f"{len(idents)} identities, {sum(i.examples for i in idents)} examples in {g.path}")
    return EXIT_OK


def cmd_remove(args) -> int:
    with _open(args) as g:
        n = g.remove(args.name)
    if not args.json:
        print(f"removed {args.name!r} ({n} example(s))")
    else:
        print(json.dumps({"removed": args.name, "examples": n}))
    return EXIT_OK


def cmd_rename(args) -> int:
    with _open(args) as g:
        g.rename(args.name, args.new_name)
    print(f"renamed {args.name!r} to {args.new_name!r}")
    return EXIT_OK


def cmd_identify(args) -> int:
    if args.out or args.resume or args.overwrite:
        return _identify_batch(args)
    if len(args.images) != 1 or os.path.isdir(args.images[0]):
        raise UsageError("gallery identify: several images or a folder need --out RESULTS.csv")
    args.image = args.images[0]
    if args.all_faces:
        return _identify_faces(args)
    verifier = open_verifier(args)
    with _open(args) as g:
        _sync(g, verifier, args.json)
        res = g.identify(verifier, args.image, top=args.top, rank=args.rank, k=args.k, face_policy=args.face)
    if res.no_face:  # as compare: no identity claimed, one line, nothing on stdout
        raise UsageError(f"no face found in {args.image}, so no identity; use --face whole to use the whole image")
    if verifier.face_mode and res.face is not None and (res.face.count != 1 or res.face.mode != "face"):
        note(res.face.message())
    if args.json:
        print(json.dumps(res.to_dict()))
        return EXIT_OK
    print(f"best      {res.best if res.best is not None else 'Unknown'}")
    print(f"distance  {res.distance:.4f}\nthreshold {res.threshold:.4f}")
    for n, c in enumerate(res.candidates, 1):
        print(f"{n:>2}. {c.name}  {c.distance:.4f}")
    return EXIT_OK


def _identify_batch(args) -> int:
    """``identify IMAGE_OR_DIR... --out RESULTS.csv [--resume | --overwrite]``: one row per image."""
    if not args.out:
        raise UsageError("gallery identify: --resume and --overwrite go with --out RESULTS.csv")
    if args.all_faces:
        raise UsageError("gallery identify: --all-faces cannot be combined with --out")
    from siamgui.core.batch import plan_identify, run_identify

    batch = plan_identify(args.images, args.out, existing_mode(args))  # bad input refused before the model loads
    verifier = open_verifier(args)
    with _open(args) as g:
        _sync(g, verifier, args.json)
        try:
            run_identify(verifier, g, batch, top=args.top, rank=args.rank, k=args.k, face_policy=args.face,
                         progress=batch_progress("identifying", "images", args.json))
        except KeyboardInterrupt:
            return interrupted_batch(batch)
    return finish_batch(args, batch, "rows", "image(s) could not be read")


def _identify_faces(args) -> int:
    """``identify --all-faces``: a ranking per face, largest first."""
    if args.face == "whole":
        raise UsageError("gallery identify: --all-faces needs face detection; it cannot be used with --face whole")
    verifier = open_verifier(args)
    if not verifier.face_mode:
        note("the model is not a face model: one result for the whole image")
    with _open(args) as g:
        _sync(g, verifier, args.json)
        res = g.identify_faces(verifier, args.image, top=args.top, rank=args.rank, k=args.k)
    for msg in res.notes:
        note(msg)
    if args.json:
        print(json.dumps(res.to_dict()))
        return EXIT_OK
    for n, f in enumerate(res.faces, 1):
        where = "whole image" if f.box is None else "box [" + ", ".join(str(v) for v in f.box) + "]"
        if f.result is None:
            print(f"face {n}  {where}  not judged: {f.issue}")
            continue
        others = ", ".join(f"{c.name} {c.distance:.4f}" for c in f.result.candidates[1:])
        print(f"face {n}  {where}  {f.label}  {f.result.distance:.4f}" + (f"  (then {others})" if others else ""))
    print(f"threshold {res.threshold:.4f}")
    return EXIT_OK

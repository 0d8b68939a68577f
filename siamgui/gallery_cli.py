"""``siamgui gallery ...``: enrol identities and identify probes from the command line.

Registered by :func:`siamgui.cli.build_parser` through :func:`add_cli_commands`.
Every sub-command takes ``--gallery G`` (default: ``gallery.sqlite`` in the app's
data folder) and ``--model M`` (default: the bundled model). Bad input (unknown
name, unreadable image, damaged gallery) exits with code 2 and one line on stderr.
"""

from __future__ import annotations

import json
import sys

EXIT_OK = 0


def _open(args, create: bool = False):
    """The gallery of ``--gallery`` (default: the app's); only enrolment creates a missing one."""
    from siamgui.core.gallery import Gallery

    return Gallery(args.gallery, create=create)


def _verifier(args):
    from siamgui.cli import _device_note, _model_arg
    from siamgui.core.verifier import Verifier

    verifier = Verifier(_model_arg(args), device=args.device, threshold=getattr(args, "threshold", None),
                        precision=args.precision)
    _device_note(verifier)
    return verifier


def _progress(label: str, quiet: bool):
    tty = sys.stderr.isatty() and not quiet

    def cb(done: int, total: int) -> None:
        if tty and total:
            print(f"\r{label} {done}/{total}", end="" if done < total else "\n", file=sys.stderr)

    return cb


def _sync(gallery, verifier, quiet: bool) -> None:
    from siamgui.core.gallery import model_fingerprint

    pending = gallery.unembedded_count(model_fingerprint(verifier))
    if pending:
        if not quiet:
            print(f"siamgui: note: embedding {pending} stored example(s) for this model", file=sys.stderr)
        res = gallery.sync(verifier, progress=_progress("embedding examples", quiet))
        for ex_id, why in res.failed:
            print(f"siamgui: note: stored example {ex_id} skipped: {why}", file=sys.stderr)


def _skipped(items, quiet: bool) -> None:
    if quiet:
        return
    for label, why in items:
        print(f"siamgui: note: skipped {label}: {why}", file=sys.stderr)


def cmd_add(args) -> int:
    verifier = _verifier(args)
    with _open(args, create=True) as g:
        res = g.enroll(verifier, args.name, args.images, notes=args.notes, face_policy=args.face,
                       skip_bad=args.skip_bad)
        _skipped(res.skipped, args.json)
        if args.json:
            print(json.dumps({"name": res.name, "added": res.added, "skipped": len(res.skipped),
                              "gallery": str(g.path)}))
        else:
            for note in res.notes:
                print(f"siamgui: note: {note}", file=sys.stderr)
            n = g.identity(res.name).examples
            print(f"added {res.added} example(s) to {res.name!r} ({n} in all) in {g.path}")
    return EXIT_OK


def cmd_import(args) -> int:
    verifier = _verifier(args)
    with _open(args, create=True) as g:
        res = g.import_folder(verifier, args.data_dir, face_policy=args.face,
                              progress=_progress("importing images", args.json))
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

        fp = model_fingerprint(_verifier(args))
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
    verifier = _verifier(args)
    with _open(args) as g:
        _sync(g, verifier, args.json)
        res = g.identify(verifier, args.image, top=args.top, rank=args.rank, k=args.k, face_policy=args.face)
    if verifier.face_mode and res.face is not None and (res.face.count != 1 or res.face.mode != "face"):
        print(f"siamgui: note: {res.face.message()}", file=sys.stderr)
    if args.json:
        print(json.dumps(res.to_dict()))
        return EXIT_OK
    print(f"best      {res.best if res.best is not None else 'Unknown'}")
    print(f"distance  {res.distance:.4f}\nthreshold {res.threshold:.4f}")
    for n, c in enumerate(res.candidates, 1):
        print(f"{n:>2}. {c.name}  {c.distance:.4f}")
    return EXIT_OK


def cmd_evaluate_one_shot(args) -> int:
    """``siamgui evaluate --one-shot DATA_DIR --way N --shots K --episodes E [--json]``."""
    from siamgui.cli import UsageError
    from siamgui.core.gallery.oneshot import run_one_shot

    if args.data_dir or args.pairs or args.lfw_pairs:
        raise UsageError("--one-shot DATA_DIR cannot be combined with DATA_DIR, --pairs or --lfw-pairs")
    verifier = _verifier(args)
    res = run_one_shot(verifier, args.one_shot, way=args.way, shots=args.shots, episodes=args.episodes,
                       seed=args.seed, rank=args.rank, progress=_progress("embedding images", args.json))
    if args.json:
        print(json.dumps(res.to_dict()))
    else:
        print(f"{res.way}-way {res.shots}-shot, {res.episodes} episodes ({res.rank} distance; "
              f"{res.classes} classes, {res.images} images)\n"
              f"accuracy  {res.accuracy:.4f} ± {res.ci95:.4f} (95 % CI; Wilson {res.ci_low:.4f}-{res.ci_high:.4f})\n"
              f"chance    {res.chance:.4f}")
    return EXIT_OK


def add_cli_commands(sub, parser_class) -> None:
    """Add ``gallery`` (add/import/list/remove/rename/identify) to the sub-parsers ``sub``."""
    from siamgui.cli import DEVICES, PRECISION_HELP, PRECISIONS, _finite_float, _positive_int

    g = sub.add_parser("gallery", help="one-shot identification: enrol identities, identify probes")
    gsub = g.add_subparsers(dest="gallery_command", parser_class=parser_class, metavar="ACTION", required=True)

    def common(p, model=True):
        p.add_argument("--gallery", metavar="G", help="gallery file (default: gallery.sqlite in the app's data folder)")
        p.add_argument("--model", metavar="M", help="model file (.safetensors); default: the bundled model")
        p.add_argument("--device", choices=DEVICES, default="auto")
        p.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
        p.add_argument("--json", action="store_true", help="print one JSON object")
        if model:
            p.add_argument("--face", choices=("largest", "whole"), default="largest",
                           help="face models: use the main face (default: the largest, or the most "
                                "central of similar size) or the whole image")

    a = gsub.add_parser("add", help="add an identity (or more examples of one) from image files")
    a.add_argument("name", metavar="NAME")
    a.add_argument("images", nargs="+", metavar="IMAGE")
    a.add_argument("--notes", help="free text kept with the identity")
    a.add_argument("--skip-bad", action="store_true", help="skip unreadable images instead of failing")
    common(a)
    a.set_defaults(func=cmd_add)

    i = gsub.add_parser("import", help="add one identity per sub-folder of DIR")
    i.add_argument("data_dir", metavar="DIR")
    common(i)
    i.set_defaults(func=cmd_import)

    ls = gsub.add_parser("list", help="list the identities")
    common(ls, model=False)
    ls.set_defaults(func=cmd_list)

    r = gsub.add_parser("remove", help="remove an identity and its examples")
    r.add_argument("name", metavar="NAME")
    common(r, model=False)
    r.set_defaults(func=cmd_remove)

    rn = gsub.add_parser("rename", help="rename an identity")
    rn.add_argument("name", metavar="NAME")
    rn.add_argument("new_name", metavar="NEW_NAME")
    common(rn, model=False)
    rn.set_defaults(func=cmd_rename)

    d = gsub.add_parser("identify", help="rank the enrolled identities for a probe image")
    d.add_argument("image", metavar="IMAGE")
    d.add_argument("--top", type=_positive_int, default=5, help="candidates to show (default 5)")
    d.add_argument("--rank", choices=("min", "mean"), default="min",
                   help="identity distance: nearest example (min, default) or mean of the k nearest")
    d.add_argument("--k", type=_positive_int, default=3, help="examples averaged by --rank mean (default 3)")
    d.add_argument("--threshold", type=_finite_float, help="override the model's threshold (Unknown at or above)")
    common(d)
    d.set_defaults(func=cmd_identify)

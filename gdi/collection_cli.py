"""`gdi collection new|check`: draft a collection definition from a member's file, check definitions."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml



def add_parser(sub) -> None:
    c = sub.add_parser("collection", help="draft a collection definition from a file, or check definitions")
    csub = c.add_subparsers(dest="collection_command", required=True)
    n = csub.add_parser("new", help="draft collections/<ID>.yml from a member's real file")
    n.add_argument("id")
    n.add_argument("--from", dest="source", required=True, help="the file (any format gdi ingest reads)")
    n.add_argument("--layer", help="layer (GeoPackage) or file (zip) to read")
    n.add_argument("--title", help="German title (default: the id)")
    n.add_argument("--encoding", help="text encoding of DBF/CSV when it is not detected right, e.g. cp850")
    n.add_argument("--out", required=True, help="where to write the YAML (never overwritten)")
    n.set_defaults(func=_cmd_new)
    k = csub.add_parser("check", help="validate definitions; one line per problem")
    k.add_argument("paths", nargs="*", help="YAML files or folders (default: GDI_COLLECTIONS or collections/); "
                                            "checked together with the configured definitions they would join")
    k.add_argument("--alone", action="store_true",
                   help="check only the given definitions, not together with the configured ones")
    k.set_defaults(func=_cmd_check)


# -- gdi collection new --------------------------------------------------------------------------

def _refuse(german: str, english: str) -> int:
    print(f"gdi: refused: {german} / {english}", file=sys.stderr)
    return 2


def _cmd_new(args: argparse.Namespace) -> int:
    from gdi import settings
    from gdi.collection_draft import ID, DraftError, draft
    from gdi.collections import parse
    from gdi.ingest import IngestRefused
    from gdi.ingest.limits import FileLimits
    from gdi.ingest.read import read_upload

    cid, source, out = args.id, Path(args.source), Path(args.out)
    if not ID.fullmatch(cid):
        return _refuse(f"ungültige Collection-ID '{cid}': Kleinbuchstaben, Ziffern und _, am Anfang ein Buchstabe "
                       "(z. B. flaechennutzung)",
                       f"invalid collection id '{cid}': lower-case letters, digits and _, starting with a letter "
                       "(e.g. land_use_plans)")
    if out.exists() or out.is_symlink():
        return _refuse(f"{out} gibt es schon – einen anderen Pfad angeben oder die Datei löschen",
                       f"{out} already exists – use another path or delete it")
    if not out.parent.is_dir():
        return _refuse(f"den Ordner {out.parent} gibt es nicht", f"the folder {out.parent} does not exist")
    if not source.is_file():
        what = "gibt es nicht" if not source.exists() else "ist keine gewöhnliche Datei"
        return _refuse(f"{source} {what}",
                       f"{source} {'does not exist' if not source.exists() else 'is not a regular file'}")
    try:
        limits = settings.get().ingest          # the limits gdi ingest applies (config/gdi.yml, ingest:)
    except settings.SettingsError as exc:
        print(f"gdi: {exc}", file=sys.stderr)
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="gdi-draft-") as tmp:
            raw = read_upload(source, workdir=Path(tmp), layer=args.layer, encoding=args.encoding,
                              limits=FileLimits.of(limits))
            d = draft(raw.frame, cid, title=args.title, source=source.name, format=raw.format, layer=raw.layer,
                      epsg=raw.declared_epsg, encoding=raw.encoding)
    except IngestRefused as exc:         # one English line naming the file and why
        return _refuse(f"{source.name} ist nicht lesbar", str(exc))
    except DraftError as exc:
        print(f"gdi: refused: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 — whatever GDAL or pandas trip on: one line, never a traceback
        return _refuse(f"{source.name} ist nicht lesbar",
                       f"{source.name} cannot be read: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    text = d.yaml()
    _, problems = parse(yaml.safe_load(text), out.name)
    if problems:        # a bug of the drafting, never the file's fault: write nothing
        for line in problems:
            print(f"gdi: draft problem: {line}", file=sys.stderr)
        return 1
    try:
        with open(out, "x", encoding="utf-8") as fh:     # "x": never overwrite, not even one written meanwhile
            fh.write(text)
    except FileExistsError:
        return _refuse(f"{out} gibt es schon – einen anderen Pfad angeben oder die Datei löschen",
                       f"{out} already exists – use another path or delete it")
    props = ", ".join(f"{f.name} ({f.type})" for f in d.fields)
    print(f"gdi: wrote {out}: {d.geometry_type} from {d.features} features; properties {props}")
    for f in d.fields:
        if f.terms:
            terms = ", ".join(t.label for t in f.terms)
            colour = " and map.colour_by" if f is d.colour_by else ""
            print(f"gdi: note: {f.source} drafted as the vocabulary {f.name} ({terms}){colour}")
    print(f"gdi: review the title, description, licence, attribution and required fields, "
          f"then: gdi collection check {out}")
    return 0


# -- gdi collection check ------------------------------------------------------------------------

class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The safe loader, noting keys given twice in one mapping (YAML would silently keep the last)."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.twice: list[tuple[int, str]] = []

    def construct_mapping(self, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = self.construct_object(key_node, deep=True)
                if key in seen:
                    self.twice.append((key_node.start_mark.line + 1, str(key)))
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_definition(path: Path, shown: str) -> tuple[bool, Any, list[str]]:
    """(read, the parsed YAML document, problems reading it): each problem one line with file and line number;
    read is False when there is no document to check further."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return False, None, [f"{shown}: file: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position "
                             f"{exc.start})"]
    except OSError as exc:
        return False, None, [f"{shown}: file: cannot be read ({exc.strerror or exc})"]
    loader = _Loader(text)
    try:
        doc = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        what = (exc.problem or "") + (f" ({exc.context})" if exc.context else "")
        return False, None, [f"{shown}: {where}: YAML syntax error: {what}"]
    except yaml.YAMLError as exc:
        return False, None, [f"{shown}: document: YAML error: {' '.join(str(exc).split())}"]
    finally:
        loader.dispose()
    return True, doc, [f"{shown}: line {line}: key '{key}' given twice (the second replaces the first)"
                 for line, key in loader.twice]


def check_definitions(paths: list[Path], context: list[Path]) -> tuple[int, int, list[str]]:
    """(definitions, definitions without problems, problem lines) of paths checked alone and together
    with the definitions in the folders of context that are not among paths."""
    from gdi.collections import check_set, definition_files, parse

    problems: list[str] = []
    files: list[Path] = []
    missing = 0
    for p in paths:
        if not p.exists():
            problems.append(f"{p}: file: not found")
            missing += 1
        elif p.is_dir():
            found = definition_files([p])
            if not found:
                problems.append(f"{p}: folder: no definitions in it (*.yml, *.yaml)")
                missing += 1
            files += found
        else:
            files.append(p)
    given = {f.resolve() for f in files}
    # the configured definitions first: a new file that clashes with one of them is the one named
    files = [f for f in definition_files(context) if f.resolve() not in given] + files
    seen: set[Path] = set()
    parsed: dict[str, Any] = {}
    where_id: dict[str, str] = {}
    ok = 0
    checked = missing
    for f in files:
        if f.resolve() in seen:
            continue
        seen.add(f.resolve())
        checked += 1
        shown = str(f)
        read, doc, lines = _read_definition(f, shown)
        if read:
            coll, found = parse(doc, shown)
            lines += found
            cid = doc.get("id") if isinstance(doc, dict) else None
            if isinstance(cid, str) and cid in where_id:
                lines.append(f"{shown}: id: collection '{cid}' is also defined in {where_id[cid]}")
                coll = None
            elif isinstance(cid, str):
                where_id[cid] = shown
            if coll is not None and not lines:
                parsed[coll.id] = coll
        problems += lines
        ok += not lines
    problems += check_set(parsed)
    return checked, ok, problems


def _cmd_check(args: argparse.Namespace) -> int:
    from gdi import settings

    configured = settings.collections_dirs()
    paths = [Path(p) for p in args.paths] or configured
    context = [] if args.alone or not args.paths else configured
    total, ok, problems = check_definitions(paths, context)
    for line in problems:
        print(line)
    s = "" if total == 1 else "s"
    if problems:
        print(f"{ok} of {total} definition{s} OK, {len(problems)} problem{'' if len(problems) == 1 else 's'}")
        return 1
    if not total:
        print("no definitions found (*.yml, *.yaml)")
        return 1
    extra = f" (with the configured ones in {', '.join(map(str, configured))})" if context else ""
    print(f"{total} definition{s} OK{extra}")
    return 0

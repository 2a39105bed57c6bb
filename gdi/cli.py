"""`gdi`: the command line of the regional GDI.

Every command does the obvious thing and says what happened in one line per
step; a refused upload prints one line with the reason and exits non-zero.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gdi.messages import Lang, Text, terminal_lang, text_of


def _lang() -> Lang:
    return terminal_lang(os.environ)


def _refused(text: Text) -> int:
    """One line on stderr in the terminal's language; the exit status of a refusal."""
    if _lang() == "de":
        print(f"gdi: abgelehnt: {text.render('de')}", file=sys.stderr)
    else:
        print(f"gdi: refused: {text.render('en')}", file=sys.stderr)
    return 2


def _cmd_ingest(args: argparse.Namespace) -> int:
    from gdi.ingest.pipeline import Options
    from gdi.upload import ingest_and_publish

    report = ingest_and_publish(Path(args.path), Options(
        collection=args.collection, member=args.member, dataset=args.dataset, crs=args.crs,
        encoding=args.encoding, layer=args.layer, dry_run=args.dry_run,
        report_file=Path(args.report) if args.report else None, uploader=_cli_user(), admin=args.admin,
        progress=_progress_bar() if sys.stderr.isatty() else None,
    ))
    if sys.stderr.isatty():
        print("\r" + " " * 60 + "\r", end="", file=sys.stderr)
    from gdi import settings

    where = settings.paths().reports / f"{report.id}.html"
    if report.status != "accepted":
        return _refused(report.refusal_text())
    c = report.counts
    crs = report.crs.get("epsg")
    what = "checked (dry run, nothing published)" if report.dry_run else f"published as version {report.version}"
    print(f"gdi: {report.file} → {report.collection} (member {report.member}, dataset {report.dataset}): "
          f"{c['accepted']} accepted, {c['repaired']} repaired, {c['rejected']} rejected of {c['read']}; "
          f"{report.format}, EPSG:{crs} ({report.crs.get('source')}); {what}")
    for w in report.warnings:
        print(f"gdi: note: {w}")
    print(f"gdi: report: {where}")
    if not report.dry_run:
        _map_note()
    return 0


def _map_note() -> None:
    from gdi.publish import servers_running

    if not servers_running():
        print("gdi: note: the regional map is rebuilt when gdi serve starts (or now with gdi publish); "
              "a running server follows by itself")


def _progress_bar():
    """A one-line progress bar on a terminal; nothing when output goes to a file or a pipe."""
    def show(stage: str, fraction: float) -> None:
        done = int(fraction * 30)
        print(f"\r[{'#' * done}{'.' * (30 - done)}] {fraction:4.0%} {stage:<12}", end="", file=sys.stderr, flush=True)
    return show


def _cli_user() -> str:
    import getpass

    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _collection_and_member(args: argparse.Namespace):
    from gdi.collections import CollectionError, get_collection
    from gdi.datasets import check_dataset_name, version_number
    from gdi.ingest.territory import check_member_key

    try:
        if getattr(args, "dataset", None) is not None:
            check_dataset_name(args.dataset)
        if getattr(args, "to", None) is not None and args.func is _cmd_rollback:
            version_number(args.to)
        return get_collection(args.collection), check_member_key(args.member)
    except (CollectionError, ValueError) as exc:
        raise SystemExit(f"gdi: {text_of(exc).render(_lang())}")


def _cmd_history(args: argparse.Namespace) -> int:
    from gdi.store import open_store

    collection, member = _collection_and_member(args)
    versions = open_store().history(collection, member, args.dataset)
    if args.json:
        print(json.dumps([v.__dict__ for v in versions], ensure_ascii=False, indent=2))
        return 0
    if not versions:
        de_dataset, en_dataset = (f", Datensatz {args.dataset}", f", dataset {args.dataset}") if args.dataset else ("", "")
        print("gdi: " + Text(f"keine Versionen von {collection.id} für Mitglied {member}{de_dataset}",
                             f"no versions of {collection.id} for member {member}{en_dataset}").render(_lang()))
        return 0
    print(f"{'dataset':<24} {'ver':>4} {'':1} {'created':<20} {'action':<9} {'features':>8}  {'by':<16} file / sha256")
    for v in versions:
        what = v.file or ""
        if v.action == "rollback":
            what = f"restored version {v.restored_from} ({what})"
        elif v.action == "withdraw":
            what = "withdrawn"
        print(f"{v.dataset:<24} {v.version:>4} {'*' if v.live else ' '} {v.created:<20} {v.action:<9} {v.count:>8}  "
              f"{(v.uploader or '-'):<16} {what} {(v.sha256 or '')[:12]}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from gdi.files import write_atomically
    from gdi.ingest.reports import report_document

    kind = "json" if args.format == "json" else ("html_en" if args.lang == "en" else "html")
    document = report_document(args.id, kind)      # with PostGIS from the store, whichever server wrote it
    if document is None:
        print(f"gdi: no report {args.id} (see the report links of gdi history or /uploads)", file=sys.stderr)
        return 2
    text = document.read_text(encoding="utf-8") if isinstance(document, Path) else document
    if not args.out:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    write_atomically(Path(args.out), text)
    print(f"gdi: wrote {args.out}")
    return 0


def _cmd_original(args: argparse.Namespace) -> int:
    from gdi.ingest.originals import original_into
    from gdi.store import open_store

    collection, member = _collection_and_member(args)
    version = next((v for v in open_store().history(collection, member, args.dataset) if v.version == args.version),
                   None)
    name = f"{collection.id}/{member}/{args.dataset}"
    if version is None or not version.original:
        print(f"gdi: {name} has no version {args.version} with an original file", file=sys.stderr)
        return 2
    if not original_into(version.original, Path(args.out)):
        print(f"gdi: the original of {name} version {args.version} ({version.original}) is kept nowhere",
              file=sys.stderr)
        return 2
    print(f"gdi: wrote {args.out} ({version.file}, sha256 {version.sha256})")
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from gdi.ingest import IngestRefused
    from gdi.ingest.pipeline import rollback
    from gdi.publish import publish
    from gdi.store import open_store
    from gdi.store.base import VersionNotFound

    collection, member = _collection_and_member(args)
    store = open_store()
    try:
        info = rollback(collection, member, args.dataset, to_version=args.to, admin=args.admin,
                        uploader=_cli_user(), store=store)
    except (VersionNotFound, IngestRefused) as exc:
        return _refused(text_of(exc))
    publish(store=store, viewer=False)
    _map_note()
    restored = [v for v in store.history(collection, member, args.dataset) if v.version == info.version][0]
    print(f"gdi: {collection.id}/{member}/{args.dataset}: version {restored.restored_from} restored "
          f"as version {info.version} ({info.count} features); published")
    return 0


def _cmd_withdraw(args: argparse.Namespace) -> int:
    from gdi.ingest import IngestRefused
    from gdi.ingest.pipeline import withdraw
    from gdi.publish import publish
    from gdi.store import open_store
    from gdi.store.base import DatasetNotFound

    collection, member = _collection_and_member(args)
    store = open_store()
    try:
        info = withdraw(collection, member, args.dataset, admin=args.admin, uploader=_cli_user(), store=store)
    except (DatasetNotFound, IngestRefused) as exc:
        return _refused(text_of(exc))
    publish(store=store, viewer=False)
    _map_note()
    print(f"gdi: {collection.id}/{member}/{args.dataset}: withdrawn as version {info.version} "
          f"(gdi rollback brings it back); published")
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from gdi.publish import publish

    out = publish()
    for k, v in out.items():
        print(f"gdi: {k}: {v}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from gdi.server.run import serve

    return serve(args.host, args.port, args.workers)


def _cmd_demo(args: argparse.Namespace) -> int:
    from gdi.demo import load_demo
    from gdi.server.run import serve

    load_demo(force=args.reload)
    if args.no_serve:
        from gdi.publish import publish

        publish()
        return 0
    return serve(args.host, args.port, args.workers)


def _cmd_token(args: argparse.Namespace) -> int:
    from gdi.server import tokens

    if args.action == "create":
        try:
            token, secret = tokens.create(args.member, args.name, args.admin)
        except ValueError as exc:
            print(f"gdi: {text_of(exc).render(_lang())}", file=sys.stderr)
            return 2
        kind = "admin token (may act for any member)" if token.admin else f"token for member {token.member}"
        print(f"gdi: created {kind}, id {token.id}{' (' + token.name + ')' if token.name else ''}.")
        print("gdi: it is shown only now; send it as 'Authorization: Bearer <token>'.")
        print(secret)
        return 0
    if args.action == "list":
        for t in tokens.list_tokens():
            state = f"revoked {t.revoked}" if t.revoked else "active"
            print(f"{t.id}  member {t.member:<9} {'admin ' if t.admin else ''}{(t.name or ''):<20} "
                  f"created {t.created}  {state}")
        return 0
    if not args.id:
        print("gdi: give the token id to revoke (see gdi token list)", file=sys.stderr)
        return 2
    if tokens.revoke(args.id):
        print(f"gdi: token {args.id} revoked")
        return 0
    print(f"gdi: no active token with id {args.id}", file=sys.stderr)
    return 2


def _cmd_migrate(args: argparse.Namespace) -> int:
    from gdi.collections import load_collections
    from gdi.store import StoreError, open_store
    from gdi.store.migrate import migrate

    source = open_store()
    target = open_store("gpkg" if args.to == "gpkg" else args.to)
    if repr(source) == repr(target):
        print("gdi: source and target are the same store", file=sys.stderr)
        return 2
    try:
        result = migrate(source, target, load_collections())
    except StoreError as exc:
        print(f"gdi: refused: {exc}", file=sys.stderr)
        return 2
    print(f"gdi: copied {result.datasets} datasets, {result.versions} versions, {result.features} live features "
          f"from {source!r} to {target!r}; counts verified. Set GDI_STORE accordingly and run gdi publish.")
    return 0


def _cmd_viewer(args: argparse.Namespace) -> int:
    from gdi.collections import load_collections
    from gdi.store import open_store
    from gdi.publish.map_build import build_from_store

    out = build_from_store(open_store(), load_collections(), Path(args.out), inline_assets=True, lang=args.lang)
    print(f"gdi: wrote {out}")
    return 0


def _cmd_masterportal(args: argparse.Namespace) -> int:
    from gdi.collections import load_collections
    from gdi.files import write_atomically
    from gdi.masterportal import services
    from gdi.publish import current_url
    from gdi.store import open_store

    url = current_url()
    layers = services(load_collections(), open_store(), url=url)
    write_atomically(Path(args.out), json.dumps(layers, ensure_ascii=False, indent=2) + "\n")
    print(f"gdi: wrote {len(layers)} Masterportal OAF layers for {url} to {args.out}")
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from gdi.store import open_store

    rows = [d.__dict__ for d in open_store().datasets()]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for d in rows:
            print(f"{d['collection']:<16} {d['member']:<9} {d['dataset']:<24} {d['count']:>7}  {d['updated']}  v{d['version']}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gdi", description="Regional geodata infrastructure: ingest, publish, serve.")
    sub = p.add_subparsers(dest="command", required=True)

    i = sub.add_parser("ingest", help="normalise, validate, store and publish a member upload")
    i.add_argument("path")
    i.add_argument("--collection", required=True, help="collection id (see collections/*.yml)")
    i.add_argument("--member", required=True, help="uploading member: 8-digit AGS or 5-digit county key")
    i.add_argument("--dataset", help="dataset name (default: file name without extension)")
    i.add_argument("--crs", help="CRS of the file when it declares none or a wrong one, e.g. EPSG:31467")
    i.add_argument("--encoding", help="text encoding of DBF/CSV, e.g. cp1252")
    i.add_argument("--layer", help="layer (GeoPackage) or file (zip) to read")
    i.add_argument("--dry-run", action="store_true", help="check and report only; publish nothing")
    i.add_argument("--report", help="also write the report here (.json or .html)")
    i.add_argument("--admin", action="store_true",
                   help="act with the county's authority, as an admin token does (needed for collections "
                        "declared write: county, such as the territory)")
    i.set_defaults(func=_cmd_ingest)

    # `gdi collection new|check`: see gdi/collection_cli.py
    from gdi.collection_cli import add_parser as add_collection_parser

    add_collection_parser(sub)

    pb = sub.add_parser("publish", help="regenerate the pygeoapi config, OpenAPI document and viewer")
    pb.set_defaults(func=_cmd_publish)

    for name, func, helptext in (("serve", _cmd_serve, "serve the OGC API and the viewer"),
                                 ("demo", _cmd_demo, "load the bundled real data, publish and serve")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--host", default="127.0.0.1")
        s.add_argument("--port", type=int, default=5000)
        s.add_argument("--workers", type=int, default=None)
        if name == "demo":
            s.add_argument("--reload", action="store_true", help="load the demo data again")
            s.add_argument("--no-serve", action="store_true", help="load and publish only")
        s.set_defaults(func=func)

    t = sub.add_parser("token", help="create, list or revoke upload tokens")
    t.add_argument("action", choices=["create", "list", "revoke"])
    t.add_argument("id", nargs="?", help="token id (revoke)")
    t.add_argument("--member", help="member key the token writes for (create)")
    t.add_argument("--name", help="a label, e.g. the person or system using it")
    t.add_argument("--admin", action="store_true", help="may act for any member (the county's GIS team)")
    t.set_defaults(func=_cmd_token)

    mg = sub.add_parser("migrate", help="copy the store, versions included, to PostGIS or back to the GeoPackage")
    mg.add_argument("--to", required=True, help="postgresql://user@host:port/db, or gpkg (the GeoPackage in GDI_HOME)")
    mg.set_defaults(func=_cmd_migrate)

    v = sub.add_parser("viewer", help="write the regional map as one self-contained HTML file")
    v.add_argument("--out", required=True)
    v.add_argument("--lang", default="de", choices=["de", "en"])
    v.set_defaults(func=_cmd_viewer)

    mp = sub.add_parser("masterportal", help="write Masterportal services.json layer entries, one per collection")
    mp.add_argument("--out", required=True, help="the services.json file to write")
    mp.set_defaults(func=_cmd_masterportal)

    h = sub.add_parser("history", help="list the versions of a member's datasets (audit log)")
    h.add_argument("--collection", required=True)
    h.add_argument("--member", required=True)
    h.add_argument("--dataset")
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=_cmd_history)

    rp = sub.add_parser("report", help="print (or write) an ingest report, wherever it is kept")
    rp.add_argument("id", help="the report id (a job's or a version's 'report')")
    rp.add_argument("--format", default="json", choices=["json", "html"])
    rp.add_argument("--lang", default="de", choices=["de", "en"], help="language of the HTML report")
    rp.add_argument("--out", help="write it to this file instead of printing it")
    rp.set_defaults(func=_cmd_report)

    o = sub.add_parser("original", help="write the original file of one version of a dataset (audit log)")
    o.add_argument("--collection", required=True)
    o.add_argument("--member", required=True)
    o.add_argument("--dataset", required=True)
    o.add_argument("--version", required=True, type=int)
    o.add_argument("--out", required=True, help="the file to write")
    o.set_defaults(func=_cmd_original)

    r = sub.add_parser("rollback", help="restore the previous (or a given) version of a dataset and republish")
    r.add_argument("--collection", required=True)
    r.add_argument("--member", required=True)
    r.add_argument("--dataset", required=True)
    r.add_argument("--to", type=int, help="version number to restore (default: the one before the live version)")
    r.add_argument("--admin", action="store_true", help="act with the county's authority (collections declared write: county)")
    r.set_defaults(func=_cmd_rollback)

    w = sub.add_parser("withdraw", help="take a dataset down (a new version without features) and republish")
    w.add_argument("--collection", required=True)
    w.add_argument("--member", required=True)
    w.add_argument("--dataset", required=True)
    w.add_argument("--admin", action="store_true", help="act with the county's authority (collections declared write: county)")
    w.set_defaults(func=_cmd_withdraw)

    d = sub.add_parser("datasets", help="list the stored datasets per collection and member")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_cmd_datasets)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

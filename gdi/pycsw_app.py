"""The CSW 2.0.2 catalogue: pycsw, in pycsw's own environment.

This module runs *inside the pycsw environment* (settings ``catalogue.environment``, made by
``make install``), never in gdi's: pycsw 2.6 pins an OWSLib older than the one gdi uses, so it
gets an interpreter of its own and this module imports nothing but pycsw and the standard
library. Two entry points:

* ``application`` — the WSGI app gunicorn serves on 127.0.0.1 (``gdi serve`` starts it;
  gdi's app proxies ``/csw`` to it). pycsw's own ``pycsw.wsgi`` lets a request choose the
  configuration file (a ``config=`` parameter); this one always uses ``PYCSW_CONFIG``.
  Before answering it makes sure the repository holds the ISO documents of the last publish:
  each publish writes the documents and their key (section ``[gdi]`` of the configuration);
  when the key differs from the one the repository was built from, the repository is rebuilt
  (a few milliseconds in this process, where pycsw is imported already; an upload never waits
  for the seconds a separate loader process would take to start).
* ``python -m gdi.pycsw_app load CONFIG`` — the same rebuild from the command line.

A rebuild writes a new SQLite file and moves it into place under a lock, so a request reads the
old or the new repository, never half of one.
"""
from __future__ import annotations

import configparser
import os
import sys


def application(environ, start_response):
    from pycsw import server

    environ["local.app_root"] = os.path.dirname(os.environ["PYCSW_CONFIG"])
    if ":" in environ.get("HTTP_HOST", ""):
        environ["HTTP_HOST"] = environ["HTTP_HOST"].split(":")[0]
    ensure_current(os.environ["PYCSW_CONFIG"])
    csw = server.Csw(os.environ["PYCSW_CONFIG"], environ)
    status, contents = csw.dispatch_wsgi()
    start_response(status, [("Content-Type", str(csw.contenttype)), ("Content-Length", str(len(contents)))])
    return [contents]


def _settings(config: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    with open(config, encoding="utf-8") as fh:
        parser.read_file(fh)
    return parser


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return None


_built: dict[str, str] = {}     # configuration → the documents' key this process last saw the repository at


def ensure_current(config: str) -> int | None:
    """Rebuild the repository when the documents changed since it was built; how many records it
    then holds (None when it was current)."""
    parser = _settings(config)
    key = _read(parser.get("gdi", "key"))
    if key is None or _built.get(config) == key:
        return None
    database = parser.get("repository", "database").removeprefix("sqlite:///")
    import fcntl

    with open(database + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        count = None
        if _read(database + ".key") != key or not os.path.exists(database):
            count = _load(parser, parser.get("gdi", "documents"), database)
            with open(database + ".key.new", "w", encoding="utf-8") as fh:
                fh.write(key)
            os.replace(database + ".key.new", database + ".key")
    _built[config] = key
    return count


def _load(parser: configparser.ConfigParser, xml_dir: str, database: str) -> int:
    from pycsw.core import admin, config as pconfig, repository

    fresh = database + ".new"
    url = f"sqlite:///{fresh}"
    table = parser.get("repository", "table")
    if os.path.exists(fresh):
        os.remove(fresh)
    admin.setup_db(url, table, os.path.dirname(database))
    context = pconfig.StaticContext()
    admin.load_records(context, url, table, xml_dir, recursive=False, force_update=True)
    count = int(repository.Repository(url, context, table=table).query(constraint={}, maxrecords=0)[0])
    os.replace(fresh, database)
    return count


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "load":
        sys.exit("usage: python -m gdi.pycsw_app load CONFIG")
    count = ensure_current(sys.argv[2])
    print("current" if count is None else count)

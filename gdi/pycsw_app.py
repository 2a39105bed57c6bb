"""The CSW 2.0.2 catalogue: pycsw, in pycsw's own environment.

This module runs *inside the pycsw environment* (settings ``catalogue.environment``, made by
``make install``), never in gdi's: pycsw 2.6 pins an OWSLib older than the one gdi uses, so it
gets an interpreter of its own and this module imports nothing but pycsw and the standard
library. Two entry points:

* ``application`` — the WSGI app gunicorn serves on 127.0.0.1 (``gdi serve`` starts it;
  gdi's app proxies ``/csw`` to it). pycsw's own ``pycsw.wsgi`` lets a request choose the
  configuration file (a ``config=`` parameter); this one always uses ``PYCSW_CONFIG``.
* ``python -m gdi.pycsw_app load CONFIG XML_DIR DATABASE`` — builds a fresh SQLite repository
  from the ISO documents with pycsw's admin functions (``gdi publish`` runs it, then moves the
  file into place, so a request reads the old or the new repository, never half of one).
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
    csw = server.Csw(os.environ["PYCSW_CONFIG"], environ)
    status, contents = csw.dispatch_wsgi()
    start_response(status, [("Content-Type", str(csw.contenttype)), ("Content-Length", str(len(contents)))])
    return [contents]


def load(config: str, xml_dir: str, database: str) -> int:
    """A new repository at ``database`` (a file path) holding every ISO document of ``xml_dir``;
    returns how many records it holds."""
    from pycsw.core import admin, config as pconfig, repository

    parser = configparser.ConfigParser(interpolation=None)
    with open(config, encoding="utf-8") as fh:
        parser.read_file(fh)
    url = f"sqlite:///{database}"
    table = parser.get("repository", "table")
    if os.path.exists(database):
        os.remove(database)
    admin.setup_db(url, table, os.path.dirname(database))
    context = pconfig.StaticContext()
    admin.load_records(context, url, table, xml_dir, recursive=False, force_update=True)
    repo = repository.Repository(url, context, table=table)
    return int(repo.query(constraint={}, maxrecords=0)[0])


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "load":
        sys.exit("usage: python -m gdi.pycsw_app load CONFIG XML_DIR DATABASE")
    print(load(*sys.argv[2:]))

"""Publishing: the pygeoapi configuration, the OpenAPI document and the viewer."""
from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import yaml

from gdi import settings
from gdi.collections import load_collections
from gdi.files import write_atomically, yaml_text, yaml_value


def server_url() -> str:
    return os.environ.get("GDI_URL") or settings.get().server.url


def current_url() -> str:
    """The URL the data are published under: GDI_URL, else the URL a running server published under,
    else the configured one (what `gdi publish` and `gdi masterportal` name)."""
    return (os.environ.get("GDI_URL") or (_published_url(settings.paths().pygeoapi_config) if servers_running()
                                          else None) or server_url())


def publish(store=None, *, url: str | None = None, viewer: bool = True) -> dict[str, Path]:
    """Regenerate everything derived from definitions and store; tell a running server.

    Serialised across processes (two members' uploads may finish at once): the
    generated files are rebuilt by one publisher at a time.
    """
    import fcntl

    lock = settings.paths().home / "publish.lock"
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            return _publish(store, url=url, viewer=viewer)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _publish(store=None, *, url: str | None = None, viewer: bool = True) -> dict[str, Path]:
    from gdi.publish.config import build_config
    from gdi.store import open_store

    paths = settings.paths()
    store = store or open_store()
    collections = load_collections()
    for c in collections.values():
        store.ensure(c)
    url = url or current_url()
    templates = None
    try:
        from gdi.publish.templates import build_pygeoapi_templates

        templates = build_pygeoapi_templates(paths.publish / "pygeoapi", "/vendor")
    except ImportError:
        templates = None
    from gdi.publish.catalogue import catalogue_resource, write_catalogue
    from gdi.publish.translations import build_catalogues

    locale_dir = build_catalogues(paths.publish / "pygeoapi" / "locale")
    # the metadata first: the configuration written next names the records' last update, so every
    # cache keyed on the configuration follows
    records = write_catalogue(collections, store, url=url).records
    cfg = build_config(collections, store, url=url, templates=templates, locale_dir=locale_dir,
                       catalogue=catalogue_resource(records, url))
    text = yaml_text(cfg)
    if _read(paths.pygeoapi_config) != text:
        write_atomically(paths.pygeoapi_config, text)     # extents alone: the workers follow without a restart
    changed = False
    os.environ["PYGEOAPI_CONFIG"] = str(paths.pygeoapi_config)
    # The OpenAPI document does not depend on the extents, which are what an upload usually changes:
    # it is regenerated (pygeoapi's get_oas, ~0.5 s with its imports) only when anything else did.
    # get_oas also reads each provider's fields: the collection definitions and pygeoapi's version count too
    import importlib.metadata

    from gdi.datasets import MAX_VERSION
    from gdi.publish import openapi
    from gdi.publish.openapi import bundle, upload_paths, with_property_parameters, with_uploads

    uploads = upload_paths(sorted(collections), MAX_VERSION)     # the upload service's paths count too
    # and so does the code that rewrites pygeoapi's document: an upgrade of gdi regenerates it
    rewriter = hashlib.sha256(Path(openapi.__file__).read_bytes()).hexdigest()
    key = hashlib.sha256(yaml_text(
        [_without_extents(cfg), {cid: c.raw for cid, c in collections.items()},
         importlib.metadata.version("pygeoapi"), uploads, rewriter], sort_keys=True).encode()).hexdigest()
    oas_key = paths.openapi.with_name(paths.openapi.name + ".key")
    if _read(oas_key) != key or not paths.openapi.exists():
        from pygeoapi.openapi import get_oas

        # every $ref resolves locally (no schemas.opengis.net offline); the upload routes are described too;
        # each items path has a typed parameter per property (Masterportal's filter reads the types there)
        properties = {cid: cfg["resources"][cid]["providers"][0]["options"]["properties"] for cid in collections}
        oas = bundle(with_uploads(with_property_parameters(get_oas(cfg), properties), uploads))
        write_atomically(paths.openapi, yaml_text(oas))
        write_atomically(oas_key, key)
        changed = True
    out = {"config": paths.pygeoapi_config, "openapi": paths.openapi}
    if viewer:
        from gdi.publish.map_build import refresh

        refresh(store, collections, force=True)
        out["viewer"] = paths.viewer / "index.html"
    if changed:
        notify_server()
    return out


def _published_url(config: Path) -> str | None:
    """The URL a running server published under (`gdi serve --port` sets it): an upload from the
    command line must not replace it with the configured default while that server runs."""
    text = _read(config)
    try:
        return ((yaml_value(text) or {}).get("server") or {}).get("url") if text else None
    except yaml.YAMLError:
        return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _without_extents(cfg: dict) -> dict:
    resources = {k: {kk: vv for kk, vv in v.items() if kk != "extents"} for k, v in cfg.get("resources", {}).items()}
    return {**cfg, "resources": resources}


def _signal_servers(sig: int) -> int:
    """Send sig to every `gdi serve` of this GDI_HOME (their gunicorn pid files); how many got it."""
    reached = 0
    for pidfile in settings.paths().home.glob("server-*.pid"):
        try:
            os.kill(int(pidfile.read_text().strip()), sig)
            reached += 1
        except (OSError, ValueError):
            pass
    return reached


def servers_running() -> int:
    """How many `gdi serve` of this GDI_HOME are alive."""
    return _signal_servers(0)


def notify_server() -> None:
    """Ask every running `gdi serve` of this GDI_HOME to reload its workers (a new configuration)."""
    _signal_servers(signal.SIGHUP)

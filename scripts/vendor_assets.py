"""Fetch the front-end libraries of viewer/assets.yml from the npm registry.

Why a build step and not a CDN: the map and the OGC API pages must work without
internet and must not send visitors to third parties.  Why `npm pack`: it
fetches the exact published tarball (checked by npm against the registry's
integrity hash) without installing anything or running package scripts.

For each package the tarball is packed into a temporary directory, only the
listed files and the licence file are extracted to viewer/vendor/<name>/, and
the tarball's sha256 goes into viewer/vendor/MANIFEST.json.  viewer/vendor/.complete
is written last.  Re-running is cheap: packages whose entry in assets.yml is
unchanged and whose files are intact on disk are not fetched again.

Usage: python scripts/vendor_assets.py [--force] [--check] [--assets FILE] [--dest DIR]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import posixpath
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gdi.assets import (  # noqa: E402
    COMPLETE_MARKER,
    MANIFEST_NAME,
    Package,
    assets_file,
    load_packages,
    vendor_dir,
    vendor_path,
)

MANIFEST_FORMAT = 1


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (tarballs can be several MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def entry_key(pkg: Package) -> str:
    """A fingerprint of a package's assets.yml entry: if it changes, re-vendor."""
    data = [pkg.name, pkg.version, pkg.licence_file, sorted(pkg.files)]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]


def npm_pack(spec: str, workdir: Path) -> tuple[Path, dict]:
    """Run `npm pack SPEC` into workdir; return the tarball and npm's JSON report."""
    cmd = ["npm", "pack", spec, "--json", "--ignore-scripts", "--pack-destination", str(workdir)]
    try:
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        sys.exit("vendor_assets: npm not found; install Node.js/npm (e.g. apt-get install npm)")
    if proc.returncode != 0:
        sys.exit(f"vendor_assets: `{' '.join(cmd)}` failed:\n{proc.stderr.strip()[-2000:]}")
    report = json.loads(proc.stdout)[0]
    tarball = workdir / report["filename"]
    if not tarball.is_file():
        sys.exit(f"vendor_assets: npm pack reported {tarball.name} but it is missing")
    return tarball, report


def extract(pkg: Package, tarball: Path, target: Path) -> dict[str, str]:
    """Copy the wanted regular files of the tarball into target; return {file: sha256}.

    npm tarballs put everything below one top directory (usually "package/");
    it is stripped.  Links, devices and paths that climb out are never written.
    """
    wanted = set(pkg.files) | {pkg.licence_file}
    written: dict[str, str] = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile() or "/" not in member.name:
                continue
            rel = member.name.split("/", 1)[1]
            if not pkg.provides(rel):
                continue
            vendor_path(pkg.name, rel)  # refuses absolute paths and ".."
            dest = target / posixpath.normpath(rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None
            with src, dest.open("wb") as out:
                shutil.copyfileobj(src, out)
            written[rel] = sha256_file(dest)
    missing = [w for w in wanted if not (w in written or (w.endswith("/") and any(f.startswith(w) for f in written)))]
    if missing:
        sys.exit(f"vendor_assets: {pkg.spec} has no {', '.join(sorted(missing))}")
    return written


def intact(dest: Path, name: str, record: dict) -> bool:
    """Whether the files recorded for a package are all on disk with the recorded hashes."""
    base = dest / name
    return all((base / f).is_file() and sha256_file(base / f) == h for f, h in record["files"].items())


def vendor(assets: Path, dest: Path, force: bool = False) -> dict:
    """Bring dest up to date with assets; return the manifest written."""
    packages = load_packages(assets)
    manifest_path = dest / MANIFEST_NAME
    old: dict = {}
    if manifest_path.is_file() and not force:
        old = json.loads(manifest_path.read_text(encoding="utf-8")).get("packages", {})

    todo = [
        p for p in packages.values()
        if force or old.get(p.name, {}).get("entry") != entry_key(p) or not intact(dest, p.name, old[p.name])
    ]
    stale = [name for name in old if name not in packages]
    if not todo and not stale and (dest / COMPLETE_MARKER).is_file():
        (dest / COMPLETE_MARKER).touch()  # keeps make's timestamp check satisfied
        print(f"vendor_assets: {len(packages)} packages up to date in {dest}")
        return json.loads(manifest_path.read_text(encoding="utf-8"))

    dest.mkdir(parents=True, exist_ok=True)
    (dest / COMPLETE_MARKER).unlink(missing_ok=True)
    records = {name: rec for name, rec in old.items() if name in packages}
    for name in stale:
        vendor_path(name, "x")  # a package name, not a path that climbs out of dest
        shutil.rmtree(dest / name, ignore_errors=True)
        print(f"vendor_assets: removed {name} (no longer in {assets.name})")

    with tempfile.TemporaryDirectory(prefix="gdi-vendor-") as tmp:
        for pkg in todo:
            work = Path(tmp) / pkg.name.replace("/", "__")
            work.mkdir()
            tarball, report = npm_pack(pkg.spec, work)
            if report.get("version") != pkg.version:
                sys.exit(f"vendor_assets: asked for {pkg.spec}, npm packed {report.get('version')}")
            staging = work / "out"
            files = extract(pkg, tarball, staging)
            shutil.rmtree(dest / pkg.name, ignore_errors=True)
            (dest / pkg.name).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staging), str(dest / pkg.name))
            records[pkg.name] = {
                "version": pkg.version,
                "licence": pkg.licence,
                "licence_file": pkg.licence_file,
                "entry": entry_key(pkg),
                "tarball": tarball.name,
                "tarball_sha256": sha256_file(tarball),
                "npm_integrity": report.get("integrity"),
                "files": dict(sorted(files.items())),
            }
            print(f"vendor_assets: {pkg.spec}: {len(files)} files")

    manifest = {"format": MANIFEST_FORMAT, "source": "npm registry via `npm pack`",
                "packages": dict(sorted(records.items()))}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (dest / COMPLETE_MARKER).write_text("vendored from " + assets.name + "\n", encoding="utf-8")
    return manifest


def check(assets: Path, dest: Path) -> bool:
    """Whether dest is complete and matches assets.yml, without touching the network."""
    if not (dest / COMPLETE_MARKER).is_file() or not (dest / MANIFEST_NAME).is_file():
        return False
    recorded = json.loads((dest / MANIFEST_NAME).read_text(encoding="utf-8")).get("packages", {})
    return all(
        name in recorded and recorded[name]["entry"] == entry_key(p) and intact(dest, name, recorded[name])
        for name, p in load_packages(assets).items()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=Path, default=assets_file(), help="package list (viewer/assets.yml)")
    parser.add_argument("--dest", type=Path, default=vendor_dir(), help="output directory (viewer/vendor)")
    parser.add_argument("--force", action="store_true", help="fetch everything again")
    parser.add_argument("--check", action="store_true", help="only verify; exit 1 if incomplete or stale")
    args = parser.parse_args(argv)
    if args.check:
        ok = check(args.assets, args.dest)
        print("vendor_assets: " + ("complete" if ok else "incomplete or stale"))
        return 0 if ok else 1
    vendor(args.assets, args.dest, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())

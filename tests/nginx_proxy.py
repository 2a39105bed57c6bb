"""Debian's nginx with the shipped deploy/nginx/gdi.conf in front of `gdi serve` processes, and a crawl
that checks every answer through it for links outside nginx's public URL (the proxy and deployment tests)."""
from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

from conftest import REPO, answers, free_port

SITE = REPO / "deploy" / "nginx" / "gdi.conf"
NGINX = "/usr/sbin/nginx"


def site_config(backends: list[int], port: int) -> str:
    """The shipped site with this test's addresses: the upstream's server lines become one per backend
    (with the shipped parameters), ``listen 80`` a free port of 127.0.0.1. Nothing else changes."""
    text = SITE.read_text(encoding="utf-8")
    shipped = re.findall(r"^( +)server 10\.0\.0\.\d+:5000( [^;]*);\n", text, re.M)
    assert len(shipped) >= 2
    indent, params = shipped[0]
    lines = "".join(f"{indent}server 127.0.0.1:{p}{params};\n" for p in backends)
    text = _replace_upstream(text, lines)
    text, n = re.subn(r"(?m)^    listen 80;$", f"    listen 127.0.0.1:{port};", text)
    assert n == 1
    return text


def _replace_upstream(text: str, lines: str) -> str:
    pattern = re.compile(r"(?m)^ +server 10\.0\.0\.\d+:5000 [^;]*;\n")
    first = pattern.search(text)
    return text[:first.start()] + lines + pattern.sub("", text[first.start():])


class Nginx:
    """Debian's nginx on a free port with the shipped site: its own prefix, pid, logs and temp folders."""

    def __init__(self, backends: list[int], port: int | None = None):
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="gdi-nginx-"))
        self.dir.chmod(0o755)
        (self.dir / "gdi.conf").write_text(site_config(backends, self.port), encoding="utf-8")
        temps = "\n".join(f"    {kind}_temp_path {self.dir / kind};" for kind in
                          ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (self.dir / "nginx.conf").write_text(f"""daemon off;
worker_processes 2;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    access_log {self.dir}/access.log;
{temps}
    include {self.dir}/gdi.conf;
}}
""", encoding="utf-8")
        user = {}
        if os.geteuid() == 0:               # never nginx as root: as nobody, in a folder nobody may write
            nobody = pwd.getpwnam("nobody")
            shutil.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
            user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        cmd = [NGINX, "-p", str(self.dir), "-e", str(self.dir / "error.log"), "-c", str(self.dir / "nginx.conf")]
        test = subprocess.run([*cmd, "-t"], capture_output=True, text=True, **user)
        assert test.returncode == 0, test.stderr
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **user)
        self.url = f"http://127.0.0.1:{self.port}/gdi"
        deadline = time.time() + 30
        while time.time() < deadline:
            assert self.proc.poll() is None, self.error_log()
            if answers(self.url + "/conformance?f=json", timeout=5):
                return
            time.sleep(0.2)
        raise AssertionError(f"nginx did not answer: {self.error_log()}")

    def error_log(self) -> str:
        path = self.dir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        shutil.rmtree(self.dir, ignore_errors=True)


ABSOLUTE = re.compile(r"""https?://[^\s"'<>\\)]+""")
ATTRIBUTE = re.compile(r"""\s(?:href|src|action)=["']([^"']*)["']""")


class Crawl:
    """Every answer through nginx, checked: its absolute links to this machine start with the public URL,
    its root-relative ones with /gdi/, and no backend address appears anywhere (body or headers)."""

    def __init__(self, public: str, backends: list[int]):
        self.public = public
        self.origin = public.rsplit("/gdi", 1)[0]
        self.backends = [f"127.0.0.1:{p}" for p in backends] + [f"127.0.0.1%3A{p}" for p in backends]
        self.seen: dict[str, int] = {}
        self.links: set[str] = set()
        self.rooted: set[str] = set()
        self.found_in: dict[str, str] = {}       # link → the first answer it was found in

    def check(self, r: requests.Response) -> None:
        where = r.request.url
        text = r.content.decode("utf-8", errors="replace")
        heads = "\n".join(f"{k}: {v}" for k, v in r.headers.items())
        for backend in self.backends:
            assert backend not in text and backend not in heads, f"{where} names the backend {backend}"
        ctype = r.headers.get("Content-Type", "")
        found = ABSOLUTE.findall(text) if re.match(r"text/html|application/.*(json|xml)|text/xml", ctype) else []
        found += ABSOLUTE.findall(heads)
        for url in found:              # every URL of this machine, in links, texts and scripts alike
            if urlsplit(url).hostname in {"127.0.0.1", "localhost"}:
                assert url == self.public or url.startswith((self.public + "/", self.public + "?")), (where, url)
        # the links to follow: HTML attributes, JSON link objects, the link headers
        refs = ATTRIBUTE.findall(text) if ctype.startswith("text/html") else []
        if "json" in ctype:
            refs += re.findall(r'"href":\s*"([^"]*)"', text)
        refs += [v for k, v in r.headers.items() if k.lower() in {"location", "content-location"}]
        for url in refs:
            url = url.replace("&amp;", "&")
            if urlsplit(url).hostname in {"127.0.0.1", "localhost"}:
                self.links.add(url)
                self.found_in.setdefault(url, where)
        rooted = [v for v in refs if v.startswith("/") and not v.startswith("//")]
        for ref in rooted:
            assert ref.startswith("/gdi/") or ref in {"/gdi"} or ref.startswith("/gdi?"), (where, ref)
            self.rooted.add(urljoin(self.origin, ref))
            self.found_in.setdefault(urljoin(self.origin, ref), where)

    def get(self, url: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 60)
        r = requests.get(url if url.startswith("http") else self.public + url, **kw)
        self.check(r)
        self.seen[r.request.url] = r.status_code
        return r

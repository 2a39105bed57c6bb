"""gdi viewer --out: one self-contained file to send by e-mail."""
from __future__ import annotations

import re

from conftest import home_store, run_gdi

REMOTE = re.compile(r"""<(?:script|link|img)[^>]+(?:src|href)=["'](?:https?:)?//""", re.I)


def test_single_file_map_from_the_store(demo_home, tmp_path):
    out = tmp_path / "karte.html"
    proc = run_gdi("viewer", "--out", str(out), home=demo_home, store=home_store(demo_home), check=True)
    assert str(out) in proc.stdout
    html = out.read_text(encoding="utf-8")
    assert not REMOTE.search(html)
    assert "/vendor/" not in html                     # every asset inlined
    assert "Marburg" in html and "Höxter" in html
    assert len(html) > 300_000
    en = tmp_path / "map.html"
    run_gdi("viewer", "--out", str(en), "--lang", "en", home=demo_home, store=home_store(demo_home), check=True)
    assert "Farm shop" in en.read_text(encoding="utf-8")

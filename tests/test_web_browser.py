"""The inquiry node's web page in a real browser: Debian's headless Chromium renders the
search page and a certificate's page, and what it shows is checked (`make test` installs
the chromium package when it is missing)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from inquiry_helpers import Node

#: as root on a machine with no Internet: no sandbox, no background connections
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(tmp_path: Path, url: str, *extra: str) -> str:
    """Load ``url`` in headless Chromium; return what it printed (the DOM with --dump-dom)."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("no chromium on PATH: `make test` installs Debian's chromium package")
    done = subprocess.run(
        [binary, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *extra, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_search_page_renders_the_index(node: Node, tmp_path: Path) -> None:
    dom = chromium(tmp_path, f"{node.url}/?org=Vendor+A", "--dump-dom")
    assert "8 found" in dom
    for name in ("good", "revoked", "suspended", "pending", "rejected"):
        assert node.ids[name].hex()[:16] in dom
    assert 'class="status s-revoked"' in dom and 'class="status s-active"' in dom
    assert 'value="Vendor A"' in dom  # the form keeps the query


def test_certificate_page_shows_status_endorsers_history_and_pem(
    node: Node, tmp_path: Path
) -> None:
    cid = node.ids["revoked"].hex()
    dom = chromium(tmp_path, f"{node.url}/?id={cid}", "--dump-dom")  # follows the redirect
    assert f"<code>{cid}</code>" in dom
    assert "keyCompromise" in dom and "serialNumber=revoked-" in dom
    assert "Operator B" in dom and "CA C" in dom  # the endorsers
    for event in ("submitted", "endorsed", "revoked"):
        assert f"<td>{event}</td>" in dom
    assert "-----BEGIN CERTIFICATE-----" in dom
    shot = tmp_path / "page.png"
    chromium(tmp_path, f"{node.url}/ui/certificates/{cid}", f"--screenshot={shot}",
             "--window-size=1200,1000")  # fmt: skip
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_front_page_shows_the_consortium_searches_and_pages_without_script(
    node: Node, tmp_path: Path
) -> None:
    """Every page works with JavaScript off: none carries a script or an event handler, and
    links and forms do all the work (Chromium's --dump-dom and --screenshot need script
    themselves, so the pages are loaded with it on and checked for any)."""
    dom = chromium(tmp_path, f"{node.url}/?org=Vendor+A&limit=4", "--dump-dom")
    assert "threshold 2 of 3 validators" in dom and "never voted" in dom
    assert '<svg class="chart"' in dom and "<rect" in dom  # drawn by the server
    assert "8 found; 1 to 4 shown" in dom and 'rel="next"' in dom
    following = chromium(tmp_path, f"{node.url}/?org=Vendor+A&limit=4&offset=4", "--dump-dom")
    assert "8 found; 5 to 8 shown" in following and 'rel="prev"' in following
    cid = node.ids["suspended"].hex()
    found = chromium(tmp_path, f"{node.url}/?id={cid[:16]}", "--dump-dom")
    assert f"<code>{cid}</code>" in found  # the 16 digits the list shows lead to the page
    missing = chromium(tmp_path, f"{node.url}/ui/certificates/{'cd' * 32}", "--dump-dom")
    assert "no certificate" in missing and 'href="/"' in missing
    for page in (dom, following, found, missing):
        assert "<script" not in page and not re.search(r"\son[a-z]+=", page)
    shot = tmp_path / "front.png"
    chromium(tmp_path, f"{node.url}/", f"--screenshot={shot}", "--window-size=1200,1000")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

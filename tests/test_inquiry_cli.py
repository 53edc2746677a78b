"""`dpki indexer run` and `dpki serve --follow` as an operator runs them: subprocesses that
follow the chain, pick up new certificates and stop cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import requests
from e2e import wait_until
from inquiry_helpers import DPKI, Node, devices, free_port, put_on_ledger, served


def test_indexer_once_prints_a_summary(node: Node, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'once.sqlite'}"
    args = [*DPKI, "indexer", "run", "--once", "--json", "--db", db]
    done = subprocess.run(
        [*args, "--deployment", str(node.deployment)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["events"] > 0 and summary["indexed_block"] > 0
    assert summary["certificates"]["active"] >= 2  # good and spare, at least
    assert summary["certificates"]["revoked"] >= 1


def test_indexer_follows_new_certificates_and_stops_on_sigterm(node: Node, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'follow.sqlite'}"
    log = (tmp_path / "indexer.log").open("wb")
    indexer = subprocess.Popen(
        [*DPKI, "indexer", "run", "--db", db, "--poll", "0.2",
         "--deployment", str(node.deployment)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with served(["--db", db], free_port(), tmp_path) as url:
            fresh = put_on_ledger(node.registry, node.accounts, devices(1)[0]).hex()

            def shown_active() -> bool:
                answer = requests.get(f"{url}/status/{fresh}", timeout=5)
                return answer.ok and answer.json()["status"] == "active"

            wait_until(shown_active, 30, "the new certificate on the inquiry node")
        indexer.send_signal(signal.SIGTERM)
        assert indexer.wait(15) == 0
    finally:
        if indexer.poll() is None:
            indexer.kill()
            indexer.wait()
        log.close()
    assert "Traceback" not in (tmp_path / "indexer.log").read_text()


def test_serve_follow_indexes_in_the_same_process(node: Node, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'serve.sqlite'}"
    args = ["--db", db, "--follow", "--deployment", str(node.deployment)]
    with served(args, free_port(), tmp_path) as url:
        good = node.ids["good"].hex()
        wait_until(
            lambda: requests.get(f"{url}/status/{good}", timeout=5).ok, 30, "the first catch-up"
        )
        assert requests.get(f"{url}/status/{good}", timeout=5).json()["valid"] is True
        revoked = requests.get(f"{url}/status/{node.ids['revoked'].hex()}", timeout=5).json()
        assert revoked["status"] == "revoked" and revoked["reason"] == "keyCompromise"

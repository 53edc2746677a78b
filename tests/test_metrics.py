"""Prometheus metrics move: a validator node and an indexer on a private devnet, scraped over
HTTP at their --metrics-port and parsed with prometheus_client's own text parser. (The
inquiry node's /metrics is tested in test_inquiry.py.)"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from e2e import ORGS, TcpProxy, ValidatorProcess, dpki_cmd, private_devnet, run_cli, wait_until
from inquiry_helpers import free_port
from prometheus_client.parser import text_string_to_metric_families

from dpki.chain.deployment import Deployment
from dpki.dev.devices import make_device
from dpki.metrics import IndexerMetrics, exposition

VENDOR, OPERATOR, CA = ORGS

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Read http://127.0.0.1:PORT/metrics; return every sample by name and labels."""
    answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


def parse(text: str) -> Samples:
    """Return every sample of a Prometheus text exposition by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with private_devnet(tmp_path_factory.mktemp("metrics")) as deployment:
        yield deployment


def test_validator_metrics_count_decisions_by_outcome_and_code(
    net: Deployment, tmp_path: Path
) -> None:
    port = free_port()
    node = ValidatorProcess(net, OPERATOR, tmp_path, extra=("--metrics-port", str(port)))
    node.start()
    try:
        wait_until(lambda: _answers(port), 30, "the validator's metrics endpoint")
        before = scrape(port)
        assert value(before, "dpki_validator_decisions_total", outcome="endorse", code="OK") is None
        assert value(before, "dpki_validator_pending_backlog") == 0
        good, impostor = tmp_path / "good.pem", tmp_path / "impostor.pem"
        good.write_bytes(make_device(VENDOR, "metrics-good").pem)
        impostor.write_bytes(make_device(OPERATOR + " Ltd", "metrics-impostor").pem)  # O not ours
        for path, extra in ((good, ()), (impostor, ("--skip-check",))):
            done = run_cli("submit", str(path), "--as", VENDOR, *extra, deployment=net)
            assert done.returncode == 0, done.stderr
        head = net.registry_client().block_number()
        rejected = {"outcome": "reject", "code": "ORG_MISMATCH"}
        wait_until(
            lambda: value(scrape(port), "dpki_validator_decisions_total", **rejected) == 1.0,
            30,
            "the rejection to be counted",
        )
        after = scrape(port)
        assert value(after, "dpki_validator_decisions_total", outcome="endorse", code="OK") == 1.0
        last = value(after, "dpki_validator_last_block")
        assert last is not None and last >= head
        assert value(after, "dpki_validator_pending_backlog") == 0
        assert value(after, "dpki_validator_errors_total", kind="ledger_unreachable") is None
    finally:
        assert node.stop() == 0


def test_validator_metrics_count_errors_and_retries(net: Deployment, tmp_path: Path) -> None:
    proxy = TcpProxy(int(net.rpc_url.rsplit(":", 1)[1]))
    proxy.up()
    port = free_port()
    node = ValidatorProcess(
        net, CA, tmp_path, rpc_url=proxy.url, extra=("--metrics-port", str(port))
    ).start()
    try:
        wait_until(lambda: _answers(port), 30, "the validator's metrics endpoint")
        assert value(scrape(port), "dpki_validator_retries_total") == 0
        proxy.down()  # the ledger goes away
        wait_until(
            lambda: (value(scrape(port), "dpki_validator_retries_total") or 0) >= 2,
            60,
            "retries to be counted",
        )
        samples = scrape(port)
        errors = value(samples, "dpki_validator_errors_total", kind="ledger_unreachable")
        assert errors is not None and errors >= 2
        proxy.up()
    finally:
        proxy.down()
        assert node.stop() == 0


def test_an_indexer_that_has_not_stepped_does_not_claim_to_be_caught_up() -> None:
    samples = parse(exposition(IndexerMetrics().registry).decode())
    assert value(samples, "dpki_indexer_lag_blocks") == -1
    assert value(samples, "dpki_indexer_last_block") == -1


def test_indexer_metrics_count_events_and_lag(net: Deployment, tmp_path: Path) -> None:
    port = free_port()
    db = f"sqlite:///{tmp_path / 'index.sqlite'}"
    log = (tmp_path / "indexer.log").open("wb")
    proc = subprocess.Popen(
        dpki_cmd("indexer", "run", "--db", db, "--poll", "0.1", "--metrics-port", str(port),
                 "--deployment", str(net.path)),
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: _answers(port), 30, "the indexer's metrics endpoint")
        wait_until(
            lambda: value(scrape(port), "dpki_indexer_lag_blocks") == 0, 30, "the index to catch up"
        )
        first = scrape(port)
        events = value(first, "dpki_indexer_events_total")
        assert events is not None and events > 0  # the genesis members at least
        device = tmp_path / "later.pem"
        device.write_bytes(make_device(VENDOR, "metrics-later").pem)
        assert run_cli("submit", str(device), "--as", VENDOR, deployment=net).returncode == 0
        head = net.registry_client().block_number()
        wait_until(
            lambda: (value(scrape(port), "dpki_indexer_last_block") or 0) >= head,
            30,
            "the new block to be indexed",
        )
        later = scrape(port)
        assert value(later, "dpki_indexer_events_total") == events + 1  # CertificateSubmitted
        assert value(later, "dpki_indexer_lag_blocks") == 0
        assert value(later, "dpki_indexer_errors_total") == 0
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
    assert "Traceback" not in (tmp_path / "indexer.log").read_text()


def test_a_busy_metrics_port_is_bad_input(net: Deployment, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = run_cli("indexer", "run", "--once", "--db", f"sqlite:///{tmp_path / 'i.sqlite'}",
                       "--metrics-port", str(port), deployment=net)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200
    except requests.RequestException:
        return False

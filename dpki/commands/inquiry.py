"""Inquiry-node and relying-party commands: ``indexer run``, ``serve``, ``verify`` and
``gateway``."""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dpki.chain.consortium import default_confirmations
from dpki.commands._common import (
    deployment_option,
    echo_json,
    json_option,
    load_deployment,
    metrics_options,
    start_metrics,
)
from dpki.errors import ConfigError, ParseError
from dpki.inquiry.store import DEFAULT_URL

if TYPE_CHECKING:
    from dpki.relying import Verifier

__all__ = ["COMMANDS"]

db_option = click.option(
    "--db",
    "db_url",
    default=DEFAULT_URL,
    show_default=True,
    metavar="URL",
    help="Index database (SQLAlchemy URL; PostgreSQL: postgresql+psycopg://user@host/db).",
)


@click.group()
def indexer() -> None:
    """Mirror the ledger into the index database."""


@indexer.command("run")
@db_option
@click.option(
    "--confirmations",
    type=click.IntRange(min=0),
    default=None,
    help=(
        "Blocks to stay behind the head (default per engine: anvil 0, QBFT 0, "
        "Clique half its signers, at least 1)."
    ),
)
@click.option(
    "--batch-blocks",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="Blocks per eth_getLogs (halved when the node refuses).",
)
@click.option("--poll", type=float, default=1.0, show_default=True, help="Seconds between polls.")
@click.option("--once", is_flag=True, help="Catch up to the head and exit.")
@metrics_options
@deployment_option
@json_option
def run(
    db_url: str,
    confirmations: int | None,
    batch_blocks: int,
    poll: float,
    once: bool,
    metrics_port: int | None,
    metrics_host: str,
    deployment_path: Path | None,
    as_json: bool,
) -> None:
    """Follow registry events into the index (resumable, reorg-safe)."""
    from dpki.inquiry.indexer import Indexer, StepResult
    from dpki.inquiry.store import Store

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    deployment = load_deployment(deployment_path)
    if confirmations is None:
        confirmations = default_confirmations(deployment.engine, deployment.rpc_url)
    store = Store(db_url)
    idx = Indexer(
        deployment.registry_client(),
        store,
        deployment.deploy_block,
        confirmations=confirmations,
        batch_blocks=batch_blocks,
    )
    exposed = start_metrics(idx.metrics, metrics_port, metrics_host)

    def show(result: StepResult) -> None:
        if result.events and not as_json:
            click.echo(
                f"blocks {result.from_block}..{result.to_block}: {result.events} events "
                f"(head {result.head})",
                err=True,
            )

    if once:
        total = idx.catch_up(progress=show)
        checkpoint = store.checkpoint()
        summary = {
            "events": total,
            "indexed_block": checkpoint.number if checkpoint else None,
            "certificates": store.counts(),
            "db": store.safe_url,
        }
        if as_json:
            echo_json(summary)
        else:
            click.echo(f"indexed {total} events up to block {summary['indexed_block']}")
        return
    click.echo(f"following {deployment.registry} into {store.safe_url}", err=True)
    idx.run(poll=poll, progress=show, stop=_stop_on_signals())
    if exposed is not None:
        exposed.stop()


def _stop_on_signals() -> threading.Event:
    """Return an event that SIGTERM and Ctrl-C set (for a clean stop between steps)."""
    stop = threading.Event()

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


@click.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--responder-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="OCSP signing key (PEM); default: created beside the index.",
)
@click.option(
    "--responder-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="OCSP responder certificate (PEM); default: created beside the index.",
)
@click.option(
    "--organization",
    default=None,
    help="Subject O of a responder certificate created here (to submit it later).",
)
@click.option(
    "--ocsp-validity",
    type=click.IntRange(min=10),
    default=600,
    show_default=True,
    help="Seconds between thisUpdate and nextUpdate in OCSP responses.",
)
@click.option(
    "--max-lag",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Blocks of lag above which /healthz answers 503.",
)
@click.option(
    "--max-head-age",
    type=click.IntRange(min=1),
    default=None,
    help="Seconds since the chain head's block above which /healthz answers 503 (a node "
    "that stalled or was cut off; for chains with a block period, not anvil).",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Serve HTTPS with this certificate (PEM; with --tls-key). OCSP clients usually "
    "speak plain HTTP: responses are signed either way.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The private key of --tls-cert (PEM).",
)
@click.option("--follow/--no-follow", default=False, help="Also run the indexer in this process.")
@click.option("--access-log/--no-access-log", default=False, show_default=True)
@deployment_option
def serve(
    db_url: str,
    host: str,
    port: int,
    workers: int,
    responder_key: Path | None,
    responder_cert: Path | None,
    organization: str | None,
    ocsp_validity: int,
    max_lag: int,
    max_head_age: int | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    follow: bool,
    access_log: bool,
    deployment_path: Path | None,
) -> None:
    """Serve the JSON API, the OCSP responder and the web page from the index."""
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if tls_cert is not None and tls_key is not None:
        _check_tls_pair(tls_cert, tls_key)
    import os

    import uvicorn

    from dpki.inquiry.app import CONFIG_ENV, ServeConfig
    from dpki.inquiry.ocsp import load_or_create_identity
    from dpki.inquiry.store import Store

    _check_port(host, port)
    try:
        deployment = load_deployment(deployment_path)
    except ConfigError as exc:
        if follow:
            raise
        deployment = None
        click.echo(f"dpki: note: serving the index as it is, no chain behind it ({exc})", err=True)
    store = Store(db_url)  # creates or migrates the schema once, before any worker
    here = _beside(db_url)
    key = responder_key or here / "ocsp-responder.key"
    cert = responder_cert or here / "ocsp-responder.pem"
    created = not key.exists()
    identity = load_or_create_identity(key, cert, organization=organization)
    if created:
        click.echo(
            f"dpki: note: created an OCSP responder key {key} and certificate {cert}", err=True
        )
    if store.checkpoint() is None and not follow:
        click.echo(
            f"dpki: note: the index at {store.safe_url} is empty: run `dpki indexer run` "
            "beside the deployment file, or serve with --follow",
            err=True,
        )
    config = ServeConfig(
        db_url=db_url,
        responder_key=str(identity.key_path.resolve()),
        responder_cert=str(identity.cert_path.resolve()),
        rpc_url=deployment.rpc_url if deployment else None,
        ocsp_validity=ocsp_validity,
        max_lag=max_lag,
        max_head_age=max_head_age,
    )
    os.environ[CONFIG_ENV] = config.to_env()
    shared = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # the workers pool their metrics in files (prometheus_client's multiprocess mode)
        shared = tempfile.mkdtemp(prefix="dpki-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
    if follow and deployment is not None:
        from dpki.inquiry.indexer import Indexer
        from dpki.metrics import expose_too

        idx = Indexer(deployment.registry_client(), store, deployment.deploy_block)
        if workers == 1:  # one process: its /metrics shows the indexer's too
            expose_too(idx.metrics.registry)
        else:
            click.echo(
                "dpki: note: with several workers /metrics does not show the indexer's samples; "
                "run `dpki indexer run --metrics-port N` beside them to have those",
                err=True,
            )
        threading.Thread(target=idx.run, daemon=True, name="indexer").start()
    scheme = "https" if tls_cert else "http"
    click.echo(
        f"inquiry node on {scheme}://{host}:{port} (index {store.safe_url}, OCSP responder "
        f"certificate {identity.cert_path})",
        err=True,
    )
    try:
        uvicorn.run(
            "dpki.inquiry.app:factory",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop" if sys.platform != "win32" else "asyncio",
            # httptools, with OCSP answered below ASGI (dpki.inquiry.protocol)
            http="dpki.inquiry.protocol:OcspHttpProtocol",
            access_log=access_log,
            log_level="info" if access_log else "warning",  # access lines are at info
            timeout_keep_alive=5,
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
        )
    finally:
        if shared is not None:
            shutil.rmtree(shared, ignore_errors=True)


def _check_port(host: str, port: int) -> None:
    """Refuse a port this process cannot listen on, before anything is created or said."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r} does not resolve: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port"
            ) from None


def _check_tls_pair(cert: Path, key: Path) -> None:
    """Refuse a TLS certificate and key that do not load together, before serving."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot use {cert} with {key} for TLS: {exc}") from None


def _beside(db_url: str) -> Path:
    """Return the directory beside a SQLite index (``.dpki`` for other databases)."""
    if db_url.startswith("sqlite:///") and ":memory:" not in db_url:
        return Path(db_url.removeprefix("sqlite:///")).parent
    return Path(".dpki")


@click.command()
@click.argument("certificate", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--via",
    default="chain",
    show_default=True,
    metavar="chain|URL",
    help="Ask the chain (a view call) or an inquiry node at URL.",
)
@deployment_option
@json_option
def verify(certificate: Path, via: str, deployment_path: Path | None, as_json: bool) -> None:
    """Decide trust in a presented certificate from its ledger status (exit 0 trusted, 1 not)."""
    from dpki.chain.types import parse_cert_id
    from dpki.pki.x509 import load_facts

    if not certificate.exists() and parse_cert_id(str(certificate)) is not None:
        raise ConfigError(
            f"{certificate} looks like a certificate id, not a file: `dpki verify` decides on a "
            f"presented certificate; for the ledger status of an id run `dpki status {certificate}`"
        )
    found = load_facts(certificate)
    if len(found) != 1:
        raise ParseError(f"{certificate} holds {len(found)} certificates; want exactly one")
    verifier = _verifier(via, deployment_path)
    decision = verifier.decide(found[0].der)
    if as_json:
        echo_json(decision.to_json() | {"subject": found[0].subject})
    else:
        verdict = "trusted" if decision.trusted else "NOT trusted"
        click.echo(f"{verdict}: {found[0].subject} is {decision.status} ({verifier.label})")
    if not decision.trusted:
        sys.exit(1)


def _verifier(via: str, deployment_path: Path | None, max_age: float = 0.0) -> Verifier:
    from dpki.relying import Verifier

    if via == "chain":
        return Verifier(load_deployment(deployment_path).registry_client(), max_age=max_age)
    if via.startswith(("http://", "https://")):
        return Verifier(via, max_age=max_age)
    raise ConfigError(f"--via is 'chain' or an http(s) URL, got {via!r}")


def _address(value: str, what: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what} is HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


@click.command()
@click.option("--listen", default="127.0.0.1:8443", show_default=True, metavar="HOST:PORT")
@click.option("--to", "backend", required=True, metavar="HOST:PORT", help="Plain-TCP backend.")
@click.option(
    "--cert",
    "certfile",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The gateway's own TLS certificate (PEM).",
)
@click.option(
    "--key",
    "keyfile",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Its private key (PEM).",
)
@click.option(
    "--via",
    default="chain",
    show_default=True,
    metavar="chain|URL",
    help="Decide from the chain (a view call) or an inquiry node at URL.",
)
@click.option(
    "--max-age",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds a decision may be reused (0: ask the ledger on every connection).",
)
@deployment_option
def gateway(
    listen: str,
    backend: str,
    certfile: Path,
    keyfile: Path,
    via: str,
    max_age: float,
    deployment_path: Path | None,
) -> None:
    """Admit TLS clients whose certificate the ledger says is valid; relay them to a backend.

    Device authentication with no CA bundle, no CRL and no Internet: a device presents its
    certificate, the ledger decides, and the backend sees plain TCP. Runs until SIGTERM.
    """
    from dpki.relying import LedgerTLSServer, forward_to

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    host, port = _address(listen, "--listen")
    upstream = _address(backend, "--to")
    verifier = _verifier(via, deployment_path, max_age)
    try:
        server = LedgerTLSServer(
            verifier,
            str(certfile),
            str(keyfile),
            forward_to(upstream),
            host=host,
            port=port,
        )
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot start the gateway on {listen}: {exc}") from None
    stop = _stop_on_signals()
    server.start()
    bound = ":".join(str(part) for part in server.address)
    click.echo(f"gateway on {bound} -> {backend}, trusting {verifier.label}", err=True)
    stop.wait()
    server.stop()


COMMANDS: list[click.Command] = [indexer, serve, verify, gateway]

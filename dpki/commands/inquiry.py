"""Inquiry-node and relying-party commands: ``indexer run``, ``serve`` and ``verify``."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import click

from dpki.commands._common import deployment_option, echo_json, json_option, load_deployment
from dpki.errors import ConfigError, ParseError
from dpki.store import DEFAULT_URL

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
    default=0,
    show_default=True,
    help="Blocks to stay behind the head (0 on QBFT: blocks are final).",
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
@deployment_option
@json_option
def run(
    db_url: str,
    confirmations: int,
    batch_blocks: int,
    poll: float,
    once: bool,
    deployment_path: Path | None,
    as_json: bool,
) -> None:
    """Follow registry events into the index (resumable, reorg-safe)."""
    from dpki.indexer import Indexer, StepResult
    from dpki.store import Store

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    deployment = load_deployment(deployment_path)
    store = Store(db_url)
    idx = Indexer(
        deployment.registry_client(),
        store,
        deployment.deploy_block,
        confirmations=confirmations,
        batch_blocks=batch_blocks,
    )

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
    idx.run(poll=poll, progress=show)


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
    follow: bool,
    access_log: bool,
    deployment_path: Path | None,
) -> None:
    """Serve the JSON API, the OCSP responder and the web page from the index."""
    import os

    import uvicorn

    from dpki.inquiry.app import CONFIG_ENV, ServeConfig
    from dpki.inquiry.ocsp import load_or_create_identity
    from dpki.store import Store

    store = Store(db_url)  # creates or migrates the schema once, before any worker
    here = _beside(db_url)
    key = responder_key or here / "ocsp-responder.key"
    cert = responder_cert or here / "ocsp-responder.pem"
    identity = load_or_create_identity(key, cert, organization=organization)
    try:
        deployment = load_deployment(deployment_path)
    except ConfigError:
        if follow:
            raise
        deployment = None
    config = ServeConfig(
        db_url=db_url,
        responder_key=str(identity.key_path.resolve()),
        responder_cert=str(identity.cert_path.resolve()),
        rpc_url=deployment.rpc_url if deployment else None,
        ocsp_validity=ocsp_validity,
        max_lag=max_lag,
    )
    os.environ[CONFIG_ENV] = config.to_env()
    if follow and deployment is not None:
        from dpki.indexer import Indexer

        idx = Indexer(deployment.registry_client(), store, deployment.deploy_block)
        threading.Thread(target=idx.run, daemon=True, name="indexer").start()
    click.echo(
        f"inquiry node on http://{host}:{port} (index {store.safe_url}, OCSP responder "
        f"certificate {identity.cert_path})",
        err=True,
    )
    uvicorn.run(
        "dpki.inquiry.app:factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http="httptools",
        access_log=access_log,
        log_level="warning",
        timeout_keep_alive=5,
    )


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
    from dpki.relying import Verifier
    from dpki.x509 import load_facts

    found = load_facts(certificate)
    if len(found) != 1:
        raise ParseError(f"{certificate} holds {len(found)} certificates; want exactly one")
    if via == "chain":
        verifier = Verifier(load_deployment(deployment_path).registry_client())
    elif via.startswith(("http://", "https://")):
        verifier = Verifier(via)
    else:
        raise ConfigError(f"--via is 'chain' or an http(s) URL, got {via!r}")
    decision = verifier.decide(found[0].der)
    if as_json:
        echo_json(decision.to_json() | {"subject": found[0].subject})
    else:
        verdict = "trusted" if decision.trusted else "NOT trusted"
        click.echo(f"{verdict}: {found[0].subject} is {decision.status} ({verifier.label})")
    if not decision.trusted:
        sys.exit(1)


COMMANDS: list[click.Command] = [indexer, serve, verify]

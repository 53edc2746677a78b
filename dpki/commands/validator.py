"""``dpki validator run``: a member's long-running validator node."""

from __future__ import annotations

import logging
import re
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from dpki.commands._common import (
    deployment_option,
    load_deployment,
    metrics_options,
    start_metrics,
)
from dpki.errors import ChainError
from dpki.validator import Validator

__all__ = ["COMMANDS"]


@click.group()
def validator() -> None:
    """Validator node: re-verify submissions from the ledger and endorse or reject them."""


@validator.command("run")
@click.option("--as", "org", required=True, metavar="ORG", help="The validating member.")
@click.option(
    "--confirmations",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help=(
        "Blocks to wait before deciding. 0 is safe on every engine: each vote names the "
        "block its decision read and counts only on a chain that has it."
    ),
)
@click.option("--batch-size", type=click.IntRange(1, 500), default=100, show_default=True)
@click.option("--poll", type=float, default=0.25, show_default=True, help="Seconds between polls.")
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Checkpoint file (default: beside the deployment file).",
)
@click.option(
    "--keystore",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Encrypted keystore of the member.",
)
@click.option("--once", is_flag=True, help="Decide what is there now, then exit.")
@metrics_options
@deployment_option
def run(
    org: str,
    confirmations: int,
    batch_size: int,
    poll: float,
    state_path: Path | None,
    keystore: Path | None,
    once: bool,
    metrics_port: int | None,
    metrics_host: str,
    deployment_path: Path | None,
) -> None:
    """Follow submissions and vote until SIGTERM or Ctrl-C."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s " + org.replace("%", "%%") + ": %(message)s",
        stream=sys.stderr,
    )
    deployment = load_deployment(deployment_path)
    member = deployment.member(org)
    account = deployment.signer(org, keystore)
    slug = re.sub(r"[^a-z0-9]+", "-", member.organization.lower()).strip("-")
    base = deployment.path.parent if deployment.path else Path(".dpki")
    node = Validator(
        deployment.registry_client(org),
        account,
        deploy_block=deployment.deploy_block,
        state_path=state_path or base / f"validator-{slug}.json",
        confirmations=confirmations,
        batch_size=batch_size,
    )
    exposed = start_metrics(node.metrics, metrics_port, metrics_host)
    if once:
        while node.step():
            node.flush()
        if not node.flush():
            raise ChainError("votes sent but not mined after 60 s; run again to resume")
        return
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    node.run(stop, poll=poll)
    if exposed is not None:
        exposed.stop()


COMMANDS: list[click.Command] = [validator]

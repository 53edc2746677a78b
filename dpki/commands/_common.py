"""Options and output helpers shared by the commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dpki.chain.deployment import Deployment
from dpki.chain.types import address_problem, checked_address
from dpki.errors import ConfigError

if TYPE_CHECKING:
    from dpki.metrics import MetricsServer

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "ADDRESS",
    "deployment_option",
    "echo_json",
    "json_option",
    "load_deployment",
    "metrics_options",
    "start_metrics",
]


def deployment_option(f: F) -> F:
    """Add ``--deployment FILE`` (default ``$DPKI_DEPLOYMENT`` or ``.dpki/deployment.json``)."""
    return click.option(
        "--deployment",
        "deployment_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Deployment file (default: $DPKI_DEPLOYMENT or .dpki/deployment.json).",
    )(f)


def engine_option(what: str) -> Callable[[F], F]:
    """``--engine anvil|geth`` of the commands that start a devnet (``what``: geth's part)."""
    return click.option(
        "--engine",
        type=click.Choice(["anvil", "geth"]),
        default="anvil",
        show_default=True,
        help=f"anvil (one embedded process) or geth ({what}).",
    )


def json_option(f: F) -> F:
    """Add ``--json``."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)


def metrics_options(f: F) -> F:
    """Add ``--metrics-port N`` and ``--metrics-host H`` (Prometheus metrics of a node)."""
    f = click.option(
        "--metrics-host",
        default="127.0.0.1",
        show_default=True,
        help="Address the metrics endpoint listens on.",
    )(f)
    return click.option(
        "--metrics-port",
        type=click.IntRange(0, 65535),
        default=None,
        help="Serve Prometheus metrics at http://HOST:PORT/metrics (default: none).",
    )(f)


def start_metrics(metrics: Any, port: int | None, host: str) -> MetricsServer | None:
    """Serve a node's metrics (an object with ``registry``) when a port is given."""
    if port is None:
        return None
    from dpki.metrics import serve_metrics

    try:
        server = serve_metrics(metrics.registry, port, host)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from None
    click.echo(f"metrics on http://{host}:{server.port}/metrics", err=True)
    return server


def load_deployment(path: Path | None) -> Deployment:
    """Load the deployment file given or the default one."""
    return Deployment.load(path)


def echo_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON."""
    click.echo(json.dumps(obj, indent=2, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class _Address(click.ParamType):
    """An Ethereum address: 0x and 40 hex digits, EIP-55 checksum checked in mixed case."""

    name = "address"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        problem = address_problem(str(value))
        if problem:
            self.fail(problem, param, ctx)
        return checked_address(str(value))


ADDRESS = _Address()

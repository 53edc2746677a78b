"""The ``dpki`` command line: one group, commands in ``dpki.commands``.

Exit codes: 0 ok, 1 a negative answer (a policy violation, a certificate that is not
valid, a rejected submission), 2 bad input or usage, 3 the ledger could not be reached
or refused a transaction. Expected errors print one line on stderr, never a traceback.
"""

from __future__ import annotations

import sys

import click

from dpki.commands import chain as _chain
from dpki.commands import check as _check
from dpki.commands import demo as _demo
from dpki.commands import governance as _governance
from dpki.commands import inquiry as _inquiry
from dpki.commands import lifecycle as _lifecycle
from dpki.commands import network as _network
from dpki.commands import validator as _validator
from dpki.errors import DpkiError

__all__ = ["main"]


class _Group(click.Group):
    """A click group that turns DPKI errors into a message and an exit code."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except DpkiError as exc:
            click.echo(f"dpki: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("dpki: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dpki")
def main() -> None:
    """DPKI: certificate management on a consortium ledger."""


main.add_command(_check.check)
for _command in [
    *_chain.COMMANDS,
    *_lifecycle.COMMANDS,
    *_validator.COMMANDS,
    *_governance.COMMANDS,
    *_demo.COMMANDS,
    *_inquiry.COMMANDS,
    *_network.COMMANDS,
]:
    main.add_command(_command)

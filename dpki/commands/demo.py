"""``dpki demo``: the provisioning flow end to end on a private devnet."""

from __future__ import annotations

from pathlib import Path

import click

from dpki.commands._common import echo_json, engine_option, json_option
from dpki.dev.demo import run_demo

__all__ = ["COMMANDS"]


@click.command()
@click.option("--devices", type=click.IntRange(1, 10_000), default=200, show_default=True)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the demo's files (certificates, logs) here instead of a temp dir.",
)
@engine_option("a 3-node Clique network, one sealer per member")
@click.option(
    "--role-keys",
    is_flag=True,
    help="Give each member one key per role (validator and submitter accounts; anvil).",
)
@json_option
def demo(devices: int, workdir: Path | None, engine: str, role_keys: bool, as_json: bool) -> None:
    """Provision device certificates through M-of-N validators and show the result."""

    def say(line: str) -> None:
        if not as_json:
            click.echo(line)

    say("DPKI demo: 3 members, threshold 2, validators in separate processes\n")
    report = run_demo(devices, workdir, say=say, engine=engine, role_keys=role_keys)
    if as_json:
        echo_json(
            {"devices": devices, "timings_s": report.timings, "gas": report.gas, **report.facts}
        )
        return
    t = report.timings
    click.echo("\nreport")
    click.echo(f"  devnet + deploy         {t['devnet_and_deploy']:8.2f} s")
    click.echo(f"  mint {devices} certificates  {t['mint']:8.2f} s")
    click.echo(
        f"  submit -> all active    {t['provision']:8.2f} s"
        f"  ({devices / t['provision']:.0f} certificates/s)"
    )
    click.echo(f"  impostor submit->reject {t['reject']:8.2f} s")
    click.echo(f"  relying-party check     {t['authenticate_view_call'] * 1000:8.2f} ms")
    click.echo(f"  inquiry node catch-up   {t['inquiry_index']:8.2f} s")
    click.echo("  gas during provisioning:")
    for who, gas in report.gas.items():
        click.echo(f"    {who:<20} {gas:>12,}")
    click.echo("all processes stopped; devnet removed")


COMMANDS: list[click.Command] = [demo]

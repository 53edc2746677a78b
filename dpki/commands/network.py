"""``dpki network init``: genesis and node configuration for a consortium's own hosts."""

from __future__ import annotations

from pathlib import Path

import click

from dpki.chain.consortium import DEFAULT_GAS_LIMIT
from dpki.chain.netinit import init_network, parse_member
from dpki.commands._common import echo_json, json_option
from dpki.errors import ConfigError

__all__ = ["COMMANDS"]


@click.group()
def network() -> None:
    """Set up a consortium's proof-of-authority network (geth Clique or Besu QBFT)."""


@network.command("init")
@click.option(
    "--engine",
    type=click.Choice(["geth-clique", "besu-qbft"]),
    required=True,
    help="geth-clique (runs here, geth v1.13.15) or besu-qbft (for production).",
)
@click.option(
    "--org",
    "orgs",
    multiple=True,
    required=True,
    help="A sealing member: NAME (a key is made for it), NAME=ADDRESS (its signer/validator "
    "address) or, for Besu, NAME=0xPUBLIC_KEY (its node's key, so peers can list it).",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="NAME=HOST where a member's node runs (default: all on 127.0.0.1, ports offset).",
)
@click.option(
    "--period", type=click.IntRange(1), default=None, help="Block period (s; geth 1, Besu 2)."
)
@click.option(
    "--base-port",
    type=click.IntRange(1024, 65000),
    default=None,
    help="Ports from here (devp2p N+i, RPC N+100+i) instead of 30303+i and 8545+i.",
)
@click.option("--chain-id", type=click.IntRange(1), default=1337, show_default=True)
@click.option(
    "--gas-limit", type=click.IntRange(5_000_000), default=DEFAULT_GAS_LIMIT, show_default=True
)
@click.option(
    "--fund", "funded", multiple=True, help="Account funded in the genesis (default: signers)."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("network"),
    show_default=True,
    help="New folder for the files.",
)
@json_option
def init(
    engine: str,
    orgs: tuple[str, ...],
    hosts: tuple[str, ...],
    period: int | None,
    base_port: int | None,
    chain_id: int,
    gas_limit: int,
    funded: tuple[str, ...],
    out: Path,
    as_json: bool,
) -> None:
    """Write genesis.json, network.json and one folder per member (config, peers, start.sh)."""
    members = [parse_member(o) for o in orgs]
    by_name = {m.name: m for m in members}
    for item in hosts:
        name, sep, host = item.partition("=")
        if not sep or name.strip() not in by_name or not host.strip():
            raise ConfigError(f"--host {item!r}: NAME=HOST with NAME one of the --org names")
        by_name[name.strip()].host = host.strip()
    summary = init_network(
        engine,
        members,
        out,
        period=period,
        chain_id=chain_id,
        gas_limit=gas_limit,
        funded=list(funded) or None,
        base_port=base_port,
    )
    if as_json:
        echo_json(summary)
        return
    click.echo(f"{engine} network, chain {chain_id}, block period {summary['period']} s")
    for row in summary["members"]:
        click.echo(
            f"  {row['organization']:<16} {row['signer']}  {row['host']}:{row['p2p_port']} "
            f"rpc {row['rpc_port']}  {out / row['folder']}/start.sh"
        )
        if row["missing_peers"]:
            click.echo(
                f"    add the enode of {', '.join(row['missing_peers'])} to its static peers "
                "(NAME=0xPUBLIC_KEY gives it)"
            )
    click.echo(f"written   {out}/genesis.json, {out}/network.json")


COMMANDS: list[click.Command] = [network]

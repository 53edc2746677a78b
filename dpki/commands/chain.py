"""Chain commands: ``build``, ``devnet up|down|status`` and ``deploy``."""

from __future__ import annotations

from pathlib import Path

import click
from eth_account.signers.local import LocalAccount

from dpki.chain.deployment import (
    Deployment,
    DeploymentMember,
    default_path,
    roles_to_names,
    validator_account_name,
)
from dpki.chain.keys import dev_account, load_keystore
from dpki.chain.registry import ROLE_SUBMITTER, ROLE_VALIDATOR, MemberSpec, Registry, connect
from dpki.commands._common import deployment_option, echo_json, json_option
from dpki.dev.devnet import Devnet
from dpki.errors import ConfigError

__all__ = ["COMMANDS", "DEFAULT_ORGS", "deploy_devnet"]

DEFAULT_ORGS = ("Vendor A", "Operator B", "CA C")
BOTH = ROLE_VALIDATOR | ROLE_SUBMITTER


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Artifact path.")
def build(out: Path | None) -> None:
    """Compile contracts/ into dpki/artifacts/CertificateRegistry.json."""
    from dpki.dev.build import ARTIFACT_PATH
    from dpki.dev.build import build as do_build

    path = do_build(out=out or ARTIFACT_PATH)
    click.echo(f"wrote {path}")


@click.group()
def devnet() -> None:
    """Run the embedded devnet (anvil on 127.0.0.1 with the registry deployed)."""


def deploy_devnet(
    orgs: tuple[str, ...] | list[str],
    threshold: int,
    port: int | None = None,
    state_dir: Path = Path(".dpki"),
    path: Path | None = None,
    block_time: float | None = None,
    role_keys: bool = False,
) -> Deployment:
    """Start anvil, deploy a registry with one member per organization and save the file.

    With ``role_keys`` each organization holds its roles with two keys: ORG submits
    (SUBMITTER only) and ``validator_account_name(ORG)`` validates (VALIDATOR only), so a
    member's validator and its submission node never send from the same account.
    """
    if not orgs:
        raise ConfigError("a devnet needs at least one --org")
    if len(set(orgs)) != len(orgs):
        raise ConfigError(f"organizations must be distinct, got {list(orgs)}")
    if not 1 <= threshold <= len(orgs):
        raise ConfigError(f"--threshold must be between 1 and {len(orgs)}, got {threshold}")
    state_dir.mkdir(parents=True, exist_ok=True)
    net = Devnet.start(
        port,
        log=state_dir / "anvil.log",
        block_time=block_time,
        accounts=max(10, 2 * len(orgs) + 4),
    )
    try:
        w3 = connect(net.rpc_url)
        if role_keys:
            specs = [
                MemberSpec(dev_account(i).address, org, ROLE_SUBMITTER)
                for i, org in enumerate(orgs)
            ] + [
                MemberSpec(
                    dev_account(len(orgs) + i).address, validator_account_name(org), ROLE_VALIDATOR
                )
                for i, org in enumerate(orgs)
            ]
        else:
            specs = [MemberSpec(dev_account(i).address, org, BOTH) for i, org in enumerate(orgs)]
        registry, receipt = Registry.deploy(w3, dev_account(0), specs, threshold)
        deployment = Deployment(
            rpc_url=net.rpc_url,
            chain_id=registry.chain_id,
            registry=registry.address,
            deploy_block=receipt.block_number,
            members=[
                DeploymentMember(s.organization, s.address, roles_to_names(s.roles), i)
                for i, s in enumerate(specs)
            ],
            network="devnet",
            devnet={"pid": net.pid, "port": net.port, "log": str(net.log)},
        )
        deployment.save(path or default_path())
    except BaseException:
        net.stop()
        raise
    return deployment


def _running_devnet(path: Path) -> Deployment | None:
    try:
        current = Deployment.load(path)
    except ConfigError:
        return None
    if current.devnet and Devnet(current.devnet["pid"], current.devnet["port"]).alive():
        return current
    return None


@devnet.command("up")
@click.option(
    "--org", "orgs", multiple=True, help="Member organization (repeat); default: 3 demo orgs."
)
@click.option(
    "--threshold", type=int, default=None, help="Endorsements needed (default 2, or 1 for one org)."
)
@click.option("--port", type=int, default=None, help="RPC port (default: a free one).")
@click.option(
    "--block-time",
    type=float,
    default=None,
    help="Seconds per block (default: mine on each transaction).",
)
@click.option(
    "--role-keys",
    is_flag=True,
    help="One key per role: ORG submits, 'ORG validator' validates (two accounts each).",
)
@deployment_option
@json_option
def devnet_up(
    orgs: tuple[str, ...],
    threshold: int | None,
    port: int | None,
    block_time: float | None,
    role_keys: bool,
    deployment_path: Path | None,
    as_json: bool,
) -> None:
    """Start anvil, deploy the registry and write the deployment file."""
    path = deployment_path or default_path()
    running = _running_devnet(path)
    if running is not None:
        raise ConfigError(
            f"a devnet is already running (pid {running.devnet['pid']}, {running.rpc_url}); "  # type: ignore[index]
            "stop it with `dpki devnet down`"
        )
    orgs = orgs or DEFAULT_ORGS
    threshold = threshold or min(2, len(orgs))
    deployment = deploy_devnet(orgs, threshold, port, path.parent, path, block_time, role_keys)
    _print_deployment(deployment, as_json)


@devnet.command("down")
@deployment_option
def devnet_down(deployment_path: Path | None) -> None:
    """Stop the devnet started by `dpki devnet up`."""
    path = deployment_path or default_path()
    try:
        current = Deployment.load(path)
    except ConfigError:
        click.echo("no devnet running")
        return
    if not current.devnet:
        raise ConfigError(f"{path} describes a network that is not a devnet; nothing to stop")
    Devnet(current.devnet["pid"], current.devnet["port"]).stop()
    path.unlink(missing_ok=True)
    click.echo(f"stopped devnet (pid {current.devnet['pid']})")


@devnet.command("status")
@deployment_option
@json_option
def devnet_status(deployment_path: Path | None, as_json: bool) -> None:
    """Say whether the devnet is running; exit 1 when it is not."""
    running = _running_devnet(deployment_path or default_path())
    if running is None:
        if as_json:
            echo_json({"running": False})
        else:
            click.echo("no devnet running")
        raise SystemExit(1)
    if as_json:
        echo_json({"running": True, **running.to_json()})
    else:
        click.echo(f"devnet running at {running.rpc_url}, registry {running.registry}")


def _print_deployment(deployment: Deployment, as_json: bool) -> None:
    if as_json:
        echo_json(deployment.to_json())
        return
    click.echo(f"registry  {deployment.registry}")
    click.echo(f"rpc       {deployment.rpc_url} (chain {deployment.chain_id})")
    click.echo(f"block     {deployment.deploy_block}")
    for m in deployment.members:
        click.echo(f"member    {m.organization:<20} {m.address}  {'+'.join(m.roles)}")
    click.echo(f"written   {deployment.path}")


@click.command()
@click.option("--rpc", "rpc_url", required=True, help="JSON-RPC URL of the chain.")
@click.option(
    "--keystore",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Encrypted keystore of the deploying member (password: $DPKI_KEYSTORE_PASSWORD).",
)
@click.option(
    "--org",
    "orgs",
    multiple=True,
    required=True,
    help="Genesis member: the first is the deployer's organization (NAME); others NAME=ADDRESS.",
)
@click.option(
    "--threshold", type=int, default=None, help="Endorsements needed (default: majority)."
)
@deployment_option
@json_option
def deploy(
    rpc_url: str,
    keystore: Path,
    orgs: tuple[str, ...],
    threshold: int | None,
    deployment_path: Path | None,
    as_json: bool,
) -> None:
    """Deploy the registry on any Ethereum JSON-RPC chain (e.g. Besu QBFT)."""
    account: LocalAccount = load_keystore(keystore)
    specs = []
    for i, item in enumerate(orgs):
        name, sep, address = item.partition("=")
        if i == 0:
            if sep:
                raise ConfigError("the first --org is the deployer's organization: NAME only")
            address = account.address
        elif not sep:
            raise ConfigError(f"--org {item!r}: other members are NAME=ADDRESS")
        specs.append(MemberSpec(address.strip(), name.strip(), BOTH))
    threshold = threshold or len(specs) // 2 + 1
    w3 = connect(rpc_url)
    registry, receipt = Registry.deploy(w3, account, specs, threshold)
    deployment = Deployment(
        rpc_url=rpc_url,
        chain_id=registry.chain_id,
        registry=registry.address,
        deploy_block=receipt.block_number,
        members=[
            DeploymentMember(
                s.organization,
                s.address,
                roles_to_names(s.roles),
                keystore=str(keystore.resolve()) if i == 0 else None,
            )
            for i, s in enumerate(specs)
        ],
    )
    deployment.save(deployment_path or default_path())
    _print_deployment(deployment, as_json)


COMMANDS: list[click.Command] = [build, devnet, deploy]

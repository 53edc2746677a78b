"""Chain commands: ``build``, ``devnet up|down|status`` and ``deploy``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import click
from eth_account.signers.local import LocalAccount

from dpki.chain.consortium import detect_engine
from dpki.chain.deployment import (
    Deployment,
    DeploymentMember,
    default_path,
    roles_to_names,
    validator_account_name,
)
from dpki.chain.keys import dev_account, load_keystore
from dpki.chain.registry import ROLE_SUBMITTER, ROLE_VALIDATOR, MemberSpec, Registry, connect
from dpki.chain.types import checked_address
from dpki.commands._common import deployment_option, echo_json, engine_option, json_option
from dpki.dev.devnet import Devnet
from dpki.dev.gethnet import DEVNET_GAS_LIMIT
from dpki.errors import ConfigError
from dpki.pki.x509 import normalize_organization

if TYPE_CHECKING:
    from dpki.dev.gethnet import GethNetwork

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
    orgs = _canonical_orgs(orgs, threshold)
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
            engine="anvil",
        )
        deployment.save(path or default_path())
    except BaseException:
        net.stop()
        raise
    return deployment


def _geth_network(deployment: Deployment) -> GethNetwork | None:
    """Return the geth devnet a deployment file describes (its own record when newer)."""
    from dpki.dev.gethnet import GethNetwork

    if not deployment.devnet or deployment.devnet.get("engine") != "geth-clique":
        return None
    root = Path(deployment.devnet["root"])
    if (root / "network.json").is_file():
        return GethNetwork.load(root)
    return GethNetwork.from_json(deployment.devnet)


def _canonical_orgs(orgs: tuple[str, ...] | list[str], threshold: int) -> list[str]:
    """Return the organizations in the canonical form the ledger wants, or refuse them."""
    if not orgs:
        raise ConfigError("a devnet needs at least one --org")
    orgs = [normalize_organization(o) or "" for o in orgs]
    if len(set(orgs)) != len(orgs):
        raise ConfigError(f"organizations must be distinct, got {list(orgs)}")
    if not 1 <= threshold <= len(orgs):
        raise ConfigError(f"--threshold must be between 1 and {len(orgs)}, got {threshold}")
    return orgs


def _running_devnet(path: Path) -> Deployment | None:
    try:
        current = Deployment.load(path)
    except ConfigError:
        return None
    if not current.devnet:
        return None
    geth = _geth_network(current)
    if geth is not None:
        return current if any(n.alive() for n in geth.nodes) else None
    if Devnet(current.devnet["pid"], current.devnet["port"]).alive():
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
    help="anvil: seconds per block (default: mine on each transaction).",
)
@engine_option("a Clique sealer per member")
@click.option(
    "--nodes",
    type=click.IntRange(1, 16),
    default=None,
    help="geth: number of members/nodes (default: one per --org, 3 without --org).",
)
@click.option(
    "--period", type=click.IntRange(1), default=1, show_default=True, help="geth: block period (s)."
)
@click.option(
    "--gas-limit",
    type=click.IntRange(5_000_000),
    default=DEVNET_GAS_LIMIT,
    show_default=True,
    help="geth: block gas limit. 100 M: ten batches of 100 submissions (~6.9 M gas each) "
    "and their endorsements fit one block, so a run of batches waits for fewer blocks.",
)
@click.option(
    "--validators",
    "with_validators",
    is_flag=True,
    help="Also run each member's validator; `dpki devnet down` stops them.",
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
    engine: str,
    nodes: int | None,
    period: int,
    gas_limit: int,
    with_validators: bool,
    role_keys: bool,
    deployment_path: Path | None,
    as_json: bool,
) -> None:
    """Start a devnet, deploy the registry and write the deployment file."""
    path = deployment_path or default_path()
    running = _running_devnet(path)
    if running is not None:
        raise ConfigError(
            f"a devnet is already running ({running.rpc_url}); stop it with `dpki devnet down`"
        )
    if engine == "anvil" and nodes not in (None, 1):
        raise ConfigError("--nodes needs --engine geth (anvil is one process)")
    if nodes is not None and orgs and nodes != len(orgs):
        raise ConfigError(f"--nodes {nodes} but {len(orgs)} --org: one node per member")
    if not orgs:
        orgs = (
            DEFAULT_ORGS if nodes in (None, 3) else tuple(f"Member {i + 1}" for i in range(nodes))
        )
    _refuse_other_network(path)
    threshold = threshold or min(2, len(orgs))
    if engine == "geth":
        from dpki.dev.gethnet import deploy_geth_devnet

        if role_keys:
            raise ConfigError("--role-keys is for the anvil devnet (geth: one key per member)")
        deployment = deploy_geth_devnet(
            _canonical_orgs(orgs, threshold),
            threshold,
            state_dir=path.parent,
            path=path,
            period=period,
            gas_limit=gas_limit,
        )
    else:
        deployment = deploy_devnet(orgs, threshold, port, path.parent, path, block_time, role_keys)
    if with_validators:
        _start_managed_validators(deployment)
    _print_deployment(deployment, as_json)


def _refuse_other_network(path: Path) -> None:
    """Refuse to replace the deployment file of a network that is not a devnet."""
    try:
        current = Deployment.load(path)
    except ConfigError:
        return
    if not current.devnet:
        raise ConfigError(
            f"{path} describes a {current.network} network at {current.rpc_url}, not a devnet: "
            "pass --deployment FILE for the devnet"
        )


def _start_managed_validators(deployment: Deployment) -> None:
    """Start the members' validators and record them in the deployment file (for `down`)."""
    from dpki.dev.validators import start_validators

    assert deployment.devnet is not None
    try:
        deployment.devnet["validators"] = start_validators(deployment)
    finally:
        deployment.save()


def _stop_managed_validators(current: Deployment) -> list[int]:
    from dpki.dev.validators import stop_validators

    return stop_validators((current.devnet or {}).get("validators", []))


@devnet.command("down")
@click.option("--keep-data", is_flag=True, help="geth: keep the nodes' data folders.")
@deployment_option
def devnet_down(keep_data: bool, deployment_path: Path | None) -> None:
    """Stop the devnet started by `dpki devnet up` (every process, by PID)."""
    path = deployment_path or default_path()
    if not path.exists():
        click.echo("no devnet running")
        return
    current = Deployment.load(path)
    if not current.devnet:
        raise ConfigError(f"{path} describes a network that is not a devnet; nothing to stop")
    validators = _stop_managed_validators(current)
    geth = _geth_network(current)
    if geth is not None:
        pids = [*validators, *geth.stop(keep_data=keep_data)]
        if not keep_data:
            path.unlink(missing_ok=True)
        kept = f"; data kept in {geth.root}" if keep_data else ""
        click.echo(f"stopped geth devnet (pids {', '.join(map(str, pids)) or 'none'}){kept}")
        return
    Devnet(current.devnet["pid"], current.devnet["port"]).stop()
    path.unlink(missing_ok=True)
    also = f" and its validators (pids {', '.join(map(str, validators))})" if validators else ""
    click.echo(f"stopped devnet (pid {current.devnet['pid']}){also}")


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
    geth = _geth_network(running)
    nodes = geth.status() if geth is not None else None
    if as_json:
        echo_json({"running": True, **running.to_json(), **({"nodes": nodes} if nodes else {})})
        return
    click.echo(f"devnet running at {running.rpc_url}, registry {running.registry}")
    for v in running.devnet.get("validators", []) if running.devnet else []:
        click.echo(f"validator {v['organization']:<20} pid {v['pid']}  log {v['log']}")
    for row in nodes or []:
        if "head" not in row:
            click.echo(f"node  {row['organization']:<16} {row['rpc_url']}  DOWN")
            continue
        seals = "sealing" if row["sealing"] and row["is_signer"] else "not sealing"
        click.echo(
            f"node  {row['organization']:<16} {row['rpc_url']}  head {row['head']} "
            f"({row['head_age_seconds']} s ago)  peers {row['peers']}  "
            f"signers {len(row['signers'])}  {seals} as {row['signer']} "
            f"({row['sealed_recent']} of the recent blocks)"
        )


def _checked_url(url: str) -> str:
    parsed = urlparse(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"--rpc: got {url!r}; want an http(s) URL such as http://127.0.0.1:8545")
    return url.strip()


def _refuse_overwrite(path: Path, force: bool) -> None:
    """Refuse to replace a deployment file: always a running devnet's, others without --force."""
    running = _running_devnet(path)
    if running is not None:
        raise ConfigError(
            f"{path} belongs to a running devnet (pid {running.devnet['pid']}, "  # type: ignore[index]
            f"{running.rpc_url}); stop it with `dpki devnet down` or pass another --deployment"
        )
    if path.exists() and not force:
        raise ConfigError(
            f"{path} already exists; pass --force to overwrite it, "
            "or --deployment FILE for a new one"
        )


def _print_deployment(deployment: Deployment, as_json: bool) -> None:
    if as_json:
        echo_json(deployment.to_json())
        return
    click.echo(f"registry  {deployment.registry}")
    click.echo(f"rpc       {deployment.rpc_url} (chain {deployment.chain_id})")
    click.echo(f"block     {deployment.deploy_block}")
    for m in deployment.members:
        node = f"  node {m.rpc_url}" if m.rpc_url else ""
        click.echo(f"member    {m.organization:<20} {m.address}  {'+'.join(m.roles)}{node}")
    for v in (deployment.devnet or {}).get("validators", []):
        click.echo(f"validator {v['organization']:<20} pid {v['pid']}  log {v['log']}")
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
@click.option(
    "--force", is_flag=True, help="Overwrite an existing deployment file (not a running devnet's)."
)
@deployment_option
@json_option
def deploy(
    rpc_url: str,
    keystore: Path,
    orgs: tuple[str, ...],
    threshold: int | None,
    force: bool,
    deployment_path: Path | None,
    as_json: bool,
) -> None:
    """Deploy the registry on any Ethereum JSON-RPC chain (e.g. Besu QBFT)."""
    rpc_url = _checked_url(rpc_url)
    others = []
    for i, item in enumerate(orgs):
        name, sep, address = item.partition("=")
        if i == 0 and sep:
            raise ConfigError("the first --org is the deployer's organization: NAME only")
        if i > 0 and not sep:
            raise ConfigError(f"--org {item!r}: other members are NAME=ADDRESS")
        # the ledger accepts only canonical names: send the NFC, trimmed form
        if i > 0:
            others.append(
                MemberSpec(
                    checked_address(address, f"--org {item!r}"),
                    normalize_organization(name) or "",
                    BOTH,
                )
            )
    path = deployment_path or default_path()
    _refuse_overwrite(path, force)
    account: LocalAccount = load_keystore(keystore)
    specs = [MemberSpec(account.address, normalize_organization(orgs[0]) or "", BOTH), *others]
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
        engine=detect_engine(rpc_url),
    )
    deployment.save(path)
    _print_deployment(deployment, as_json)


COMMANDS: list[click.Command] = [build, devnet, deploy]

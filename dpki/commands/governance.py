"""Consortium governance: members, proposals and approvals by a quorum of validators."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from eth_account.signers.local import LocalAccount

from dpki.chain.deployment import Deployment, roles_from_names, roles_to_names
from dpki.chain.registry import PendingTx, Proposal, ProposalKind, Registry, proposal_id_of
from dpki.commands._common import deployment_option, echo_json, json_option, load_deployment
from dpki.commands.lifecycle import as_option, keystore_option, resolve_cert_id
from dpki.pki.codes import REVOCATION_REASONS

__all__ = ["COMMANDS"]

_ROLE_CHOICE = click.Choice(["validator", "submitter", "both"])


def _roles(value: str) -> int:
    return roles_from_names(["validator", "submitter"] if value == "both" else [value])


@click.command()
@deployment_option
@json_option
def members(deployment_path: Path | None, as_json: bool) -> None:
    """List the consortium's members and the threshold, as the ledger has them."""
    deployment = load_deployment(deployment_path)
    registry = deployment.registry_client()
    deployment.sync_members(registry)
    rows = [
        {"organization": m.organization, "address": m.address, "roles": roles_to_names(m.roles)}
        for m in registry.members()
    ]
    threshold = registry.threshold()
    if as_json:
        echo_json({"threshold": threshold, "members": rows})
        return
    click.echo(f"threshold {threshold} of {registry.validator_count()} validators")
    for r in rows:
        click.echo(f"{r['organization']:<24} {r['address']}  {'+'.join(r['roles'])}")


def _proposal_json(p: Proposal) -> dict[str, Any]:
    return {
        "id": p.proposal_id,
        "kind": p.kind.name.lower(),
        "proposer": p.proposer,
        "approvals": p.approvals,
        "executed": p.executed,
        "cancelled": p.cancelled,
        "account": p.account if int(p.account, 16) else None,
        "organization": p.organization or None,
        "roles": roles_to_names(p.roles) if p.roles else None,
        "threshold": p.threshold or None,
        "certificate": p.cert_id.hex() if any(p.cert_id) else None,
        "reason": p.reason if p.kind is ProposalKind.REVOKE else None,
    }


@click.command()
@click.option("--open", "only_open", is_flag=True, help="Only proposals not yet decided.")
@deployment_option
@json_option
def proposals(only_open: bool, deployment_path: Path | None, as_json: bool) -> None:
    """List governance proposals."""
    registry = load_deployment(deployment_path).registry_client()
    rows = [_proposal_json(registry.proposal(i)) for i in range(1, registry.proposal_count() + 1)]
    if only_open:
        rows = [r for r in rows if not (r["executed"] or r["cancelled"])]
    if as_json:
        echo_json({"threshold": registry.threshold(), "proposals": rows})
        return
    for r in rows:
        state = "executed" if r["executed"] else "cancelled" if r["cancelled"] else "open"
        target = r["organization"] or r["account"] or r["certificate"] or r["threshold"]
        click.echo(f"#{r['id']:<4} {r['kind']:<14} {state:<9} {r['approvals']} approvals  {target}")


def _report(registry: Registry, proposal_id: int, as_json: bool, deployment: Deployment) -> None:
    data = _proposal_json(registry.proposal(proposal_id))
    if data["executed"]:
        deployment.sync_members(registry)
    if as_json:
        echo_json(data)
        return
    if data["executed"]:
        click.echo(f"proposal #{proposal_id} ({data['kind']}) executed")
    else:
        need = registry.threshold()
        click.echo(
            f"proposal #{proposal_id} ({data['kind']}) open: {data['approvals']} of {need} "
            "approvals; other validators approve with `dpki approve "
            f"{proposal_id} --as ORG`"
        )


@click.group()
def propose() -> None:
    """Open a proposal (your approval counts); it executes at the validator quorum."""


def _proposer(name: str, kind: ProposalKind, params: list[click.Parameter], doc: str) -> None:
    @propose.command(name=name, help=doc)
    @as_option
    @keystore_option
    @deployment_option
    @json_option
    def command(
        org: str, keystore: Path | None, deployment_path: Path | None, as_json: bool,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        deployment = load_deployment(deployment_path)
        account = deployment.signer(org, keystore)
        registry = deployment.registry_client(org)
        args = _proposal_args(kind, kwargs)
        proposal_id = proposal_id_of(registry.propose(account, kind, *args).wait())
        _report(registry, proposal_id, as_json, deployment)

    command.params[:0] = params


def _proposal_args(kind: ProposalKind, kw: dict[str, Any]) -> tuple[Any, ...]:
    if kind is ProposalKind.ADD_MEMBER:
        return (kw["address"], kw["organization"], _roles(kw["roles"]))
    if kind is ProposalKind.REMOVE_MEMBER:
        return (kw["address"],)
    if kind is ProposalKind.SET_ROLES:
        return (kw["address"], _roles(kw["roles"]))
    if kind is ProposalKind.SET_THRESHOLD:
        return (kw["threshold"],)
    cert_id, _ = resolve_cert_id(kw["certificate"])
    if kind is ProposalKind.REVOKE:
        return (cert_id, REVOCATION_REASONS[kw["reason"]])
    return (cert_id,)


_ADDRESS = click.Argument(["address"])
_CERT = click.Argument(["certificate"])
_ROLES = click.Option(["--roles"], type=_ROLE_CHOICE, default="both", show_default=True)
_proposer(
    "add-member",
    ProposalKind.ADD_MEMBER,
    [_ADDRESS, click.Argument(["organization"]), _ROLES],
    "Propose a new member.",
)
_proposer("remove-member", ProposalKind.REMOVE_MEMBER, [_ADDRESS], "Propose removing a member.")
_proposer("set-roles", ProposalKind.SET_ROLES, [_ADDRESS, _ROLES], "Propose new roles.")
_proposer(
    "threshold",
    ProposalKind.SET_THRESHOLD,
    [click.Argument(["threshold"], type=click.IntRange(1, 48))],
    "Propose a new endorsement threshold (also the governance quorum).",
)
_proposer(
    "revoke",
    ProposalKind.REVOKE,
    [
        _CERT,
        click.Option(
            ["--reason"],
            type=click.Choice(list(REVOCATION_REASONS)),
            default="unspecified",
            show_default=True,
        ),
    ],
    "Propose revoking any certificate by validator quorum.",
)
_proposer("suspend", ProposalKind.SUSPEND, [_CERT], "Propose suspending any certificate.")
_proposer("resume", ProposalKind.RESUME, [_CERT], "Propose resuming a suspended certificate.")


def _proposal_step(
    name: str, step: Callable[[Registry, LocalAccount, int], PendingTx], doc: str
) -> click.Command:
    """Build ``dpki approve`` / ``dpki execute``: one validator transaction on a proposal."""

    @click.command(name=name, help=doc)
    @click.argument("proposal_id", type=int)
    @as_option
    @keystore_option
    @deployment_option
    @json_option
    def command(
        proposal_id: int,
        org: str,
        keystore: Path | None,
        deployment_path: Path | None,
        as_json: bool,
    ) -> None:
        deployment = load_deployment(deployment_path)
        registry = deployment.registry_client(org)
        step(registry, deployment.signer(org, keystore), proposal_id).wait()
        _report(registry, proposal_id, as_json, deployment)

    return command


approve = _proposal_step(
    "approve",
    Registry.approve,
    "Approve a proposal as a validator; it executes when the quorum is reached.",
)
execute = _proposal_step(
    "execute",
    Registry.execute,
    "Execute a proposal that has its quorum after the threshold was lowered.",
)

COMMANDS: list[click.Command] = [members, proposals, propose, approve, execute]

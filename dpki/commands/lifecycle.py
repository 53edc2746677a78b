"""Submission-node and lifecycle commands: submit, status, revoke, suspend, resume, renew."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from eth_account.signers.local import LocalAccount

from dpki.chain.consortium import default_confirmations
from dpki.chain.deployment import Deployment
from dpki.chain.registry import CertificateStatus, PendingTx, Registry, Status, as_cert_id
from dpki.commands._common import deployment_option, echo_json, json_option, load_deployment
from dpki.errors import ConfigError, DpkiError, ParseError
from dpki.pki.codes import REVOCATION_REASONS, reason_label
from dpki.pki.issuers import LedgerIssuers, chain_lookups
from dpki.pki.policy import StaticIssuers, evaluate
from dpki.pki.x509 import CertificateFacts, load_facts
from dpki.submission import SubmitOutcome, submission_for, submit_all

__all__ = ["COMMANDS", "resolve_cert_id"]


as_option = click.option(
    "--as",
    "org",
    required=True,
    metavar="ORG",
    help="Act for the member whose organization is ORG.",
)
keystore_option = click.option(
    "--keystore",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Encrypted keystore of the member (password: $DPKI_KEYSTORE_PASSWORD or a prompt).",
)


def resolve_cert_id(value: str) -> tuple[bytes, CertificateFacts | None]:
    """Return the id of a certificate given as a file (PEM/DER) or as 64 hex digits."""
    path = Path(value)
    if path.exists():
        found = load_facts(path)
        if len(found) != 1:
            raise ParseError(f"{value} holds {len(found)} certificates; want exactly one")
        return bytes.fromhex(found[0].id), found[0]
    try:
        return as_cert_id(value), None
    except ConfigError:
        raise ConfigError(
            f"{value!r} is neither a certificate file nor a certificate id (64 hex digits)"
        ) from None


def _load_all(files: tuple[Path, ...]) -> list[tuple[Path, CertificateFacts]]:
    out: list[tuple[Path, CertificateFacts]] = []
    for file in files:
        out.extend((file, f) for f in load_facts(file))
    return out


def status_json(
    registry: Registry, record: CertificateStatus, members: dict[str, str]
) -> dict[str, Any]:
    """Return the JSON view of a certificate's ledger record."""
    endorsers = registry.endorsers_of(record.cert_id) if record.status is not Status.NONE else []
    now = registry.block_timestamp()
    expired = record.status is not Status.NONE and now > record.not_after
    return {
        "id": record.cert_id.hex(),
        "status": record.status.label,
        "valid": record.valid_at(now),
        "expired": expired,
        "submitter": record.submitter,
        "submitter_organization": members.get(record.submitter or ""),
        "endorsers": [{"address": a, "organization": members.get(a)} for a in endorsers],
        "endorsements": record.endorsements,
        "rejections": record.rejections,
        "not_before": _iso(record.not_before) if record.status is not Status.NONE else None,
        "not_after": _iso(record.not_after) if record.status is not Status.NONE else None,
        "updated_at": _iso(record.updated_at) if record.status is not Status.NONE else None,
        "reason": reason_label(record.status, record.reason),
        "replaces": record.replaces.hex() if record.replaces else None,
        "replaced_by": (rb.hex() if (rb := registry.replaced_by(record.cert_id)) else None),
        "checked_at": _iso(now),
    }


def _iso(ts: int) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):  # a submitter may declare any uint40
        return f"unix:{ts}"


def _member_names(registry: Registry) -> dict[str, str]:
    return {m.address: m.organization for m in registry.members()}


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@as_option
@click.option("--batch-size", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--wait", is_flag=True, help="Wait until each certificate is active or rejected.")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds for --wait.")
@click.option(
    "--skip-check",
    is_flag=True,
    help="Submit without the local policy check (to exercise validators; not for daily use).",
)
@click.option(
    "--issuer",
    "issuers",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Issuer certificate file for the policy check (repeat).",
)
@keystore_option
@deployment_option
@json_option
def submit(
    files: tuple[Path, ...],
    org: str,
    batch_size: int,
    wait: bool,
    timeout: float,
    skip_check: bool,
    issuers: tuple[Path, ...],
    keystore: Path | None,
    deployment_path: Path | None,
    as_json: bool,
) -> None:
    """Check certificates with the policy and submit them to the ledger in batches.

    Exit 0 when all were submitted (and with --wait all active), 1 when any was refused by
    the policy or rejected by the validators, 2 for bad input.
    """
    deployment = load_deployment(deployment_path)
    member = deployment.member(org)
    account = deployment.signer(org, keystore)
    registry = deployment.registry_client(org)
    entries = _load_all(files)
    static = None
    if issuers:
        static = StaticIssuers([f.certificate for p in issuers for f in load_facts(p)])
    ledger = None
    if not skip_check:
        ledger = LedgerIssuers(registry, deployment.deploy_block)
        ledger.refresh()
    lookup = chain_lookups(static, ledger)
    now = datetime.now(UTC)
    report: list[dict[str, Any]] = []
    to_send = []
    for file, f in entries:
        row: dict[str, Any] = {"file": str(file), "id": f.id, "violations": []}
        report.append(row)
        if not skip_check:
            verdict = evaluate(f, organization=member.organization, at=now, issuers=lookup)
            if not verdict.ok:
                row["violations"] = [
                    {"code": v.code, "message": v.message} for v in verdict.violations
                ]
                row["status"] = "refused"
                row["submitted"] = False
                continue
        to_send.append((row, submission_for(f)))
    submissions = [s for _, s in to_send]
    outcomes: list[SubmitOutcome] = []
    if submissions:
        depth = default_confirmations(deployment.engine, deployment.node_url(org))
        if not as_json and len(submissions) > batch_size and _isatty():
            bar: Any
            with click.progressbar(
                length=len(submissions), label="submitting", file=click.get_text_stream("stderr")
            ) as bar:
                outcomes = submit_all(
                    registry,
                    account,
                    submissions,
                    batch_size=batch_size,
                    progress=bar.update,
                    confirmations=depth,
                )
        else:
            outcomes = submit_all(
                registry, account, submissions, batch_size=batch_size, confirmations=depth
            )
    for (row, _), outcome in zip(to_send, outcomes, strict=True):
        row["submitted"] = outcome.submitted
        row["status"] = outcome.status.label
        if outcome.tx_hash:
            row["tx"] = "0x" + outcome.tx_hash.hex()
    if wait and submissions:
        _wait_decided(registry, [r for r, _ in to_send], timeout)
    failed = any(r["status"] in ("refused", "rejected") for r in report) or (
        wait and any(r["status"] != "active" for r in report)
    )
    if as_json:
        echo_json({"certificates": report})
    else:
        for r in report:
            note = "submitted" if r.get("submitted") else "already on the ledger"
            if r["status"] == "refused":
                note = "refused: " + ", ".join(v["code"] for v in r["violations"])
            click.echo(f"{r['id']}  {r['status']:<10} {note}  ({r['file']})")
    raise SystemExit(1 if failed else 0)


def _isatty() -> bool:
    return click.get_text_stream("stderr").isatty()


def _wait_decided(registry: Registry, rows: list[dict[str, Any]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = {r["id"]: r for r in rows}
    while waiting:
        for cid in list(waiting):
            status = registry.status_of(cid).status
            if status is not Status.PENDING:
                waiting.pop(cid)["status"] = status.label
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise DpkiError(
                f"{len(waiting)} certificate(s) still pending after {timeout:.0f} s: "
                "are validators running (`dpki validator run --as ORG`)?"
            )
        time.sleep(0.2)


@click.command()
@click.argument("certificate")
@deployment_option
@json_option
def status(certificate: str, deployment_path: Path | None, as_json: bool) -> None:
    """Show a certificate's ledger status (FILE or ID); exit 0 only when valid now."""
    cert_id, _ = resolve_cert_id(certificate)
    deployment = load_deployment(deployment_path)
    registry = deployment.registry_client()
    record = registry.status_of(cert_id)
    data = status_json(registry, record, _member_names(registry))
    if as_json:
        echo_json(data)
    else:
        click.echo(f"certificate  {data['id']}")
        verdict = "VALID" if data["valid"] else "NOT VALID"
        expired = " (expired)" if data["expired"] else ""
        click.echo(f"status       {data['status']}{expired} -> {verdict}")
        if record.status is not Status.NONE:
            click.echo(f"submitter    {data['submitter_organization']} ({data['submitter']})")
            names = ", ".join(e["organization"] or e["address"] for e in data["endorsers"])
            click.echo(f"endorsed by  {names or '-'} ({data['endorsements']})")
            click.echo(f"window       {data['not_before']} .. {data['not_after']}")
            click.echo(f"updated      {data['updated_at']}")
            if data["reason"]:
                click.echo(f"reason       {data['reason']}")
            for key in ("replaces", "replaced_by"):
                if data[key]:
                    click.echo(f"{key.replace('_', ' '):<12} {data[key]}")
    raise SystemExit(0 if data["valid"] else 1)


def _act(
    deployment: Deployment,
    org: str,
    keystore: Path | None,
    act: Callable[..., PendingTx],
    cert: str,
    *extra: Any,
) -> tuple[Registry, bytes]:
    cert_id, _ = resolve_cert_id(cert)
    account = deployment.signer(org, keystore)
    registry = deployment.registry_client(org)
    act(registry, account, cert_id, *extra).wait()
    return registry, cert_id


def _after(registry: Registry, cert_id: bytes, as_json: bool) -> None:
    record = registry.status_of(cert_id)
    data = status_json(registry, record, _member_names(registry))
    if as_json:
        echo_json(data)
    else:
        reason = f" ({data['reason']})" if data["reason"] else ""
        click.echo(f"{data['id']}  {data['status']}{reason}")


@click.command()
@click.argument("certificate")
@as_option
@click.option(
    "--reason",
    type=click.Choice(list(REVOCATION_REASONS)),
    default="unspecified",
    show_default=True,
    help="RFC 5280 CRLReason.",
)
@keystore_option
@deployment_option
@json_option
def revoke(
    certificate: str,
    org: str,
    reason: str,
    keystore: Path | None,
    deployment_path: Path | None,
    as_json: bool,
) -> None:
    """Revoke a certificate your organization submitted (FILE or ID)."""
    deployment = load_deployment(deployment_path)
    registry, cid = _act(
        deployment, org, keystore, Registry.revoke, certificate, REVOCATION_REASONS[reason]
    )
    _after(registry, cid, as_json)


def _status_change(
    name: str, act: Callable[[Registry, LocalAccount, bytes], PendingTx], doc: str
) -> click.Command:
    """Build ``dpki suspend`` / ``dpki resume``: one transaction by the submitting member."""

    @click.command(name=name, help=doc)
    @click.argument("certificate")
    @as_option
    @keystore_option
    @deployment_option
    @json_option
    def command(
        certificate: str,
        org: str,
        keystore: Path | None,
        deployment_path: Path | None,
        as_json: bool,
    ) -> None:
        deployment = load_deployment(deployment_path)
        registry, cid = _act(deployment, org, keystore, act, certificate)
        _after(registry, cid, as_json)

    return command


suspend = _status_change(
    "suspend",
    Registry.suspend,
    "Suspend an active certificate your organization submitted (X.1409 A.1).",
)
resume = _status_change(
    "resume", Registry.resume, "Resume a suspended certificate your organization submitted."
)


@click.command()
@click.argument("old")
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@as_option
@click.option("--skip-check", is_flag=True, help="Submit without the local policy check.")
@keystore_option
@deployment_option
@json_option
def renew(
    old: str,
    new: Path,
    org: str,
    skip_check: bool,
    keystore: Path | None,
    deployment_path: Path | None,
    as_json: bool,
) -> None:
    """Submit NEW as the renewal of OLD; OLD is superseded when NEW activates."""
    deployment = load_deployment(deployment_path)
    member = deployment.member(org)
    old_id, _ = resolve_cert_id(old)
    found = load_facts(new)
    if len(found) != 1:
        raise ParseError(f"{new} holds {len(found)} certificates; want exactly one")
    f = found[0]
    registry = deployment.registry_client(org)
    if not skip_check:
        ledger = LedgerIssuers(registry, deployment.deploy_block)
        ledger.refresh()
        verdict = evaluate(
            f, organization=member.organization, at=datetime.now(UTC), issuers=ledger
        )
        if not verdict.ok:
            click.echo(f"refused: {', '.join(verdict.codes)}", err=True)
            for v in verdict.violations:
                click.echo(f"  {v.code}: {v.message}", err=True)
            raise SystemExit(1)
    account = deployment.signer(org, keystore)
    registry.renew(account, old_id, submission_for(f)).wait()
    _after(registry, bytes.fromhex(f.id), as_json)


COMMANDS: list[click.Command] = [submit, status, revoke, suspend, resume, renew]

"""``dpki check``: run certificates through the policy before submitting them.

Exit codes: 0 every certificate passes, 1 at least one violates the policy, 2 an input
could not be read or parsed (even if others passed) or the options were wrong.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from dpki.chain.deployment import default_path
from dpki.chain.registry import Registry
from dpki.errors import ParseError
from dpki.pki.issuers import chain_lookups
from dpki.pki.policy import IssuerLookup, StaticIssuers, evaluate
from dpki.pki.x509 import CertificateFacts, load_certificates, load_facts

__all__ = ["check", "compromised_key_violations", "parse_at"]

_PROGRESS_FROM = 50  # show a progress bar on a terminal from this many files


def _ledger_lookup() -> tuple[IssuerLookup | None, Registry | None, str | None]:
    """Return the ledger's issuer look-up when a deployment file exists and the chain answers.

    The look-up lists ``IssuerCandidate(certificate, active=<ledger status is active>)`` for
    the certificates on the ledger whose subject is the checked certificate's issuer. The
    ledger's list of compromised keys is consulted too (KEY_COMPROMISED).
    """
    from dpki.chain.deployment import Deployment
    from dpki.errors import ChainError, ConfigError
    from dpki.pki.issuers import LedgerIssuers

    if not default_path().exists():
        return (
            None,
            None,
            (
                f"the ledger was not consulted for issuers (no deployment file at "
                f"{default_path()}: run where it is, set $DPKI_DEPLOYMENT, or pass --issuer FILE)"
            ),
        )
    try:
        deployment = Deployment.load()
        registry = deployment.registry_client()
        issuers = LedgerIssuers(registry, deployment.deploy_block)
        issuers.refresh()
    except (ConfigError, ChainError) as exc:
        return None, None, f"the ledger was not consulted for issuers ({exc})"
    return issuers, registry, None


def parse_at(value: str | None) -> datetime:
    """Parse ``--at`` (ISO 8601; no offset means UTC) or return now, as aware UTC."""
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"got {value!r}; want an ISO 8601 time such as 2025-06-01T12:00:00Z",
            param_hint="--at",
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--org", "organization", default=None, help="Submitter organization (checks O).")
@click.option(
    "--issuer",
    "issuer_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Issuer certificate file (PEM or DER), trusted as given; repeatable.",
)
@click.option("--at", "at_text", default=None, help="Check at this ISO 8601 time (default now).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def check(
    files: tuple[Path, ...],
    organization: str | None,
    issuer_files: tuple[Path, ...],
    at_text: str | None,
    as_json: bool,
) -> None:
    """Check certificate FILEs (PEM, several per file, or DER) against the policy."""
    at = parse_at(at_text)
    with warnings.catch_warnings():
        # cryptography warns about legacy encodings it still accepts; the verdict is the
        # report, so keep stderr for real errors
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        lookup, registry, note = _issuer_lookup(issuer_files)
        entries = _check_files(
            files, organization=organization, at=at, lookup=lookup, registry=registry
        )

    if as_json:
        body: dict[str, Any] = {"certificates": entries, "ledger_consulted": note is None}
        click.echo(json.dumps(body, indent=2))
    else:
        _print_text(entries)
    unknown_issuer = any(
        v["code"] == "UNKNOWN_ISSUER" for e in entries for v in e.get("violations", [])
    )
    if note and (unknown_issuer or default_path().exists()):
        click.echo(f"dpki: note: {note}", err=True)
    if any("error" in e for e in entries):
        sys.exit(2)
    if not all(e["ok"] for e in entries):
        sys.exit(1)


def _issuer_lookup(
    issuer_files: Sequence[Path],
) -> tuple[IssuerLookup | None, Registry | None, str | None]:
    """Combine the ``--issuer`` files with the ledger look-up, if there is one; return it,
    the ledger's registry (None when no ledger answers) and why the ledger was not consulted
    (None: it was)."""
    static: StaticIssuers | None = None
    if issuer_files:
        certs: list[x509.Certificate] = []
        for path in issuer_files:
            try:
                certs.extend(load_certificates(path))
            except ParseError as exc:
                raise click.BadParameter(str(exc), param_hint="--issuer") from None
        static = StaticIssuers(certs)
    ledger, registry, note = _ledger_lookup()
    return chain_lookups(static, ledger), registry, note


def _check_files(
    files: Sequence[Path],
    *,
    organization: str | None,
    at: datetime,
    lookup: IssuerLookup | None,
    registry: Registry | None = None,
) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    if len(files) >= _PROGRESS_FROM and sys.stderr.isatty():
        with click.progressbar(files, label="checking", file=sys.stderr) as bar:
            for path in bar:
                entries.extend(_check_file(path, organization, at, lookup, registry))
    else:
        for path in files:
            entries.extend(_check_file(path, organization, at, lookup, registry))
    return entries


def _check_file(
    path: Path,
    organization: str | None,
    at: datetime,
    lookup: IssuerLookup | None,
    registry: Registry | None,
) -> list[dict[str, Any]]:
    try:
        verdicts = [
            evaluate(f, organization=organization, at=at, issuers=lookup) for f in load_facts(path)
        ]
    except ParseError as exc:
        return [{"file": str(path), "error": str(exc)}]
    entries = []
    for v in verdicts:
        violations = [{"code": x.code, "message": x.message} for x in v.violations]
        violations.extend(compromised_key_violations(v.facts, registry))
        entries.append(
            {"file": str(path), "id": v.facts.id, "ok": not violations, "violations": violations}
        )
    return entries


def compromised_key_violations(
    f: CertificateFacts, registry: Registry | None
) -> list[dict[str, str]]:
    """Return KEY_COMPROMISED when the ledger lists ``f``'s public key as compromised."""
    if registry is None:
        return []
    revoked = registry.compromised_key(f.spki_sha256)
    if revoked is None:
        return []
    return [
        {
            "code": "KEY_COMPROMISED",
            "message": f"got a public key that certificate 0x{revoked.hex()} had when it was "
            "revoked for keyCompromise; want a new key",
        }
    ]


def _print_text(entries: list[dict[str, Any]]) -> None:
    passed = failed = unreadable = 0
    for entry in entries:
        if "error" in entry:
            unreadable += 1
            click.echo(f"ERROR {entry['error']}")
            continue
        label = f"{entry['file']} {entry['id'][:16]}"
        if entry["ok"]:
            passed += 1
            click.echo(f"ok    {label}")
            continue
        failed += 1
        codes = ", ".join(v["code"] for v in entry["violations"])
        click.echo(f"FAIL  {label} {codes}")
        for violation in entry["violations"]:
            click.echo(f"      {violation['code']}: {violation['message']}")
    click.echo(
        f"{passed + failed} certificate(s): {passed} ok, {failed} with violations"
        + (f"; {unreadable} unreadable input(s)" if unreadable else "")
    )

"""The deployment file (``.dpki/deployment.json``): where the registry is and who the members are.

Keys::

    rpc_url, chain_id, registry, deploy_block, network ("devnet" or "custom"),
    engine? ("anvil", "geth-clique", "besu-qbft"; absent: asked from the node),
    members: [{organization, address, roles: ["validator", "submitter"],
               dev_key_index?, keystore?, rpc_url?}],
    devnet: {pid, port, log}            (anvil devnet)
            {engine: "geth-clique", root, nodes: [...], ...}   (geth devnet)

A member's ``rpc_url`` is its own node: commands acting for that member talk to it. The
top-level ``rpc_url`` is for everything else.

On the devnet a member's key is anvil's published test key ``dev_key_index``; elsewhere a
member acts through an encrypted keystore (``keystore`` here, or ``--keystore``). The file never
holds a private key.
"""

from __future__ import annotations

import json
import os
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from dpki.chain.keys import dev_account, load_keystore
from dpki.chain.registry import ROLE_SUBMITTER, ROLE_VALIDATOR, Registry, connect
from dpki.errors import ConfigError

__all__ = [
    "DEFAULT_PATH",
    "Deployment",
    "DeploymentMember",
    "default_path",
    "roles_from_names",
    "roles_to_names",
    "validator_account_name",
]

DEFAULT_PATH = Path(".dpki") / "deployment.json"
PATH_ENV = "DPKI_DEPLOYMENT"


def default_path() -> Path:
    """Return the deployment file path: ``$DPKI_DEPLOYMENT`` or ``.dpki/deployment.json``."""
    return Path(os.environ.get(PATH_ENV) or DEFAULT_PATH)


def validator_account_name(organization: str) -> str:
    """Return the member name under which ``organization`` validates with a key of its own.

    A member that gives each role its own key holds them as two consortium accounts: its
    organization with the SUBMITTER role (the organization rule reads this name) and this
    one with the VALIDATOR role. Its votes do not double: the submitting account has none.
    """
    return f"{organization} validator"


def roles_to_names(roles: int) -> list[str]:
    """Return role names for a role bit set."""
    names = []
    if roles & ROLE_VALIDATOR:
        names.append("validator")
    if roles & ROLE_SUBMITTER:
        names.append("submitter")
    return names


def roles_from_names(names: list[str]) -> int:
    """Return the role bit set for role names."""
    bits = {"validator": ROLE_VALIDATOR, "submitter": ROLE_SUBMITTER}
    roles = 0
    for name in names:
        if name not in bits:
            raise ConfigError(f"unknown role {name!r}: wanted validator or submitter")
        roles |= bits[name]
    return roles


def _same_org(a: str, b: str) -> bool:
    def norm(s: str) -> str:
        return unicodedata.normalize("NFC", s).strip()

    return norm(a) == norm(b)


@dataclass
class DeploymentMember:
    """A member as the deployment file lists it."""

    organization: str
    address: str
    roles: list[str]
    dev_key_index: int | None = None
    keystore: str | None = None
    rpc_url: str | None = None


@dataclass
class Deployment:
    """A registry deployment and how to act for its members."""

    rpc_url: str
    chain_id: int
    registry: str
    deploy_block: int
    members: list[DeploymentMember]
    network: str = "custom"
    devnet: dict[str, Any] | None = None
    engine: str | None = None
    path: Path | None = field(default=None, compare=False)

    # ------------------------------------------------------------------ files

    @classmethod
    def load(cls, path: Path | None = None) -> Deployment:
        """Read a deployment file; a clear ConfigError when it is missing or damaged."""
        file = path or default_path()
        try:
            data = json.loads(file.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"no deployment file at {file}: start a devnet with `dpki devnet up` or "
                "deploy with `dpki deploy`, or pass --deployment"
            ) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{file} is not a readable deployment file: {exc}") from None
        try:
            members = [DeploymentMember(**m) for m in data.get("members", [])]
            return cls(
                rpc_url=data["rpc_url"],
                chain_id=int(data["chain_id"]),
                registry=data["registry"],
                deploy_block=int(data["deploy_block"]),
                members=members,
                network=data.get("network", "custom"),
                devnet=data.get("devnet"),
                engine=data.get("engine"),
                path=file,
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{file} lacks a field of a deployment file: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        """Return the file's JSON object."""
        data = asdict(self)
        data.pop("path")
        for key in ("devnet", "engine"):
            if data[key] is None:
                data.pop(key)
        for m in data["members"]:
            for key in ("dev_key_index", "keystore", "rpc_url"):
                if m[key] is None:
                    m.pop(key)
        return data

    def save(self, path: Path | None = None) -> Path:
        """Write the deployment file (atomically)."""
        file = path or self.path or default_path()
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(file)
        self.path = file
        return file

    # ------------------------------------------------------------------ acting

    def registry_client(self, organization: str | None = None) -> Registry:
        """Return a registry client on this deployment's chain: through ``organization``'s
        own node when the file names one for it, else through ``rpc_url``."""
        return Registry(connect(self.node_url(organization)), self.registry)

    def node_url(self, organization: str | None = None) -> str:
        """Return the JSON-RPC URL of ``organization``'s own node (default: ``rpc_url``)."""
        if organization is not None:
            url = self.member(organization).rpc_url
            if url:
                return url
        return self.rpc_url

    def member(self, organization: str) -> DeploymentMember:
        """Return the member whose organization is ``organization``."""
        for m in self.members:
            if _same_org(m.organization, organization):
                return m
        known = ", ".join(repr(m.organization) for m in self.members) or "none"
        raise ConfigError(f"no member {organization!r} in {self.path}; members: {known}")

    def sync_members(self, registry: Registry) -> bool:
        """Refresh the member list from the ledger (after governance); return True if changed.

        Known keystores and dev keys are kept; on the devnet a new member whose address is one
        of anvil's dev accounts gets its dev key index.
        """
        known = {m.address.lower(): m for m in self.members}
        dev_index: dict[str, int] = {}
        if self.network == "devnet":
            dev_index = {dev_account(i).address.lower(): i for i in range(20)}
        fresh = []
        for m in registry.members():
            old = known.get(m.address.lower())
            fresh.append(
                DeploymentMember(
                    organization=m.organization,
                    address=m.address,
                    roles=roles_to_names(m.roles),
                    dev_key_index=old.dev_key_index if old else dev_index.get(m.address.lower()),
                    keystore=old.keystore if old else None,
                    rpc_url=old.rpc_url if old else None,
                )
            )
        if fresh == self.members:
            return False
        self.members = fresh
        if self.path is not None:
            self.save()
        return True

    def signer(self, organization: str, keystore: str | Path | None = None) -> LocalAccount:
        """Return the key that acts for ``organization``: a keystore, or the devnet dev key."""
        member = self.member(organization)
        source = keystore or member.keystore
        if source is not None:
            account = load_keystore(source)
        elif member.dev_key_index is not None and self.network == "devnet":
            account = dev_account(member.dev_key_index)
        else:
            raise ConfigError(
                f"no key for {organization!r}: pass --keystore FILE (an encrypted V3 keystore)"
            )
        if account.address.lower() != member.address.lower():
            raise ConfigError(
                f"the key for {organization!r} is {account.address}, but the member's address "
                f"is {member.address}"
            )
        return account

"""The ledger issuer index (issue 10, item 9): only activated CAs vouch, key identifiers are
matched in memory, and look-alikes cost no RPC when a validator decides a leaf."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from decoys import CountingRegistry, active_ca, put_decoys, submit_leaf
from eth_account.signers.local import LocalAccount

from dpki.chain.registry import Registry
from dpki.dev.devices import make_ca
from dpki.pki.issuers import MAX_CANDIDATES, LedgerIssuers
from dpki.pki.policy import evaluate
from dpki.pki.x509 import parse_certificate
from dpki.submission import submission_for
from dpki.validator import Validator

VENDOR = "Vendor A"
NOW = dt.datetime.now(dt.UTC)


def _validator(
    registry: Registry, account: LocalAccount, deploy_block: int, tmp: Path
) -> Validator:
    counting = CountingRegistry(registry.w3, registry.address)
    return Validator(counting, account, deploy_block=deploy_block, state_path=tmp / "v.json")


def _rpcs(validator: Validator) -> int:
    registry = validator.registry
    assert isinstance(registry, CountingRegistry)
    return registry.requests


def test_two_hundred_decoys_cost_a_leaf_decision_no_rpc(
    registry: Registry, accounts: list[LocalAccount], deploy_block: int, tmp_path: Path
) -> None:
    ca = active_ca(registry, accounts)
    node = _validator(registry, accounts[2], deploy_block, tmp_path)
    before = submit_leaf(registry, accounts[0], ca, "plain")
    node.issuers.refresh(registry.block_number())
    node._organization(before.args["submitter"])  # the submitter's organization, cached
    start = _rpcs(node)
    assert node.decide(before, NOW).endorse
    without_decoys = _rpcs(node) - start

    put_decoys(registry, accounts, ca, 200)
    after = submit_leaf(registry, accounts[0], ca, "among-decoys")
    start = _rpcs(node)
    node.issuers.refresh(registry.block_number())
    refresh = _rpcs(node) - start
    start = _rpcs(node)
    decision = node.decide(after, NOW)
    with_decoys = _rpcs(node) - start

    assert decision.endorse, decision.codes
    assert with_decoys == without_decoys == 0
    assert refresh <= 3  # head, one eth_getLogs for the range, at most one batched read


def test_only_activated_cas_vouch(
    registry: Registry, accounts: list[LocalAccount], deploy_block: int
) -> None:
    ca = active_ca(registry, accounts)
    put_decoys(registry, accounts, ca, 2 * MAX_CANDIDATES + 2)
    index = LedgerIssuers(registry, deploy_block)
    index.refresh()
    leaf = parse_certificate(submit_leaf(registry, accounts[0], ca, "x").args["der"])
    candidates = index(leaf.certificate)
    # decoys carrying the CA's key identifier are pending or rejected: none is offered
    assert [c.certificate for c in candidates] == [ca.certificate]
    assert evaluate(leaf, organization=VENDOR, at=NOW, issuers=index).ok

    pending = make_ca(VENDOR, "Pending CA")
    registry.submit(accounts[0], submission_for(parse_certificate(pending.der))).wait()
    orphan = parse_certificate(submit_leaf(registry, accounts[0], pending, "y").args["der"])
    index.refresh()
    assert evaluate(orphan, organization=VENDOR, at=NOW, issuers=index).codes == ("UNKNOWN_ISSUER",)

    ca_id = parse_certificate(ca.der).id
    registry.revoke(accounts[0], ca_id, 2).wait()  # cACompromise
    index.refresh()
    assert evaluate(leaf, organization=VENDOR, at=NOW, issuers=index).codes == (
        "ISSUER_NOT_ACTIVE",
    )

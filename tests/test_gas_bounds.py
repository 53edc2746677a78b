"""The computed gas bounds of the batch calls against real transactions (anvil, Paris EVM).

A bound too low would make batches run out of gas (caught, but wasted); one far too high
would reserve block gas for nothing. Each case sends the batch with its bound and checks
the gas it really used lies within it and not absurdly below.
"""

from __future__ import annotations

import os

import pytest
from conftest import fake_submission
from eth_account.signers.local import LocalAccount

from dpki.chain.gas import endorse_batch_gas, submit_batch_gas
from dpki.chain.registry import Registry, Status, Submission
from dpki.dev.devices import make_device
from dpki.pki.x509 import facts
from dpki.submission import submission_for


def _devices(count: int, tag: str) -> list[Submission]:
    out = []
    for i in range(count):
        d = make_device("Vendor A", f"{tag}{i:06d}")
        out.append(submission_for(facts(d.certificate, der=d.der)))
    return out


def _within(used: int, bound: int, *, tight: bool = True) -> None:
    assert used <= bound, f"bound {bound:,} below the {used:,} gas really used"
    if tight:  # the bound is for fresh slots: cheaper paths (slots written before) lie below
        assert bound <= used * 1.35 + 60_000, f"bound {bound:,} far above the {used:,} used"


@pytest.mark.parametrize("count", [1, 10, 100])
def test_submit_and_endorse_bounds_hold_for_device_certificates(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount, count: int
) -> None:
    subs = _devices(count, f"GB{count}-")
    gas = submit_batch_gas(subs)
    receipt = registry.submit_batch(a, subs, gas=gas).wait()
    _within(receipt.gas_used, gas)
    ids = [s.cert_id for s in subs]
    first = endorse_batch_gas(count)
    _within(registry.endorse_batch(b, ids, gas=first).wait().gas_used, first)
    activating = registry.endorse_batch(c, ids, gas=first).wait()  # the threshold: Active
    _within(activating.gas_used, first)
    assert {r.status for r in registry.statuses(ids)} == {Status.ACTIVE}


@pytest.mark.parametrize("size", [64, 1500, 4000])
def test_submit_bound_follows_the_der_size(registry: Registry, a: LocalAccount, size: int) -> None:
    subs = [fake_submission(os.urandom(16), size=size) for _ in range(10)]
    gas = submit_batch_gas(subs)
    _within(registry.submit_batch(a, subs, gas=gas).wait().gas_used, gas)


def test_submit_bound_holds_for_keys_seen_before_and_ids_registered_again(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    """The dearer paths: a key that already points at a certificate, an id rejected before
    and registered again."""
    first = [fake_submission(os.urandom(16)) for _ in range(10)]
    registry.submit_batch(a, first).wait()
    codes = [16] * len(first)
    registry.reject_batch(b, [s.cert_id for s in first], codes).wait()
    registry.reject_batch(c, [s.cert_id for s in first], codes).wait()
    assert {r.status for r in registry.statuses([s.cert_id for s in first])} == {Status.REJECTED}
    same_key = [
        Submission(s.der + b"\x01", s.not_before, s.not_after, s.key_hash, s.org_hash)
        for s in first
    ]
    again = first + same_key
    gas = submit_batch_gas(again)
    _within(registry.submit_batch(a, again, gas=gas).wait().gas_used, gas, tight=False)


def test_endorse_bound_holds_for_renewals_it_activates(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    old = _devices(5, "GBOLD")
    registry.submit_batch(a, old).wait()
    for v in (b, c):
        registry.endorse_batch(v, [s.cert_id for s in old]).wait()
    new = _devices(5, "GBNEW")
    for o, n in zip(old, new, strict=True):
        registry.renew(a, o.cert_id, n).wait()
    ids = [s.cert_id for s in new]
    registry.endorse_batch(b, ids).wait()
    gas = endorse_batch_gas(len(ids), renewals=len(ids))
    receipt = registry.endorse_batch(c, ids, gas=gas).wait()  # activates and supersedes
    _within(receipt.gas_used, gas)
    assert {r.status for r in registry.statuses([s.cert_id for s in old])} == {Status.SUPERSEDED}

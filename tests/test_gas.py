"""Gas regressions: the figures of bench/gas.py against the committed snapshot."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest
from conftest import ROOT

_spec = importlib.util.spec_from_file_location("bench_gas", ROOT / "bench" / "gas.py")
assert _spec and _spec.loader
bench_gas: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_gas)

SNAPSHOT = json.loads((ROOT / "bench" / "gas-snapshot.json").read_text())
TOLERANCE = 1.05


@pytest.fixture(scope="module")
def figures(anvil: Any) -> dict[str, int]:
    """Measure once per module on the session chain (inside a snapshot)."""
    from conftest import rpc

    snapshot = rpc(anvil.rpc_url, "evm_snapshot")
    try:
        result: dict[str, int] = bench_gas.measure(anvil.rpc_url)
    finally:
        rpc(anvil.rpc_url, "evm_revert", snapshot)
    return result


@pytest.mark.parametrize("name", sorted(k for k in SNAPSHOT if k != "der_bytes"))
def test_no_regression_over_five_percent(figures: dict[str, int], name: str) -> None:
    assert figures[name] <= SNAPSHOT[name] * TOLERANCE, (
        f"{name}: {figures[name]:,} gas vs snapshot {SNAPSHOT[name]:,}; if intended, run "
        "`python bench/gas.py --update-snapshot` and commit"
    )


@pytest.mark.parametrize(
    ("name", "limit"),
    [
        ("submit_plus_2_endorsements", 170_000),
        ("submit_per_cert_batch100", 85_000),
        ("endorse_per_cert_batch100", 10_000),
    ],
)
def test_issue_targets(figures: dict[str, int], name: str, limit: int) -> None:
    assert figures[name] <= limit

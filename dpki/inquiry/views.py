"""JSON shapes of index rows, shared by the API and the web page."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any

from dpki.pki.codes import Status, reason_label

__all__ = ["certificate_json", "iso", "pem", "summary_json"]


def iso(ts: int | None) -> str | None:
    """Return unix seconds as an ISO 8601 UTC string."""
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):  # a submitter may declare any uint40
        return f"unix:{ts}"


def pem(der: bytes) -> str:
    """Return a certificate's PEM text."""
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def _valid(row: dict[str, Any], now: int) -> bool:
    return bool(row["status"] == Status.ACTIVE and row["not_before"] <= now <= row["not_after"])


def summary_json(
    row: dict[str, Any], members: dict[str, str], now: int | None = None
) -> dict[str, Any]:
    """Return the list view of a certificate row."""
    now = int(time.time()) if now is None else now
    return {
        "id": row["id"],
        "status": Status(row["status"]).label,
        "valid": _valid(row, now),
        "expired": now > row["not_after"],
        "reason": reason_label(row["status"], row["reason"]),
        "subject": row["subject"],
        "organization": row["organization"],
        "common_name": row["common_name"],
        "serial": row["serial"],
        "key_hash": row["key_hash"],
        "submitter": row["submitter"],
        "submitter_organization": members.get(row["submitter"]),
        "not_before": iso(row["not_before"]),
        "not_after": iso(row["not_after"]),
        "updated_at": iso(row["updated_at"]),
        "updated_block": row["updated_block"],
        "endorsements": row["endorsements"],
        "rejections": row["rejections"],
    }


def certificate_json(
    row: dict[str, Any],
    votes: list[dict[str, Any]],
    history: list[dict[str, Any]],
    members: dict[str, str],
) -> dict[str, Any]:
    """Return the full record of a certificate: summary, votes, history and PEM."""
    out = summary_json(row, members)
    out.update(
        issuer=row["issuer"],
        self_issued=row["self_issued"],
        parse_error=row["parse_error"],
        replaces=row["replaces"],
        replaced_by=row["replaced_by"],
        submitted_block=row["submitted_block"],
        submitted_at=iso(row["submitted_at"]),
        endorsers=[
            {
                "address": v["validator"],
                "organization": members.get(v["validator"]),
                "block": v["block_number"],
                "at": iso(v["timestamp"]),
            }
            for v in votes
            if v["kind"] == "endorsed"
        ],
        rejecters=[
            {
                "address": v["validator"],
                "organization": members.get(v["validator"]),
                "reason": reason_label(Status.REJECTED, v["reason_code"] or 0),
                "block": v["block_number"],
            }
            for v in votes
            if v["kind"] == "rejected"
        ],
        history=[
            {
                "event": h["event"],
                "status": Status(h["status"]).label,
                "previous": Status(h["previous"]).label,
                "reason": reason_label(h["status"], h["reason"]),
                "actor": h["actor"],
                "actor_organization": members.get(h["actor"]),
                "block": h["block_number"],
                "block_hash": "0x" + h["block_hash"],
                "log_index": h["log_index"],
                "tx_hash": "0x" + h["tx_hash"],
                "at": iso(h["timestamp"]),
            }
            for h in history
        ],
        pem=pem(row["der"]),
    )
    return out

"""The inquiry index's schema: its tables, their creation and the schema version check.

Tables: ``meta`` (checkpoint, registry address, revision counter), ``blocks`` (number, hash and
time of every block the index holds rows from), ``events`` (every registry event, the DER left
out), ``members``, ``certificates`` (the DER, parsed names, the hashes OCSP clients look
certificates up by, and the current status), ``votes`` (endorsements and rejections) and
``history`` (every status change with its block number, hash and log index).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dpki.errors import DpkiError

__all__ = [
    "DEFAULT_URL",
    "SCHEMA_VERSION",
    "UNAVAILABLE",
    "BlockRef",
    "StoreError",
    "blocks_table",
    "certificates_table",
    "create_schema",
    "events_table",
    "history_table",
    "members_table",
    "meta_table",
    "sqlite_pragmas",
    "votes_table",
]

DEFAULT_URL = "sqlite:///.dpki/index.sqlite"
#: what SQLAlchemy raises while the database cannot be reached (retry, or answer 503)
UNAVAILABLE: tuple[type[sa.exc.DBAPIError], ...] = (sa.exc.OperationalError, sa.exc.InterfaceError)
SCHEMA_VERSION = 1


class StoreError(DpkiError):
    """The index database cannot be opened or does not belong to this registry."""


@dataclass(frozen=True)
class BlockRef:
    """A block the index has seen: number, hash (hex) and time."""

    number: int
    hash: str
    timestamp: int


_meta = sa.MetaData()

meta_table = sa.Table(
    "meta",
    _meta,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
blocks_table = sa.Table(
    "blocks",
    _meta,
    sa.Column("number", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
)
events_table = sa.Table(
    "events",
    _meta,
    sa.Column("block_number", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("log_index", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("block_hash", sa.String(64), nullable=False),
    sa.Column("tx_hash", sa.String(64), nullable=False),
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column("cert_id", sa.String(64), nullable=True, index=True),
    sa.Column("args", sa.Text, nullable=False),
)
members_table = sa.Table(
    "members",
    _meta,
    sa.Column("address", sa.String(42), primary_key=True),
    sa.Column("organization", sa.Text, nullable=False),
    sa.Column("roles", sa.Integer, nullable=False),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("since_block", sa.BigInteger, nullable=False),
)
certificates_table = sa.Table(
    "certificates",
    _meta,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("der", sa.LargeBinary, nullable=False),
    sa.Column("subject", sa.Text, nullable=True, index=True),
    sa.Column("organization", sa.Text, nullable=True, index=True),
    sa.Column("common_name", sa.Text, nullable=True),
    sa.Column("issuer", sa.Text, nullable=True),
    sa.Column("serial", sa.String(80), nullable=True),
    sa.Column("parse_error", sa.Text, nullable=True),
    sa.Column("self_issued", sa.Boolean, nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, index=True),
    sa.Column("org_hash", sa.String(64), nullable=False),
    sa.Column("submitter", sa.String(42), nullable=False),
    sa.Column("not_before", sa.BigInteger, nullable=False),
    sa.Column("not_after", sa.BigInteger, nullable=False),
    sa.Column("replaces", sa.String(64), nullable=True),
    sa.Column("replaced_by", sa.String(64), nullable=True),
    sa.Column("status", sa.SmallInteger, nullable=False, index=True),
    sa.Column("reason", sa.SmallInteger, nullable=False),
    sa.Column("endorsements", sa.Integer, nullable=False),
    sa.Column("rejections", sa.Integer, nullable=False),
    sa.Column("submitted_block", sa.BigInteger, nullable=False),
    sa.Column("submitted_at", sa.BigInteger, nullable=False),
    sa.Column("updated_block", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("subject_name_sha1", sa.String(40), nullable=True),
    sa.Column("key_sha1", sa.String(40), nullable=True),
    sa.Column("key_sha256", sa.String(64), nullable=True),
    sa.Column("issuer_name_sha1", sa.String(40), nullable=True),
    sa.Column("issuer_name_sha256", sa.String(64), nullable=True),
    sa.Column("issuer_key_sha1", sa.String(40), nullable=True),
    sa.Column("issuer_key_sha256", sa.String(64), nullable=True),
    sa.Column("revision", sa.BigInteger, nullable=False, index=True),
    sa.Index("ix_certificates_ocsp_sha1", "issuer_name_sha1", "serial"),
    sa.Index("ix_certificates_ocsp_sha256", "issuer_name_sha256", "serial"),
)
votes_table = sa.Table(
    "votes",
    _meta,
    sa.Column("block_number", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("log_index", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("cert_id", sa.String(64), nullable=False, index=True),
    sa.Column("validator", sa.String(42), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("reason_code", sa.SmallInteger, nullable=True),
    sa.Column("tx_hash", sa.String(64), nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
)
history_table = sa.Table(
    "history",
    _meta,
    sa.Column("block_number", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("log_index", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("block_hash", sa.String(64), nullable=False),
    sa.Column("tx_hash", sa.String(64), nullable=False),
    sa.Column("cert_id", sa.String(64), nullable=False, index=True),
    sa.Column("event", sa.String(40), nullable=False),
    sa.Column("actor", sa.String(42), nullable=False),
    sa.Column("previous", sa.SmallInteger, nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("reason", sa.SmallInteger, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
)


def create_schema(engine: sa.Engine, safe_url: str) -> None:
    """Create missing tables; refuse an index written by a newer schema."""
    try:
        _meta.create_all(engine)
        with engine.begin() as db:
            version = db.scalar(sa.select(meta_table.c.value).where(meta_table.c.key == "schema"))
            if version is None:
                db.execute(meta_table.insert().values(key="schema", value=str(SCHEMA_VERSION)))
            elif int(version) > SCHEMA_VERSION:
                raise StoreError(
                    f"the index at {safe_url} has schema {version}; this dpki knows "
                    f"{SCHEMA_VERSION}: upgrade dpki"
                )
    except sa.exc.OperationalError as exc:
        raise StoreError(f"cannot open the index at {safe_url}: {exc.orig}") from None


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Set WAL, NORMAL sync, a busy timeout and a 32 MiB page cache on each SQLite connection
    (a catch-up range writes megabytes; with the default 2 MiB cache its pages spill to the
    WAL before the commit, one by one)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA cache_size=-32768")
    cursor.close()

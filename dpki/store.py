"""The inquiry node's index: a SQL mirror of the registry, rebuilt from its events alone.

SQLite by default (``sqlite:///.dpki/index.sqlite``), PostgreSQL by URL
(``postgresql+psycopg://user@host/db``). The schema is created or migrated on open.

Tables: ``meta`` (checkpoint, registry address, revision counter), ``blocks`` (number, hash and
time of every block the index holds rows from), ``events`` (every registry event, the DER left
out), ``members``, ``certificates`` (the DER, parsed names, the hashes OCSP clients look
certificates up by, and the current status), ``votes`` (endorsements and rejections) and
``history`` (every status change with its block number, hash and log index).

All writes for one block range go through :meth:`Store.commit_range` in one transaction
together with the checkpoint, so a crash leaves either all of a range or none of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dpki.errors import ConfigError, DpkiError
from dpki.registry import Event, Status
from dpki.x509 import dn

__all__ = [
    "DEFAULT_URL",
    "KEEP_BLOCKS",
    "SCHEMA_VERSION",
    "UNAVAILABLE",
    "BlockRef",
    "CertRow",
    "Store",
    "StoreError",
    "cert_fields",
    "ocsp_hashes",
]

DEFAULT_URL = "sqlite:///.dpki/index.sqlite"
#: what SQLAlchemy raises while the database cannot be reached (retry, or answer 503)
UNAVAILABLE: tuple[type[sa.exc.DBAPIError], ...] = (sa.exc.OperationalError, sa.exc.InterfaceError)
#: recent blocks whose hashes the index keeps, events or not: the deepest reorganization it
#: can follow without reading everything again
KEEP_BLOCKS = 256
SCHEMA_VERSION = 1

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

_CERT_EVENTS = frozenset(
    {
        "CertificateSubmitted",
        "CertificateEndorsed",
        "CertificateRejected",
        "CertificateStatusChanged",
    }
)
_MEMBER_EVENTS = frozenset({"MemberAdded", "MemberRemoved", "RolesChanged", "ThresholdChanged"})
#: the columns a status change rewrites
_MUTABLE = (
    # a Rejected id registered again (contract 2.0) changes its submission fields too
    "submitter",
    "key_hash",
    "org_hash",
    "not_before",
    "not_after",
    "replaces",
    "submitted_block",
    "submitted_at",
    "status",
    "reason",
    "endorsements",
    "rejections",
    "replaced_by",
    "updated_block",
    "updated_at",
    "revision",
)


class StoreError(DpkiError):
    """The index database cannot be opened or does not belong to this registry."""


@dataclass(frozen=True)
class BlockRef:
    """A block the index has seen: number, hash (hex) and time."""

    number: int
    hash: str
    timestamp: int


@dataclass
class CertRow:
    """A certificate row as a dict of column values (mutated while events apply)."""

    values: dict[str, Any]
    new: bool = False
    dirty: bool = False


@dataclass
class _Batch:
    """What one block range adds to the index."""

    events: list[dict[str, Any]] = field(default_factory=list)
    votes: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    #: (transaction, replaced id) -> the renewal that activated in that transaction
    activated: dict[tuple[bytes, str], str] = field(default_factory=dict)


def _hex(value: bytes | bytearray) -> str:
    return bytes(value).hex()


def _spki_key_bits(spki: bytes) -> bytes:
    """Return the subjectPublicKey BIT STRING contents (no unused-bits octet) of an SPKI."""
    pos = _content(spki, 0)[0]
    pos = _content(spki, pos)[1]  # skip AlgorithmIdentifier
    start, end = _content(spki, pos)
    return spki[start + 1 : end]


def _content(buf: bytes, pos: int) -> tuple[int, int]:
    length = buf[pos + 1]
    start = pos + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(buf[start : start + count], "big")
        start += count
    return start, start + length


def ocsp_hashes(certificate: x509.Certificate) -> dict[str, str | None]:
    """Return the name and key hashes OCSP CertIDs carry (sha1 and sha256, hex).

    ``subject_name_*`` and ``key_*`` describe the certificate as an issuer;
    ``issuer_name_*`` describe its issuer's name.
    """
    subject = certificate.subject.public_bytes()
    issuer = certificate.issuer.public_bytes()
    try:
        spki = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        bits: bytes | None = _spki_key_bits(spki)
    except Exception:  # an algorithm cryptography cannot load: no key hash
        bits = None
    return {
        "subject_name_sha1": hashlib.sha1(subject).hexdigest(),
        "key_sha1": hashlib.sha1(bits).hexdigest() if bits is not None else None,
        "key_sha256": hashlib.sha256(bits).hexdigest() if bits is not None else None,
        "issuer_name_sha1": hashlib.sha1(issuer).hexdigest(),
        "issuer_name_sha256": hashlib.sha256(issuer).hexdigest(),
    }


def cert_fields(der: bytes) -> dict[str, Any]:
    """Return the parsed columns of a certificate row (``parse_error`` when it does not parse)."""
    empty: dict[str, Any] = {
        "subject": None,
        "organization": None,
        "common_name": None,
        "issuer": None,
        "serial": None,
        "parse_error": None,
        "self_issued": False,
        "subject_name_sha1": None,
        "key_sha1": None,
        "key_sha256": None,
        "issuer_name_sha1": None,
        "issuer_name_sha256": None,
        "issuer_key_sha1": None,
        "issuer_key_sha256": None,
    }
    try:
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject
        orgs = subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
        cns = subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        self_issued = cert.issuer == subject
        out = dict(
            empty,
            subject=dn(subject),
            organization=str(orgs[0].value) if orgs else None,
            common_name=str(cns[0].value) if cns else None,
            issuer=dn(cert.issuer),
            serial=format(cert.serial_number, "x"),
            self_issued=self_issued,
            **ocsp_hashes(cert),
        )
    except Exception as exc:  # the ledger may hold bytes that are no certificate
        return dict(empty, parse_error=f"{type(exc).__name__}: {exc}"[:500])
    if self_issued:
        out["issuer_key_sha1"] = out["key_sha1"]
        out["issuer_key_sha256"] = out["key_sha256"]
    return out


def _jsonable(args: dict[str, Any]) -> str:
    return json.dumps(
        {
            k: ("0x" + bytes(v).hex() if isinstance(v, bytes | bytearray) else v)
            for k, v in args.items()
            if k != "der"
        },
        sort_keys=True,
    )


def _unjson(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in json.loads(text).items():
        if isinstance(v, str) and v.startswith("0x") and len(v) == 66:
            out[k] = bytes.fromhex(v[2:])
        else:
            out[k] = v
    return out


class Store:
    """An index database: open it, write block ranges, query certificates."""

    def __init__(self, url: str = DEFAULT_URL, *, create: bool = True) -> None:
        self.url = url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = sa.create_engine(url, future=True, pool_pre_ping=True)
        except Exception as exc:
            raise ConfigError(f"cannot use database URL {url!r}: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        if create:
            self._migrate()

    # ------------------------------------------------------------------ schema

    def _migrate(self) -> None:
        try:
            _meta.create_all(self.engine)
            with self.engine.begin() as db:
                version = db.scalar(
                    sa.select(meta_table.c.value).where(meta_table.c.key == "schema")
                )
                if version is None:
                    db.execute(meta_table.insert().values(key="schema", value=str(SCHEMA_VERSION)))
                elif int(version) > SCHEMA_VERSION:
                    raise StoreError(
                        f"the index at {self.safe_url} has schema {version}; this dpki knows "
                        f"{SCHEMA_VERSION}: upgrade dpki"
                    )
        except sa.exc.OperationalError as exc:
            raise StoreError(f"cannot open the index at {self.safe_url}: {exc.orig}") from None

    @property
    def safe_url(self) -> str:
        """Return the URL without a password (for messages)."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str, db: sa.Connection | None = None) -> str | None:
        """Return a meta value."""
        query = sa.select(meta_table.c.value).where(meta_table.c.key == key)
        if db is not None:
            return db.scalar(query)
        with self.engine.connect() as conn:
            return conn.scalar(query)

    @staticmethod
    def _set_meta(db: sa.Connection, key: str, value: str) -> None:
        done = db.execute(
            meta_table.update().where(meta_table.c.key == key).values(value=value)
        ).rowcount
        if not done:
            db.execute(meta_table.insert().values(key=key, value=value))

    def bind_registry(self, chain_id: int, address: str, deploy_block: int) -> None:
        """Record which registry this index mirrors; refuse an index of another one."""
        wanted = f"{chain_id}:{address.lower()}"
        with self.engine.begin() as db:
            got = self.get_meta("registry", db)
            if got is None:
                self._set_meta(db, "registry", wanted)
                self._set_meta(db, "deploy_block", str(deploy_block))
            elif got != wanted:
                raise StoreError(
                    f"the index at {self.safe_url} mirrors registry {got}; this deployment is "
                    f"{wanted}: use another --db"
                )

    def checkpoint(self) -> BlockRef | None:
        """Return the last block fully indexed, or None before the first range."""
        with self.engine.connect() as db:
            raw = self.get_meta("checkpoint", db)
        if raw is None:
            return None
        number, hash_, ts = raw.split(":")
        return BlockRef(int(number), hash_, int(ts))

    def generation(self) -> str:
        """Return a string that changes on every commit or rollback (for cache refresh)."""
        with self.engine.connect() as db:
            rows = dict(
                db.execute(
                    sa.select(meta_table.c.key, meta_table.c.value).where(
                        meta_table.c.key.in_(("revision", "reorgs"))
                    )
                ).all()
            )
        return f"{rows.get('revision', '0')}:{rows.get('reorgs', '0')}"

    # ------------------------------------------------------------------ writes

    def commit_range(
        self,
        events: Sequence[Event],
        blocks: dict[int, BlockRef],
        checkpoint: BlockRef,
    ) -> int:
        """Apply ``events`` (all of one block range, in order) and move the checkpoint; return
        how many events were applied. ``blocks`` holds every block the events are in.

        One transaction: either all of it lands or none of it.
        """
        with self.engine.begin() as db:
            revision = int(self.get_meta("revision", db) or 0) + 1
            batch = _Batch()
            cert_ids = {_hex(e.args["certId"]) for e in events if e.name in _CERT_EVENTS}
            rows = self._load_rows(db, cert_ids)
            members_changed = False
            for event in events:
                block = blocks[event.block_number]
                batch.events.append(_event_row(event))
                if event.name in _CERT_EVENTS:
                    _apply_cert_event(rows, event, block.timestamp, revision, batch)
                elif event.name in _MEMBER_EVENTS:
                    members_changed = True
            if batch.events:
                db.execute(events_table.insert(), batch.events)
            fresh = [r for r in rows.values() if r.new]
            self._resolve_issuers(db, fresh)
            self._write_rows(db, rows)
            self._adopt_orphans(db, fresh, revision)
            if batch.votes:
                db.execute(votes_table.insert(), batch.votes)
            if batch.history:
                db.execute(history_table.insert(), batch.history)
            if members_changed:
                self._rebuild_members(db)
            self._save_blocks(db, [*blocks.values(), checkpoint])
            self._prune_blocks(db, checkpoint.number - KEEP_BLOCKS)
            self._set_meta(
                db, "checkpoint", f"{checkpoint.number}:{checkpoint.hash}:{checkpoint.timestamp}"
            )
            if any(r.dirty for r in rows.values()):
                self._set_meta(db, "revision", str(revision))
        return len(events)

    def rollback_to(self, ancestor: BlockRef | None, deploy_block: int) -> int:
        """Forget every row from blocks after ``ancestor`` (None: everything); return how many
        events were dropped. Certificates touched are rebuilt from their surviving events."""
        after = ancestor.number if ancestor else deploy_block - 1
        with self.engine.begin() as db:
            revision = int(self.get_meta("revision", db) or 0) + 1
            gone = db.execute(
                sa.select(events_table.c.cert_id, events_table.c.name).where(
                    events_table.c.block_number > after
                )
            ).all()
            touched = {cid for cid, _ in gone if cid}
            for table in (events_table, votes_table, history_table, blocks_table):
                col = table.c.block_number if "block_number" in table.c else table.c.number
                db.execute(table.delete().where(col > after))
            if touched:
                # rebuild renewals with what they renew (and back): replaced_by is set when
                # the renewal's activation and the predecessor's supersession replay together
                c = certificates_table
                linked = db.execute(
                    sa.select(c.c.id, c.c.replaces).where(
                        c.c.replaces.is_not(None),
                        sa.or_(c.c.id.in_(touched), c.c.replaces.in_(touched)),
                    )
                ).all()
                touched |= {cid for cid, _ in linked} | {old for _, old in linked}
                self._rebuild_certs(db, touched, revision)
            if any(name in _MEMBER_EVENTS for _, name in gone):
                self._rebuild_members(db)
            if ancestor is None:
                db.execute(meta_table.delete().where(meta_table.c.key == "checkpoint"))
            else:
                self._set_meta(
                    db, "checkpoint", f"{ancestor.number}:{ancestor.hash}:{ancestor.timestamp}"
                )
            self._set_meta(db, "revision", str(revision))
            self._set_meta(db, "reorgs", str(int(self.get_meta("reorgs", db) or 0) + 1))
        return len(gone)

    def _rebuild_certs(self, db: sa.Connection, cert_ids: set[str], revision: int) -> None:
        """Recompute certificate rows from their surviving events alone."""
        c = certificates_table
        survivors = db.execute(
            sa.select(events_table)
            .where(events_table.c.cert_id.in_(cert_ids))
            .order_by(events_table.c.block_number, events_table.c.log_index)
        ).all()
        submitted = {r.cert_id for r in survivors if r.name == "CertificateSubmitted"}
        gone = cert_ids - submitted
        if gone:
            db.execute(c.delete().where(c.c.id.in_(gone)))
        rows = self._load_rows(db, submitted)
        for row in rows.values():
            row.values.update(
                status=int(Status.PENDING),
                reason=0,
                endorsements=0,
                rejections=0,
                replaced_by=None,
                updated_block=row.values["submitted_block"],
                updated_at=row.values["submitted_at"],
            )
            row.dirty = True
        times = dict(db.execute(sa.select(blocks_table.c.number, blocks_table.c.timestamp)).all())
        scratch = _Batch()
        first_submission: set[str] = set()
        for r in survivors:
            if r.name == "CertificateSubmitted" and r.cert_id not in first_submission:
                first_submission.add(r.cert_id)  # the loaded row already holds it
                continue
            event = Event(
                name=r.name,
                args=_unjson(r.args),
                block_number=r.block_number,
                block_hash=bytes.fromhex(r.block_hash),
                tx_hash=bytes.fromhex(r.tx_hash),
                log_index=r.log_index,
            )
            _apply_cert_event(rows, event, times.get(r.block_number, 0), revision, scratch)
        for row in rows.values():
            row.values["revision"] = revision
        self._write_rows(db, rows)

    def _load_rows(self, db: sa.Connection, cert_ids: Iterable[str]) -> dict[str, CertRow]:
        ids = list(cert_ids)
        out: dict[str, CertRow] = {}
        cols = [certificates_table.c.id, *(certificates_table.c[k] for k in _MUTABLE)]
        for start in range(0, len(ids), 500):
            for r in db.execute(
                sa.select(*cols).where(certificates_table.c.id.in_(ids[start : start + 500]))
            ):
                out[r.id] = CertRow(dict(r._mapping))
        return out

    @staticmethod
    def _write_rows(db: sa.Connection, rows: dict[str, CertRow]) -> None:
        fresh = [r.values for r in rows.values() if r.new]
        changed = [r.values for r in rows.values() if r.dirty and not r.new]
        if fresh:
            db.execute(certificates_table.insert(), fresh)
        if changed:
            c = certificates_table
            stmt = (
                c.update()
                .where(c.c.id == sa.bindparam("_id"))
                .values({k: sa.bindparam(f"_{k}") for k in _MUTABLE})
            )
            db.execute(
                stmt, [{"_id": v["id"], **{f"_{k}": v[k] for k in _MUTABLE}} for v in changed]
            )

    @staticmethod
    def _resolve_issuers(db: sa.Connection, rows: list[CertRow]) -> None:
        """Set the issuer key hashes of new certificates issued by one in the index (OCSP
        CertIDs carry them); runs before the new rows are written."""
        issued = [
            r.values
            for r in rows
            if not (r.values["self_issued"] or r.values["parse_error"])
            and r.values["issuer_name_sha1"]
        ]
        if not issued:
            return
        names = sorted({v["issuer_name_sha1"] for v in issued})
        candidates = _Issuers()
        for r in rows:
            if r.values["subject_name_sha1"] in names:
                candidates.add(r.values)
        c = certificates_table
        for start in range(0, len(names), 500):
            for cand in db.execute(
                sa.select(c.c.id, c.c.der, c.c.subject_name_sha1, c.c.key_sha1, c.c.key_sha256)
                .where(c.c.subject_name_sha1.in_(names[start : start + 500]))
                .where(c.c.key_sha1.is_not(None))
            ):
                candidates.add(dict(cand._mapping))
        for v in issued:
            found = candidates.issuer_of(v["der"], v["issuer_name_sha1"])
            if found is not None:
                v["issuer_key_sha1"], v["issuer_key_sha256"] = found

    @staticmethod
    def _adopt_orphans(db: sa.Connection, rows: list[CertRow], revision: int) -> None:
        """Link certificates indexed before their issuer to an issuer that arrived now."""
        names = sorted({r.values["subject_name_sha1"] for r in rows if r.values["key_sha1"]})
        if not names:
            return
        fresh = {r.values["id"] for r in rows}
        candidates = _Issuers()
        for r in rows:
            candidates.add(r.values)
        c = certificates_table
        linked = []
        for start in range(0, len(names), 500):
            for orphan in db.execute(
                sa.select(c.c.id, c.c.der, c.c.issuer_name_sha1).where(
                    c.c.issuer_name_sha1.in_(names[start : start + 500]),
                    c.c.issuer_key_sha1.is_(None),
                    c.c.self_issued.is_(False),
                    c.c.parse_error.is_(None),
                )
            ):
                if orphan.id in fresh:
                    continue
                found = candidates.issuer_of(orphan.der, orphan.issuer_name_sha1)
                if found is not None:
                    linked.append({"_id": orphan.id, "_k1": found[0], "_k256": found[1]})
        if linked:
            db.execute(
                c.update()
                .where(c.c.id == sa.bindparam("_id"))
                .values(
                    issuer_key_sha1=sa.bindparam("_k1"),
                    issuer_key_sha256=sa.bindparam("_k256"),
                    revision=revision,  # so that responders reload the row
                ),
                linked,
            )

    @staticmethod
    def _rebuild_members(db: sa.Connection) -> None:
        """Recompute members and the threshold from the member events in the index."""
        members: dict[str, dict[str, Any]] = {}
        threshold: int | None = None
        for r in db.execute(
            sa.select(events_table)
            .where(events_table.c.name.in_(_MEMBER_EVENTS))
            .order_by(events_table.c.block_number, events_table.c.log_index)
        ):
            args = json.loads(r.args)
            if r.name == "MemberAdded":
                members[args["account"]] = {
                    "address": args["account"],
                    "organization": args["organization"],
                    "roles": args["roles"],
                    "idx": args["index"],
                    "active": True,
                    "since_block": r.block_number,
                }
            elif r.name == "MemberRemoved" and args["account"] in members:
                members[args["account"]]["active"] = False
            elif r.name == "RolesChanged" and args["account"] in members:
                members[args["account"]]["roles"] = args["roles"]
            elif r.name == "ThresholdChanged":
                threshold = args["threshold"]
        db.execute(members_table.delete())
        if members:
            db.execute(members_table.insert(), list(members.values()))
        Store._set_meta(db, "threshold", str(threshold or 0))

    @staticmethod
    def _save_blocks(db: sa.Connection, blocks: Sequence[BlockRef]) -> None:
        unique = {b.number: b for b in blocks}
        if not unique:
            return
        db.execute(blocks_table.delete().where(blocks_table.c.number.in_(list(unique))))
        db.execute(
            blocks_table.insert(),
            [
                {"number": b.number, "hash": b.hash, "timestamp": b.timestamp}
                for b in unique.values()
            ],
        )

    def recent_blocks(self, limit: int = 128) -> list[BlockRef]:
        """Return the latest blocks the index holds, newest first (for finding a fork point)."""
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(blocks_table).order_by(blocks_table.c.number.desc()).limit(limit)
            ).all()
        return [BlockRef(r.number, r.hash, r.timestamp) for r in rows]

    def _prune_blocks(self, db: sa.Connection, keep_from: int) -> None:
        """Forget event-less blocks below ``keep_from`` (checkpoints of empty ranges; QBFT
        makes a block every few seconds). Blocks with events stay: their times date the
        history when a reorganization rebuilds it. Only blocks newer than the last prune are
        looked at, so each commit does a bounded amount of work."""
        start = int(self.get_meta("pruned_below", db) or 0)
        if keep_from <= start:
            return
        b = blocks_table
        has_events = sa.select(events_table.c.block_number).where(
            events_table.c.block_number == b.c.number
        )
        db.execute(
            b.delete().where(b.c.number >= start, b.c.number < keep_from, ~sa.exists(has_events))
        )
        self._set_meta(db, "pruned_below", str(keep_from))

    # ------------------------------------------------------------------ queries

    def certificate(self, cert_id: str) -> dict[str, Any] | None:
        """Return one certificate row (with DER), or None."""
        with self.engine.connect() as db:
            r = db.execute(
                sa.select(certificates_table).where(certificates_table.c.id == cert_id)
            ).first()
        return dict(r._mapping) if r else None

    def search(
        self,
        *,
        org: str | None = None,
        subject: str | None = None,
        key: str | None = None,
        status: int | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[int, list[dict[str, Any]]]:
        """Return (total, page) of certificates matching all given filters (subject: substring)."""
        c = certificates_table
        where = []
        if org is not None:
            where.append(c.c.organization == org)
        if subject is not None:
            where.append(c.c.subject.contains(subject, autoescape=True))
        if key is not None:
            where.append(c.c.key_hash == key)
        if status is not None:
            where.append(c.c.status == status)
        cols = [col for col in c.c if col.name != "der"]
        with self.engine.connect() as db:
            total = db.scalar(sa.select(sa.func.count()).select_from(c).where(*where)) or 0
            rows = db.execute(
                sa.select(*cols)
                .where(*where)
                .order_by(c.c.submitted_block.desc(), c.c.id)
                .limit(limit)
                .offset(offset)
            ).all()
        return total, [dict(r._mapping) for r in rows]

    def votes(self, cert_id: str) -> list[dict[str, Any]]:
        """Return the endorsements and rejections of a certificate, oldest first."""
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(votes_table)
                .where(votes_table.c.cert_id == cert_id)
                .order_by(votes_table.c.block_number, votes_table.c.log_index)
            ).all()
        return [dict(r._mapping) for r in rows]

    def history(self, cert_id: str) -> list[dict[str, Any]]:
        """Return the status history of a certificate, oldest first."""
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(history_table)
                .where(history_table.c.cert_id == cert_id)
                .order_by(history_table.c.block_number, history_table.c.log_index)
            ).all()
        return [dict(r._mapping) for r in rows]

    def members(self, *, active_only: bool = True) -> list[dict[str, Any]]:
        """Return the members, by index."""
        m = members_table
        with self.engine.connect() as db:
            query = sa.select(m).order_by(m.c.idx)
            if active_only:
                query = query.where(m.c.active.is_(True))
            return [dict(r._mapping) for r in db.execute(query)]

    def counts(self) -> dict[str, int]:
        """Return how many certificates are in each status."""
        c = certificates_table
        with self.engine.connect() as db:
            rows = db.execute(sa.select(c.c.status, sa.func.count()).group_by(c.c.status)).all()
        return {Status(s).label: n for s, n in rows}

    def event_count(self) -> int:
        """Return how many events the index holds."""
        with self.engine.connect() as db:
            return db.scalar(sa.select(sa.func.count()).select_from(events_table)) or 0

    def ocsp_rows(self, since_revision: int = 0) -> list[dict[str, Any]]:
        """Return what the status index needs of certificates changed after a revision (all of
        them, also those whose bytes do not parse: /status answers for every id)."""
        c = certificates_table
        cols = [
            c.c.id,
            c.c.serial,
            c.c.status,
            c.c.reason,
            c.c.updated_at,
            c.c.not_before,
            c.c.not_after,
            c.c.issuer_name_sha1,
            c.c.issuer_name_sha256,
            c.c.issuer_key_sha1,
            c.c.issuer_key_sha256,
            c.c.revision,
        ]
        with self.engine.connect() as db:
            rows = db.execute(sa.select(*cols).where(c.c.revision > since_revision)).all()
        return [dict(r._mapping) for r in rows]

    def all_ids(self) -> set[str]:
        """Return every certificate id in the index."""
        with self.engine.connect() as db:
            return set(db.execute(sa.select(certificates_table.c.id)).scalars())


class _Issuers:
    """Candidate issuers by subject name hash, parsed once, for signature checks."""

    def __init__(self) -> None:
        self._by_name: dict[str, dict[str, tuple[Any, str, str]]] = {}

    def add(self, values: dict[str, Any]) -> None:
        """Add a certificate (a row's values) as a possible issuer."""
        if values.get("key_sha1") and values.get("subject_name_sha1"):
            self._by_name.setdefault(values["subject_name_sha1"], {})[values["id"]] = (
                values["der"],
                values["key_sha1"],
                values["key_sha256"],
            )

    def issuer_of(self, der: bytes, issuer_name_sha1: str) -> tuple[str, str] | None:
        """Return the key hashes (sha1, sha256) of the candidate whose key signed ``der``."""
        from dpki.x509 import verifies_under

        options = self._by_name.get(issuer_name_sha1)
        if not options:
            return None
        child = x509.load_der_x509_certificate(der)
        for cid, (cand, key_sha1, key_sha256) in options.items():
            if not isinstance(cand, x509.Certificate):
                cand = x509.load_der_x509_certificate(cand)
                options[cid] = (cand, key_sha1, key_sha256)
            if verifies_under(child, cand):
                return key_sha1, key_sha256
        return None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _event_row(event: Event) -> dict[str, Any]:
    cid = event.args.get("certId")
    return {
        "block_number": event.block_number,
        "log_index": event.log_index,
        "block_hash": _hex(event.block_hash),
        "tx_hash": _hex(event.tx_hash),
        "name": event.name,
        "cert_id": _hex(cid) if isinstance(cid, bytes | bytearray) else None,
        "args": _jsonable(event.args),
    }


def _apply_cert_event(
    rows: dict[str, CertRow], event: Event, timestamp: int, revision: int, batch: _Batch
) -> None:
    """Apply one certificate event to the in-memory rows, adding vote and history rows."""
    a = event.args
    cid = _hex(a["certId"])
    common = {
        "block_number": event.block_number,
        "log_index": event.log_index,
        "tx_hash": _hex(event.tx_hash),
        "cert_id": cid,
        "timestamp": timestamp,
    }
    if event.name == "CertificateSubmitted":
        der = bytes(a["der"])
        replaces = _hex(a["replaces"])
        zero = "0" * 64
        values = {
            "id": cid,
            "der": der,
            "key_hash": _hex(a["keyHash"]),
            "org_hash": _hex(a["orgHash"]),
            "submitter": a["submitter"],
            "not_before": int(a["notBefore"]),
            "not_after": int(a["notAfter"]),
            "replaces": None if replaces == zero else replaces,
            "replaced_by": None,
            "status": int(Status.PENDING),
            "reason": 0,
            "endorsements": 0,
            "rejections": 0,
            "submitted_block": event.block_number,
            "submitted_at": timestamp,
            "updated_block": event.block_number,
            "updated_at": timestamp,
            "revision": revision,
            **cert_fields(der),
        }
        earlier = rows.get(cid)
        if earlier is not None:  # registered again after a rejection or withdrawal
            values = {**earlier.values, **{k: values[k] for k in _MUTABLE if k in values}}
        rows[cid] = CertRow(values, new=earlier is None or earlier.new, dirty=True)
        batch.history.append(
            dict(
                common,
                block_hash=_hex(event.block_hash),
                event="submitted",
                actor=a["submitter"],
                previous=0,
                status=int(Status.PENDING),
                reason=0,
            )
        )
        return
    row = rows.get(cid)
    if row is None:  # an event for a certificate the index never saw submitted: keep the event
        return
    v = row.values
    previous = v["status"]
    if event.name == "CertificateEndorsed":
        v["endorsements"] = int(a["endorsements"])
        status, reason, actor = int(a["status"]), v["reason"], a["validator"]
        batch.votes.append(dict(common, validator=actor, kind="endorsed", reason_code=None))
        name = "endorsed"
    elif event.name == "CertificateRejected":
        v["rejections"] = int(a["rejections"])
        status, actor = int(a["status"]), a["validator"]
        reason = int(a["reasonCode"]) if status == Status.REJECTED else v["reason"]
        batch.votes.append(
            dict(common, validator=actor, kind="rejected", reason_code=int(a["reasonCode"]))
        )
        name = "rejected"
    else:
        status, reason, actor = int(a["status"]), int(a["reason"]), a["actor"]
        name = Status(status).label
        if status == Status.SUPERSEDED:  # as the contract does: in the renewal's activation
            v["replaced_by"] = batch.activated.get((bytes(event.tx_hash), cid))
        if status == Status.ACTIVE and previous == Status.SUSPENDED:
            name = "resumed"
            reason = 0
    if status == Status.ACTIVE and previous == Status.PENDING and v.get("replaces"):
        batch.activated[(bytes(event.tx_hash), v["replaces"])] = cid
    v["status"], v["reason"] = status, reason
    v["revision"] = revision
    row.dirty = True
    if status != previous:
        v["updated_block"], v["updated_at"] = event.block_number, timestamp
        batch.history.append(
            dict(
                common,
                block_hash=_hex(event.block_hash),
                event=name,
                actor=actor,
                previous=previous,
                status=status,
                reason=reason,
            )
        )

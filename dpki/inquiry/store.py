"""The inquiry node's index: a SQL mirror of the registry, rebuilt from its events alone.

SQLite by default (``sqlite:///.dpki/index.sqlite``), PostgreSQL by URL
(``postgresql+psycopg://user@host/db``). The schema (:mod:`dpki.inquiry.schema`) is created
or checked on open; rows come from events through the pure projection
(:mod:`dpki.inquiry.projection`); reads are in :mod:`dpki.inquiry.queries`.

All writes for one block range go through :meth:`Store.commit_range` in one transaction
together with the checkpoint, so a crash leaves either all of a range or none of it.
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from dpki.chain.abi import Event
from dpki.errors import ConfigError
from dpki.inquiry.links import IssuerLinks
from dpki.inquiry.projection import (
    CERT_EVENTS,
    MEMBER_EVENTS,
    MUTABLE,
    Batch,
    CertRow,
    apply_cert_event,
    args_from_json,
    cert_fields,
    hex_id,
    member_rows,
    project_range,
)
from dpki.inquiry.queries import Queries
from dpki.inquiry.schema import (
    DEFAULT_URL,
    SCHEMA_VERSION,
    UNAVAILABLE,
    BlockRef,
    StoreError,
    blocks_table,
    certificates_table,
    create_schema,
    events_table,
    history_table,
    members_table,
    meta_table,
    sqlite_pragmas,
    votes_table,
)
from dpki.pki.codes import Status
from dpki.pki.issuers import IssuerKeys
from dpki.pki.x509 import ocsp_hashes

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

log = logging.getLogger("dpki.index")

#: recent blocks whose hashes the index keeps, events or not: the deepest reorganization it
#: can follow without reading everything again
KEEP_BLOCKS = 256


class Store(Queries):
    """An index database: open it, write block ranges (queries: :class:`Queries`)."""

    def __init__(self, url: str = DEFAULT_URL, *, create: bool = True) -> None:
        self.url = url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = sa.create_engine(url, future=True, pool_pre_ping=True)
        except Exception as exc:
            raise ConfigError(f"cannot use database URL {url!r}: {exc}") from None
        self._checkpoints: _Checkpoints | None = None
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", sqlite_pragmas)
            sa.event.listen(self.engine, "connect", _no_automatic_checkpoints)
            self._checkpoints = _Checkpoints(self.engine)
        if create:
            create_schema(self.engine, self.safe_url)

    @property
    def safe_url(self) -> str:
        """Return the URL without a password (for messages)."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Release the connection pool (after the WAL checkpoint in progress, if any)."""
        if self._checkpoints is not None:
            self._checkpoints.close()
        self.engine.dispose()

    @staticmethod
    def _set_meta(db: sa.Connection, key: str, value: str) -> None:
        done = db.execute(
            meta_table.update().where(meta_table.c.key == key).values(value=value)
        ).rowcount
        if not done:
            db.execute(meta_table.insert().values(key=key, value=value))

    def bind_registry(
        self, chain_id: int, address: str, deploy_block: int, genesis: str | None = None
    ) -> None:
        """Record which registry on which chain this index mirrors; refuse another.

        The chain is named by its genesis hash as well as its id: every devnet has chain id
        31337 and the same registry address, so only block 0 tells two of them apart. An
        index made before the genesis was recorded adopts the chain it is next bound to.
        """
        wanted = f"{chain_id}:{address.lower()}"
        with self.engine.begin() as db:
            meta = self._meta_values(db, ("registry", "deploy_block", "genesis"))
            got = meta.get("registry")
            if got is None:
                self._set_meta(db, "registry", wanted)
                self._set_meta(db, "deploy_block", str(deploy_block))
                if genesis is not None:
                    self._set_meta(db, "genesis", genesis)
                return
            if got != wanted:
                raise StoreError(
                    f"the index at {self.safe_url} mirrors registry {got}; this deployment is "
                    f"{wanted}: use another --db"
                )
            got_block = meta.get("deploy_block")
            got_genesis = meta.get("genesis")
            if genesis is not None and got_genesis is None:
                self._set_meta(db, "genesis", genesis)
            elif (genesis is not None and got_genesis != genesis) or (
                got_block is not None and int(got_block) != deploy_block
            ):
                raise StoreError(
                    f"the index at {self.safe_url} mirrors registry {got} on another chain "
                    f"(genesis 0x{(got_genesis or '?')[:16]}..., deployed at block {got_block}); "
                    f"this deployment's chain has genesis 0x{(genesis or '?')[:16]}... and "
                    f"deployment block {deploy_block} (a restarted devnet?): use another --db, "
                    "or delete this index to rebuild it"
                )

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
            if db.dialect.name == "postgresql":
                # as SQLite's synchronous=NORMAL: a server crash may forget the newest ranges
                # (whole, with their checkpoint, so they are read again), never half of one
                db.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            meta = self._meta_values(db, ("revision", "pruned_below"))
            revision = int(meta.get("revision") or 0) + 1
            cert_ids = {hex_id(e.args["certId"]) for e in events if e.name in CERT_EVENTS}
            rows = self._load_rows(db, cert_ids)
            times = {number: block.timestamp for number, block in blocks.items()}
            # the new certificates are parsed first, and their issuers' signatures checked by
            # other threads meanwhile and while the projection runs (links.py)
            lookup = functools.partial(self._candidate_rows, db)
            with IssuerLinks(events, rows, lookup) as links:
                # before the new rows are in the table, which the look-up would only skip
                self._adopt_orphans(db, links.new_rows(), revision)
                batch = project_range(rows, events, times, revision, links.parsed)
                fresh = [r for r in rows.values() if r.new]
                # a second thread writes the rows that do not depend on the links (SQLite
                # and psycopg release the GIL while they work), then the new certificates
                with _Writer(db) as writer:
                    writer.put(events_table, batch.events)
                    writer.put(votes_table, batch.votes)
                    writer.put(history_table, batch.history)
                    links.plan(fresh)
                    links.decide(rows)
                    writer.put(certificates_table, [r.values for r in fresh])
            self._write_rows(db, rows)
            if batch.members_changed:
                self._rebuild_members(db)
            self._save_blocks(db, [*blocks.values(), checkpoint])
            updates = {
                "checkpoint": f"{checkpoint.number}:{checkpoint.hash}:{checkpoint.timestamp}"
            }
            pruned = self._prune_blocks(
                db, checkpoint.number - KEEP_BLOCKS, int(meta.get("pruned_below") or 0)
            )
            if pruned is not None:
                updates["pruned_below"] = str(pruned)
            if any(r.dirty for r in rows.values()):
                updates["revision"] = str(revision)
            _upsert_meta(db, updates)
        if self._checkpoints is not None:
            self._checkpoints.request()
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
            if any(name in MEMBER_EVENTS for _, name in gone):
                self._rebuild_members(db)
            if ancestor is None:
                db.execute(meta_table.delete().where(meta_table.c.key == "checkpoint"))
            else:
                self._set_meta(
                    db, "checkpoint", f"{ancestor.number}:{ancestor.hash}:{ancestor.timestamp}"
                )
            self._set_meta(db, "revision", str(revision))
            self._set_meta(db, "reorgs", str(int(self.get_meta("reorgs", db) or 0) + 1))
        if self._checkpoints is not None:
            self._checkpoints.request()
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
        scratch = Batch()
        first_submission: set[str] = set()
        for r in survivors:
            if r.name == "CertificateSubmitted" and r.cert_id not in first_submission:
                first_submission.add(r.cert_id)  # the loaded row already holds it
                continue
            event = Event(
                name=r.name,
                args=args_from_json(r.args),
                block_number=r.block_number,
                block_hash=bytes.fromhex(r.block_hash),
                tx_hash=bytes.fromhex(r.tx_hash),
                log_index=r.log_index,
            )
            apply_cert_event(rows, event, times.get(r.block_number, 0), revision, scratch)
        for row in rows.values():
            row.values["revision"] = revision
        self._write_rows(db, rows)

    def _load_rows(self, db: sa.Connection, cert_ids: Iterable[str]) -> dict[str, CertRow]:
        ids = list(cert_ids)
        if not ids:
            return {}
        cols = [certificates_table.c.id, *(certificates_table.c[k] for k in MUTABLE)]
        return {
            r.id: CertRow(dict(r._mapping))
            for r in db.execute(sa.select(*cols).where(_among(db, certificates_table.c.id, ids)))
        }

    @staticmethod
    def _meta_values(db: sa.Connection, keys: Sequence[str]) -> dict[str, str]:
        """Return the meta values of ``keys`` that are set, in one query."""
        rows = db.execute(
            sa.select(meta_table.c.key, meta_table.c.value).where(meta_table.c.key.in_(keys))
        )
        return {key: value for key, value in rows}

    @staticmethod
    def _write_rows(db: sa.Connection, rows: dict[str, CertRow]) -> None:
        """Update the rows that were in the index before and changed (new rows are inserted
        by :meth:`commit_range` as their issuers are checked)."""
        changed = [r.values for r in rows.values() if r.dirty and not r.new]
        if changed:
            c = certificates_table
            stmt = (
                c.update()
                .where(c.c.id == sa.bindparam("_id"))
                .values({k: sa.bindparam(f"_{k}") for k in MUTABLE})
            )
            db.execute(
                stmt, [{"_id": v["id"], **{f"_{k}": v[k] for k in MUTABLE}} for v in changed]
            )

    @staticmethod
    def _candidate_rows(db: sa.Connection, names: Sequence[str]) -> list[dict[str, Any]]:
        """Return the indexed certificates with a key whose subject name hash is in
        ``names``: the candidate issuers of certificates naming them as issuer."""
        c = certificates_table
        return [
            dict(cand._mapping)
            for cand in db.execute(
                sa.select(c.c.id, c.c.der, c.c.subject_name_sha1, c.c.key_sha1, c.c.key_sha256)
                .where(_among(db, c.c.subject_name_sha1, names))
                .where(c.c.key_sha1.is_not(None))
            )
        ]

    @staticmethod
    def _adopt_orphans(db: sa.Connection, rows: list[dict[str, Any]], revision: int) -> None:
        """Link certificates indexed before their issuer to an issuer that arrived now
        (``rows``: the columns of the new certificates)."""
        names = sorted({r["subject_name_sha1"] for r in rows if r["key_sha1"]})
        if not names:
            return
        fresh = {r["id"] for r in rows}
        candidates = IssuerKeys()
        for r in rows:
            candidates.add(r)
        c = certificates_table
        linked = []
        for orphan in db.execute(
            sa.select(c.c.id, c.c.der, c.c.issuer_name_sha1).where(
                _among(db, c.c.issuer_name_sha1, names),
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
        members, threshold = member_rows(
            (r.name, json.loads(r.args), r.block_number)
            for r in db.execute(
                sa.select(events_table)
                .where(events_table.c.name.in_(MEMBER_EVENTS))
                .order_by(events_table.c.block_number, events_table.c.log_index)
            )
        )
        db.execute(members_table.delete())
        if members:
            db.execute(members_table.insert(), members)
        Store._set_meta(db, "threshold", str(threshold or 0))

    @staticmethod
    def _save_blocks(db: sa.Connection, blocks: Sequence[BlockRef]) -> None:
        unique = {b.number: b for b in blocks}
        if not unique:
            return
        db.execute(blocks_table.delete().where(blocks_table.c.number.in_(list(unique))))
        _insert_many(
            db,
            blocks_table,
            [
                {"number": b.number, "hash": b.hash, "timestamp": b.timestamp}
                for b in unique.values()
            ],
        )

    @staticmethod
    def _prune_blocks(db: sa.Connection, keep_from: int, start: int) -> int | None:
        """Forget event-less blocks in ``[start, keep_from)`` (checkpoints of empty ranges;
        QBFT makes a block every few seconds); return the new ``pruned_below``, or None when
        there was nothing to look at. Blocks with events stay: their times date the history
        when a reorganization rebuilds it. Only blocks newer than the last prune are looked
        at, so each commit does a bounded amount of work."""
        if keep_from <= start:
            return None
        b = blocks_table
        has_events = sa.select(events_table.c.block_number).where(
            events_table.c.block_number == b.c.number
        )
        db.execute(
            b.delete().where(b.c.number >= start, b.c.number < keep_from, ~sa.exists(has_events))
        )
        return keep_from


def _no_automatic_checkpoints(dbapi_connection: Any, _record: Any) -> None:
    """Leave WAL checkpoints to :class:`_Checkpoints` (the committing connection would
    otherwise copy the WAL into the database file itself, inside the indexer's step)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


class _Checkpoints:
    """Copy SQLite's WAL into the database file on a thread of its own, after each commit.

    SQLite's own default is a checkpoint by the committing connection once the WAL holds
    1000 pages: a catch-up range of a few megabytes pays for it in the middle of a step.
    Here it runs beside the next step (SQLite releases the GIL while it copies pages), as
    SQLite's documentation suggests for writers that must not wait. A PASSIVE checkpoint
    never blocks readers or the writer; what it cannot copy yet, the next one does. When
    the store closes, the last connection to close checkpoints what is left."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._closing = False
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        """Ask for a checkpoint soon (starts the thread on first use)."""
        with self._lock:
            if self._closing:
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="dpki-index-checkpoint", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                with self._engine.connect() as db:
                    db.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except sa.exc.DBAPIError as exc:  # the next commit asks again
                log.warning("WAL checkpoint failed: %s", exc.orig)

    def close(self) -> None:
        """Stop the thread, after the checkpoint it is running."""
        with self._lock:
            self._closing = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join()


def _among(db: sa.Connection, column: sa.ColumnElement[Any], values: Sequence[str]) -> Any:
    """Return ``column IN values`` with the values as one bound parameter (a PostgreSQL
    array, a JSON array for SQLite): a catch-up asks about thousands of ids at once, and
    SQLAlchemy binds each value of an ``IN`` list separately."""
    if db.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(values), type_=_TEXT_ARRAY))
    listed: sa.Select[Any] = sa.select(sa.column("value")).select_from(
        sa.func.json_each(sa.bindparam(None, json.dumps(list(values)), type_=sa.String))
    )
    return column.in_(listed.scalar_subquery())


_TEXT_ARRAY = postgresql.ARRAY(sa.String)


def _upsert_meta(db: sa.Connection, values: dict[str, str]) -> None:
    """Set meta values, inserting the keys that are not there yet, in one statement."""
    rows = [{"key": k, "value": v} for k, v in values.items()]
    insert = postgresql.insert if db.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(meta_table).values(rows)
    db.execute(
        stmt.on_conflict_do_update(
            index_elements=[meta_table.c.key], set_={"value": stmt.excluded.value}
        )
    )


class _Writer:
    """Insert rows (:func:`_insert_many`, in ``db``'s transaction) on a second thread, in
    the order they are put, while the caller computes; the caller must not use ``db`` until
    the ``with`` block ends. Leaving waits for every row; a failure to write them is raised
    there (after the block's own exception, if it has one)."""

    def __init__(self, db: sa.Connection) -> None:
        self._db = db
        self._jobs: queue.SimpleQueue[tuple[sa.Table, Sequence[dict[str, Any]]] | None]
        self._jobs = queue.SimpleQueue()
        self._failed: list[BaseException] = []
        self._thread = threading.Thread(target=self._write, name="dpki-index-writer")

    def put(self, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        """Have ``rows`` inserted into ``table`` after what was put before."""
        if rows:
            self._jobs.put((table, rows))

    def _write(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._failed:
                continue  # the transaction is lost: take the rest of the queue, write nothing
            try:
                _insert_many(self._db, *job)
            except BaseException as exc:  # handed to the caller's thread
                self._failed.append(exc)

    def __enter__(self) -> _Writer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._jobs.put(None)
        try:
            self._thread.join()
        except BaseException:  # interrupted: still never hand back a connection mid-write
            self._thread.join()
            raise
        if self._failed and kind is None:
            raise self._failed[0]


def _insert_many(db: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert plain-valued rows through the driver, in ``db``'s transaction.

    SQLAlchemy's ``insert()`` builds parameters row by row in Python; at catch-up sizes
    (thousands of rows a range) that cost more than the database. PostgreSQL gets ``COPY``;
    SQLite gets multi-row ``INSERT ... VALUES (...), (...)`` statements, as many rows each
    as its limit on bound parameters allows, so that it inserts them in one step without
    the GIL (``executemany`` takes the GIL back for every row). The columns hold ints,
    strings, bytes, booleans and None only, which both drivers adapt as SQLAlchemy would.
    """
    if not rows:
        return
    columns = [table.c[name] for name in rows[0]]  # KeyError: a column the table lacks
    keys = [c.name for c in columns]
    quote = db.dialect.identifier_preparer.quote
    head = f"{quote(table.name)} ({', '.join(quote(k) for k in keys)})"
    dbapi = db.dialect.loaded_dbapi
    driver = db.connection.driver_connection
    cursor = driver.cursor()  # type: ignore[union-attr]
    sql = f"COPY {head} FROM STDIN"
    try:
        if db.dialect.name == "postgresql":
            with cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row([row[k] for k in keys])
        else:
            per = max(1, driver.getlimit(dbapi.SQLITE_LIMIT_VARIABLE_NUMBER) // len(keys))  # type: ignore[union-attr]
            one = f"({', '.join('?' * len(keys))})"
            for start in range(0, len(rows), per):
                part = rows[start : start + per]
                sql = f"INSERT INTO {head} VALUES {', '.join([one] * len(part))}"
                cursor.execute(sql, [row[k] for row in part for k in keys])
    except dbapi.Error as exc:  # as SQLAlchemy would raise it (UNAVAILABLE, IntegrityError...)
        raise sa.exc.DBAPIError.instance(sql, None, exc, dbapi.Error) from exc
    finally:
        cursor.close()

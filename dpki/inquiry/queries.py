"""Read queries on the inquiry index: certificates, votes, history, members, blocks."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from dpki.errors import DpkiError
from dpki.inquiry.projection import args_from_json, authorization_rows
from dpki.inquiry.schema import (
    BlockRef,
    blocks_table,
    certificates_table,
    events_table,
    history_table,
    members_table,
    meta_table,
    votes_table,
)
from dpki.pki.codes import Status

__all__ = ["MAX_OFFSET", "MAX_PAGE", "MAX_TEXT", "BadQuery", "Queries"]

#: bounds of a search, the same for SQLite and PostgreSQL (both hold LIMIT and OFFSET in
#: 64 bits and refuse more; a 32-bit bound is far beyond any index and safe in every client)
MAX_PAGE = 500
MAX_OFFSET = 2**31 - 1
#: the longest organization or subject text a search takes (a DN is far shorter)
MAX_TEXT = 1024


class BadQuery(DpkiError):
    """A search the index will not run: a bound out of range, or text it cannot hold."""


class Queries:
    """What the inquiry node asks of the index (the store adds the writes)."""

    engine: sa.Engine

    def get_meta(self, key: str, db: sa.Connection | None = None) -> str | None:
        """Return a meta value."""
        query = sa.select(meta_table.c.value).where(meta_table.c.key == key)
        if db is not None:
            return db.scalar(query)
        with self.engine.connect() as conn:
            return conn.scalar(query)

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

    def recent_blocks(self, limit: int = 128) -> list[BlockRef]:
        """Return the latest blocks the index holds, newest first (for finding a fork point)."""
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(blocks_table).order_by(blocks_table.c.number.desc()).limit(limit)
            ).all()
        return [BlockRef(r.number, r.hash, r.timestamp) for r in rows]

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
        id_prefix: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[int, list[dict[str, Any]]]:
        """Return (total, page) of certificates matching all given filters (subject: substring).

        Raises :class:`BadQuery` for a page or offset out of bounds (``1 <= limit <=
        MAX_PAGE``, ``0 <= offset <= MAX_OFFSET``) or a text filter longer than ``MAX_TEXT``
        or holding a NUL (PostgreSQL text cannot hold one), the same on every database."""
        if not 1 <= limit <= MAX_PAGE:
            raise BadQuery(f"limit is 1 to {MAX_PAGE}, got {limit}")
        if not 0 <= offset <= MAX_OFFSET:
            raise BadQuery(f"offset is 0 to {MAX_OFFSET}, got {offset}")
        for name, text in (("org", org), ("subject", subject), ("key", key)):
            if text is not None and (len(text) > MAX_TEXT or "\x00" in text):
                raise BadQuery(f"{name} is at most {MAX_TEXT} characters and no NUL")
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
        if id_prefix is not None:  # ids are lowercase hex: no LIKE wildcard can be in one
            if not all(ch in "0123456789abcdef" for ch in id_prefix):
                return 0, []
            where.append(c.c.id.startswith(id_prefix))
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
        return self._in_order(votes_table, cert_id)

    def history(self, cert_id: str) -> list[dict[str, Any]]:
        """Return the status history of a certificate, oldest first."""
        return self._in_order(history_table, cert_id)

    def _in_order(self, table: sa.Table, cert_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(table)
                .where(table.c.cert_id == cert_id)
                .order_by(table.c.block_number, table.c.log_index)
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

    def authorizations(self) -> list[dict[str, Any]]:
        """Return the issuer authorisations in force (from the indexed events)."""
        e = events_table
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(e.c.args)
                .where(e.c.name == "IssuerAuthorizationChanged")
                .order_by(e.c.block_number, e.c.log_index)
            )
            return authorization_rows(args_from_json(r.args) for r in rows)

    def counts(self) -> dict[str, int]:
        """Return how many certificates are in each status."""
        c = certificates_table
        with self.engine.connect() as db:
            rows = db.execute(sa.select(c.c.status, sa.func.count()).group_by(c.c.status)).all()
        return {Status(s).label: n for s, n in rows}

    def last_votes(self) -> dict[str, dict[str, Any]]:
        """Return each validator's latest vote (endorsement or rejection): block and time."""
        v = votes_table
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(
                    v.c.validator,
                    sa.func.max(v.c.block_number).label("block"),
                    sa.func.max(v.c.timestamp).label("timestamp"),
                    sa.func.count().label("votes"),
                ).group_by(v.c.validator)
            ).all()
        return {r.validator: dict(r._mapping) for r in rows}

    def provisioned(self, buckets: int = 30) -> tuple[int, int, list[int]]:
        """Return certificates submitted over time: (first time, bucket width in seconds,
        count per bucket), ``buckets`` equal spans from the first submission to the last."""
        c = certificates_table
        with self.engine.connect() as db:
            first, last = db.execute(
                sa.select(sa.func.min(c.c.submitted_at), sa.func.max(c.c.submitted_at))
            ).one()
            if first is None:
                return 0, 0, []
            width = max(1, -(-(int(last) - int(first) + 1) // buckets))
            slot = ((c.c.submitted_at - first) // width).label("slot")
            rows = db.execute(sa.select(slot, sa.func.count()).group_by(slot)).all()
        counts = [0] * buckets
        for index, count in rows:
            counts[min(int(index), buckets - 1)] += int(count)
        return int(first), width, counts

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

"""The issuer links of a block range's new certificates, checked while the range is parsed.

Each new certificate row carries the key hashes of the issuer whose key signed it (OCSP
CertIDs name the issuer by key hash). Which candidate signed it takes a signature check,
the largest single cost of a catch-up, and one that does not need the interpreter lock
(:mod:`dpki.pki.bulk`). So :class:`IssuerLinks` parses the range's new certificates itself,
a share at a time, and hands each share's checks to a :class:`~dpki.pki.bulk.Verifier`,
whose threads verify while the next share is parsed and the range is projected:

1. every new certificate's names are read from its DER first (cheap), so that the
   candidate issuers are known before anything is verified: the index's (one query by
   issuer name hash) and the range's own (wherever they are in it);
2. the certificates are parsed in shares of :data:`SHARE`; each share's checks go to the
   verifier at once;
3. after the projection, :meth:`IssuerLinks.decide` works the links out exactly as they were
   worked out before this overlap existed, over every candidate, using the answers the
   verifier found and verifying only what it was not asked (a certificate whose names only
   cryptography reads, say). The same links, found sooner.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Container, Iterable
from typing import Any, Final

from cryptography import x509

from dpki.chain.abi import Event
from dpki.inquiry.projection import CertRow, ParsedRow, hex_id, parse_row
from dpki.pki.bulk import Job, Verifier, verify_jobs
from dpki.pki.der import Unsupported, read_layout
from dpki.pki.issuers import IssuerKeys, LinkPlan

__all__ = ["SHARE", "IssuerLinks", "Lookup"]

#: new certificates parsed, then handed to the verifier, at a time
SHARE: Final = 128

#: issuer name hashes -> the indexed certificates with a key and one of those subject name
#: hashes (columns id, der, subject_name_sha1, key_sha1, key_sha256)
Lookup = Callable[[list[str]], list[dict[str, Any]]]


class IssuerLinks:
    """Parse a range's new certificates and check their issuers' signatures meanwhile.

    ``lookup`` asks the index (on the calling thread, before the range's rows are written).
    Use as a context manager: leaving it stops the verifier's threads."""

    def __init__(self, events: Iterable[Event], known: Container[str], lookup: Lookup) -> None:
        self._lookup = lookup
        self._indexed: dict[str, list[dict[str, Any]]] = {}  # name -> the index's candidates
        self._verifier = Verifier()
        self._sent: list[Job] = []
        self._final: tuple[list[str], LinkPlan] | None = None
        #: every new certificate's :func:`~dpki.inquiry.projection.parse_row`, by id (hex)
        self.parsed: dict[str, ParsedRow] = {}
        ders: dict[str, bytes] = {}
        for event in events:
            if event.name == "CertificateSubmitted":
                cid = hex_id(event.args["certId"])
                if cid not in known and cid not in ders:
                    ders[cid] = bytes(event.args["der"])
        self._ders = ders
        try:
            self._start(ders)
        except BaseException:  # the index unreachable, say: no thread left behind
            self._verifier.close()
            raise

    def __enter__(self) -> IssuerLinks:
        return self

    def __exit__(self, *_: object) -> None:
        self._verifier.close()

    # ------------------------------------------------------------------ while parsing

    def _start(self, ders: dict[str, bytes]) -> None:
        names: dict[str, tuple[str | None, str | None]] = {}  # cid -> (subject, issuer) hashes
        for cid, der in ders.items():
            try:
                read = read_layout(der)
                names[cid] = _sha1(read.subject), _sha1(read.issuer)
            except (Unsupported, IndexError, ValueError):  # parsed now, names as it reads them
                fields = self._parse(cid, der)[0]
                names[cid] = fields["subject_name_sha1"], fields["issuer_name_sha1"]
        issuers = {issuer for _, issuer in names.values() if issuer}
        keys = IssuerKeys()
        for cid, (subject, _) in names.items():  # the range's own candidates, parsed first
            if subject in issuers:
                fields, certificate, _ = self._parse(cid, ders[cid])
                if certificate is not None:
                    keys.add(dict(fields, id=cid, der=ders[cid]))
        for candidate in self._ask(issuers):
            keys.add(candidate)
        share: list[tuple[x509.Certificate, str, Any]] = []
        for cid, der in ders.items():
            fields, certificate, layout = self._parse(cid, der)
            if certificate is not None and layout is not None and _needs_link(fields):
                share.append((certificate, fields["issuer_name_sha1"], layout))
            if len(share) >= SHARE:
                self._send(keys, share)
                share = []
        self._send(keys, share)
        # names only cryptography read differently: asked now, so that plan() asks nothing
        self._ask(f["issuer_name_sha1"] for f, _, _ in self.parsed.values() if _needs_link(f))

    def _parse(self, cid: str, der: bytes) -> ParsedRow:
        parsed = self.parsed.get(cid)
        if parsed is None:
            parsed = self.parsed[cid] = parse_row(der)
        return parsed

    def _send(self, keys: IssuerKeys, share: list[tuple[x509.Certificate, str, Any]]) -> None:
        jobs = keys.plan(share).jobs
        self._verifier.submit(jobs)
        self._sent += jobs

    def _ask(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """Return the index's candidates for issuer name hashes (each name asked once)."""
        names = set(names)
        wanted = sorted(names - self._indexed.keys())
        if wanted:
            for name in wanted:
                self._indexed[name] = []
            for row in self._lookup(wanted):
                self._indexed[row["subject_name_sha1"]].append(row)
        return self._asked(names)

    def _asked(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """Return the index's candidates for issuer name hashes asked before."""
        return [row for name in set(names) for row in self._indexed[name]]

    # ------------------------------------------------------------------ after the projection

    def new_rows(self) -> list[dict[str, Any]]:
        """Return the columns of the range's new certificates that parse (with id and DER)."""
        return [
            dict(fields, id=cid, der=self._ders[cid])
            for cid, (fields, _, _) in self.parsed.items()
            if not fields["parse_error"]
        ]

    def plan(self, fresh: Iterable[CertRow]) -> None:
        """Work out the checks of the range's new rows (after the projection; it does not
        use the index, which the writer may be using): the candidates are the index's and the
        new rows' with a subject named as issuer, as always."""
        rows = [r for r in fresh if not r.values["parse_error"]]
        issued = [r for r in rows if _needs_link(r.values)]
        names = {r.values["issuer_name_sha1"] for r in issued}
        keys = IssuerKeys()
        if names:
            for r in rows:
                if r.values["subject_name_sha1"] in names:
                    keys.add(r.values)
            for candidate in self._asked(names):
                keys.add(candidate)
        plan = keys.plan(
            [
                (r.certificate or r.values["der"], r.values["issuer_name_sha1"], r.layout)
                for r in issued
            ]
        )
        self._final = [r.values["id"] for r in issued], plan

    def decide(self, rows: dict[str, CertRow]) -> None:
        """Set the issuer key hashes of the new rows whose issuer was found (waits for the
        verifier; verifies what it was not asked)."""
        assert self._final is not None, "plan() first"
        ids, plan = self._final
        known = dict(zip(self._sent, self._verifier.answers(), strict=True))

        def verify(jobs: list[Job]) -> list[bool | None]:  # what was not asked early, now
            missing = [job for job in jobs if job not in known]
            if missing:
                known.update(zip(missing, verify_jobs(missing), strict=True))
            return [known[job] for job in jobs]

        for cid, keys in zip(ids, plan.decide(verify), strict=True):
            if keys is not None:
                rows[cid].values["issuer_key_sha1"], rows[cid].values["issuer_key_sha256"] = keys


def _needs_link(values: dict[str, Any]) -> bool:
    """Say whether a parsed row names an issuer other than itself."""
    return bool(
        values["issuer_name_sha1"] and not values["self_issued"] and not values["parse_error"]
    )


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()

"""Prometheus metrics of the long-running roles: inquiry node, validator node, indexer.

Each role keeps its metrics on a registry of its own (so several roles, or several tests, live
in one process), and exposes them in the Prometheus text format: ``dpki serve`` at
``GET /metrics``, ``dpki validator run --metrics-port N`` and ``dpki indexer run
--metrics-port N`` on a small HTTP server of their own. The names are listed in the README.

``dpki serve --workers N`` (N > 1) runs several processes: they share their samples through
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by the command), so a
scrape of any worker reports them all.
"""

from __future__ import annotations

import os
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
    multiprocess,
    start_http_server,
)

__all__ = [
    "CONTENT_TYPE",
    "IndexerMetrics",
    "MetricsServer",
    "ServeMetrics",
    "ValidatorMetrics",
    "exposition",
    "serve_metrics",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"


class ServeMetrics:
    """What ``dpki serve`` counts: requests, OCSP answers, and how far the index lags."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "dpki_http_requests",
            "HTTP requests answered, by endpoint (route template), method and status code",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.ocsp = Counter(
            "dpki_ocsp_responses",
            "OCSP responses, by certificate status (good, revoked, unknown) or error "
            "(malformed, internal_error)",
            ["status"],
            registry=r,
        )
        self.lag_blocks = Gauge(
            "dpki_index_lag_blocks",
            "Blocks between the chain head and the last block indexed (-1: head unknown)",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.lag_seconds = Gauge(
            "dpki_index_lag_seconds",
            "Seconds between the chain head's time and the last indexed block's time (-1: unknown)",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.indexed_block = Gauge(
            "dpki_index_block",
            "The last block the index holds (-1: none yet)",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.certificates = Gauge(
            "dpki_index_certificates",
            "Certificates in the index, by status",
            ["status"],
            registry=r,
            multiprocess_mode="mostrecent",
        )


class ValidatorMetrics:
    """What a validator node counts: its decisions, its backlog, its failures."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.decisions = Counter(
            "dpki_validator_decisions",
            "Votes mined, by outcome (endorse, reject) and code (the first rejection code; "
            "OK for endorsements)",
            ["outcome", "code"],
            registry=r,
        )
        self.backlog = Gauge(
            "dpki_validator_pending_backlog",
            "Submissions read from the ledger and not yet voted on (the range in hand)",
            registry=r,
        )
        self.backlog_blocks = Gauge(
            "dpki_validator_backlog_blocks",
            "Confirmed blocks after the checkpoint, not yet decided",
            registry=r,
        )
        self.last_block = Gauge(
            "dpki_validator_last_block",
            "The last block fully decided (the checkpoint)",
            registry=r,
        )
        self.errors = Counter(
            "dpki_validator_errors",
            "Failed steps, by kind (ledger_unreachable, vote_failed, stale_anchor, step_failed)",
            ["kind"],
            registry=r,
        )
        self.retries = Counter(
            "dpki_validator_retries",
            "Steps tried again after a back-off",
            registry=r,
        )


class IndexerMetrics:
    """What an indexer counts: events indexed, the block reached, lag, reorgs, failures."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "dpki_indexer_events", "Registry events written to the index", registry=r
        )
        self.last_block = Gauge(
            "dpki_indexer_last_block",
            "The last block indexed (the checkpoint; -1 until the first step)",
            registry=r,
        )
        self.lag_blocks = Gauge(
            "dpki_indexer_lag_blocks",
            "Blocks between the chain head and the last block indexed (-1 until the first step)",
            registry=r,
        )
        # Unknown, not "caught up": 0 before the first step would tell an alert (and a
        # test waiting for the catch-up) that the index is current when nothing is read yet.
        self.last_block.set(-1)
        self.lag_blocks.set(-1)
        self.reorgs = Counter(
            "dpki_indexer_reorgs", "Chain reorganizations the index rolled back", registry=r
        )
        self.errors = Counter(
            "dpki_indexer_errors",
            "Steps that failed while the ledger or the database was unreachable",
            registry=r,
        )


#: registries of this process's other roles shown beside a server's own (see expose_too)
_ALSO: list[CollectorRegistry] = []


def expose_too(registry: CollectorRegistry) -> None:
    """Show ``registry``'s samples on this process's ``/metrics`` as well (``dpki serve
    --follow``: the indexer it runs)."""
    _ALSO.append(registry)


def exposition(registry: CollectorRegistry) -> bytes:
    """Return the samples in the Prometheus text format (all workers' in multiprocess mode),
    with those of the registries passed to :func:`expose_too`."""
    if os.environ.get(_MULTIPROC):
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged)
    return b"".join(generate_latest(r) for r in (registry, *_ALSO))


class MetricsServer:
    """A running metrics endpoint: where it listens, and how to stop it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        """Return the port it listens on."""
        return int(self._server.server_port)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serve_metrics(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve ``registry`` at ``http://host:port/metrics`` in a background thread."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread)

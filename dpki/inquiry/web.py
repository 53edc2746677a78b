"""The inquiry node's web pages, rendered on the server: the consortium at a glance (members,
threshold, each validator's last vote, backlog, certificates by status, provisioning over time
as an inline SVG chart), search with paging, and one certificate's status, endorsers, history
and PEM. No script and nothing from another site: every page works with JavaScript off."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

__all__ = [
    "PAGE_SIZE",
    "Overview",
    "chart_svg",
    "detail_page",
    "error_page",
    "overview_html",
    "search_page",
]

#: certificates on one page of the search
PAGE_SIZE = 50

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem;
text-align:left;font-size:.9rem;vertical-align:top}code,pre{font-size:.8rem}
.s-active{color:#060}.s-revoked,.s-rejected{color:#a00}.s-suspended,.s-superseded{color:#a60}
.s-pending{color:#555}form input{margin-right:.5rem}.error{color:#a00;font-weight:bold}
.glance{display:flex;flex-wrap:wrap;gap:2rem}.glance section{flex:1 1 20rem}
.stale{color:#a00}.chart rect{fill:#4a7ab5}.chart text{font-size:10px;fill:#555}
nav.pages a{margin-right:1rem}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f'<h1><a href="/">DPKI inquiry node</a></h1>{body}</body></html>'
    )


def error_page(status: int, message: str) -> str:
    """Render a refused request: what was wrong, and the way back to the search."""
    return _page(
        f"DPKI inquiry node: {status}",
        f'<p class="error">{escape(message)}</p><p><a href="/">search again</a></p>',
    )


def _status(label: str) -> str:
    return f'<span class="status s-{escape(label)}">{escape(label)}</span>'


def _when(ts: int | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@dataclass(frozen=True)
class Overview:
    """The consortium at a glance, as the index has it."""

    members: list[dict[str, Any]]
    threshold: int
    last_votes: dict[str, dict[str, Any]]
    counts: dict[str, int]
    indexed_block: int | None
    indexed_time: int | None
    #: certificates submitted over time: first time, bucket width (s), count per bucket
    provisioned: tuple[int, int, list[int]]


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86_400), ("h", 3_600), ("min", 60)):
        if (seconds >= size and seconds % size == 0) or seconds >= 10 * size:
            n = round(seconds / size)
            return f"{n} {unit}{'s' if unit == 'day' and n != 1 else ''}"
    return f"{seconds} s"


def chart_svg(first: int, width: int, counts: list[int]) -> str:
    """Draw certificates submitted per time span as an inline SVG bar chart (no script)."""
    if not counts or not any(counts):
        return "<p>no certificate submitted yet</p>"
    w, h, top, bottom = 600, 120, 14, 18
    bar = w / len(counts)
    peak = max(counts)
    bars = []
    for i, n in enumerate(counts):
        height = (h - top - bottom) * n / peak
        start, stop = first + i * width, first + (i + 1) * width
        bars.append(
            f'<rect x="{i * bar + 1:.1f}" y="{h - bottom - height:.1f}" '
            f'width="{max(bar - 2, 1):.1f}" height="{height:.1f}">'
            f"<title>{n} submitted {escape(_when(start))} to {escape(_when(stop))}</title></rect>"
        )
    total = sum(counts)
    span = _duration(width)
    label = f"certificates submitted over time: {total} in {len(counts)} spans of {span}"
    return (
        f'<svg class="chart" role="img" aria-label="{escape(label)}" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>"
        f'<text x="0" y="10">peak {peak} per {span}</text>{"".join(bars)}'
        f'<text x="0" y="{h - 4}">{escape(_when(first))}</text>'
        f'<text x="{w}" y="{h - 4}" text-anchor="end">'
        f"{escape(_when(first + len(counts) * width))}</text></svg>"
    )


def overview_html(view: Overview) -> str:
    """Render members with roles, the threshold, each validator's last vote, the pending
    backlog, certificates by status and provisioning over time."""
    rows = []
    for m in view.members:
        roles = [r for bit, r in ((1, "validator"), (2, "submitter")) if m["roles"] & bit]
        if not m["active"]:
            roles = ["removed"]
        vote = view.last_votes.get(m["address"])
        if vote is not None:
            ago = None if view.indexed_block is None else view.indexed_block - vote["block"]
            behind = "" if ago is None else f", {ago} block{'' if ago == 1 else 's'} ago"
            said = f"block {vote['block']} ({escape(_when(vote['timestamp']))}{behind})"
        elif m["roles"] & 1 and m["active"]:
            said = '<span class="stale">never voted</span>'
        else:
            said = ""
        rows.append(
            f"<tr><td>{escape(m['organization'])}</td><td><code>{escape(m['address'])}</code>"
            f"</td><td>{escape(', '.join(roles))}</td><td>{said}</td></tr>"
        )
    members = (
        "<table class=members><thead><tr><th>member</th><th>address</th><th>roles</th>"
        f"<th>last vote</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    validators = sum(1 for m in view.members if m["active"] and m["roles"] & 1)
    statuses = "".join(
        f'<tr><td>{_status(label)}</td><td class="count-{escape(label)}">{n}</td></tr>'
        for label, n in sorted(view.counts.items())
    )
    pending = view.counts.get("pending", 0)
    first, width, counts = view.provisioned
    return (
        '<div class="glance">'
        f"<section><h2>Consortium</h2><p class=threshold>threshold {view.threshold} of "
        f"{validators} validators</p>{members}</section>"
        f"<section><h2>Certificates</h2><p class=backlog>{pending} pending (awaiting "
        f"validators)</p><table class=statuses><tbody>"
        f"{statuses or '<tr><td>none yet</td></tr>'}</tbody></table>"
        f"<h3>Provisioned over time</h3>{chart_svg(first, width, counts)}</section></div>"
    )


def _subject(item: dict[str, Any]) -> str:
    if item["subject"]:
        return escape(item["subject"])
    if item["subject"] == "":
        return "<em>(empty subject)</em>"
    return "<em>(unparsable)</em>"


def _index_line(health: dict[str, Any]) -> str:
    block = health.get("indexed_block")
    if block is None:
        return (
            "<p class=index>the index is empty: no block indexed yet "
            "(<code>dpki indexer run</code> fills it)</p>"
        )
    lag = health.get("lag_blocks")
    behind = f", {lag} behind the chain" if lag is not None else ", chain head unknown"
    count = health.get("certificates", 0)
    return f"<p class=index>index at block {block}{behind}; {count} certificates</p>"


_FIELDS = (
    ("id", "id or its first digits"),
    ("org", "organization"),
    ("subject", "subject"),
    ("key", "key hash"),
)


def search_page(
    query: dict[str, str],
    total: int,
    items: list[dict[str, Any]],
    health: dict[str, Any],
    error: str | None = None,
    *,
    offset: int = 0,
    limit: int = PAGE_SIZE,
    overview: str = "",
) -> str:
    """Render the consortium overview, the search form and one page of results."""
    fields = "".join(
        f'<label>{label} <input name="{name}" value="{escape(query.get(name, ""))}"></label>'
        for name, label in _FIELDS
    )
    rows = "".join(
        "<tr>"
        f'<td><a href="/ui/certificates/{quote(i["id"])}"><code>{i["id"][:16]}…</code></a></td>'
        f"<td>{_subject(i)}</td>"
        f"<td>{escape(i['organization'] or '')}</td><td>{_status(i['status'])}</td>"
        f"<td>{escape(i['not_after'] or '')}</td></tr>"
        for i in items
    )
    problem = f'<p class="error">{escape(error)}</p>' if error else ""
    shown = (
        f"<p class=found>{total} found; {offset + 1} to {offset + len(items)} shown</p>"
        if items
        else f"<p class=found>{total} found</p>"
    )
    table = (
        "<table class=results><thead><tr><th>id</th><th>subject</th><th>organization</th>"
        f"<th>status</th><th>not after</th></tr></thead><tbody>{rows}</tbody></table>"
        if items
        else ""
    )
    body = (
        f"{overview}<h2>Search</h2>{_index_line(health)}"
        f'<form method="get" action="/">{fields}<button>search</button></form>{problem}'
        f"{shown}{table}{_pages(query, total, offset, limit)}"
    )
    return _page("DPKI inquiry node", body)


def _pages(query: dict[str, str], total: int, offset: int, limit: int) -> str:
    """Links to the previous and next page, keeping the query."""
    links = []
    if offset > 0:
        links.append(_page_link(query, max(0, offset - limit), "previous", "prev"))
    if offset + limit < total:
        links.append(_page_link(query, offset + limit, "next", "next"))
    return f'<nav class="pages">{"".join(links)}</nav>' if links else ""


def _page_link(query: dict[str, str], offset: int, text: str, rel: str) -> str:
    href = "/?" + urlencode({**query, "offset": str(offset)})
    return f'<a rel="{rel}" href="{escape(href)}">{text}</a>'


def detail_page(record: dict[str, Any]) -> str:
    """Render one certificate: status, endorsers, history and PEM."""
    facts = [
        ("id", f"<code>{escape(record['id'])}</code>"),
        ("status", _status(record["status"])),
        ("reason", escape(record["reason"] or "")),
        ("valid now", "yes" if record["valid"] else "no"),
        ("subject", escape(record["subject"] or "")),
        ("issuer", escape(record["issuer"] or "")),
        ("serial", f"<code>{escape(record['serial'] or '')}</code>"),
        ("submitter", escape(f"{record['submitter_organization']} ({record['submitter']})")),
        ("not before", escape(record["not_before"] or "")),
        ("not after", escape(record["not_after"] or "")),
        ("key hash", f"<code>{escape(record['key_hash'])}</code>"),
    ]
    if record["replaces"]:
        facts.append(("renews", _link(record["replaces"])))
    if record["replaced_by"]:
        facts.append(("renewed by", _link(record["replaced_by"])))
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    endorsers = "".join(
        f"<li>{escape(e['organization'] or '?')} <code>{escape(e['address'])}</code> "
        f"at block {e['block']} ({escape(e['at'] or '')})</li>"
        for e in record["endorsers"]
    )
    rejecters = "".join(
        f"<li>{escape(e['organization'] or '?')} <code>{escape(e['address'])}</code>: "
        f"{escape(e['reason'] or '')}</li>"
        for e in record["rejecters"]
    )
    history = "".join(
        f"<tr><td>{escape(h['at'] or '')}</td><td>{escape(h['event'])}</td>"
        f"<td>{_status(h['status'])}</td><td>{escape(h['reason'] or '')}</td>"
        f"<td>{escape(h['actor_organization'] or h['actor'])}</td>"
        f"<td>{h['block']} / {h['log_index']}</td></tr>"
        for h in record["history"]
    )
    body = (
        f"<h2>{escape(record['subject'] or record['id'])}</h2><table>{table}</table>"
        f"<h3>Endorsed by</h3><ul class=endorsers>{endorsers or '<li>none</li>'}</ul>"
        + (f"<h3>Rejected by</h3><ul>{rejecters}</ul>" if rejecters else "")
        + "<h3>History</h3><table class=history><thead><tr><th>time</th><th>event</th>"
        "<th>status</th><th>reason</th><th>by</th><th>block / log</th></tr></thead>"
        f"<tbody>{history}</tbody></table>"
        f"<h3>PEM</h3><pre class=pem>{escape(record['pem'])}</pre>"
        f'<p><a href="/certificates/{quote(record["id"])}">JSON</a></p>'
    )
    return _page(f"DPKI certificate {record['id'][:16]}", body)


def _link(cert_id: str) -> str:
    return f'<a href="/ui/certificates/{quote(cert_id)}"><code>{escape(cert_id[:16])}…</code></a>'

"""The inquiry node's web page: search, status, endorsers, history and PEM (server-rendered)."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

__all__ = ["detail_page", "error_page", "search_page"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem;
text-align:left;font-size:.9rem;vertical-align:top}code,pre{font-size:.8rem}
.s-active{color:#060}.s-revoked,.s-rejected{color:#a00}.s-suspended,.s-superseded{color:#a60}
.s-pending{color:#555}form input{margin-right:.5rem}
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


def search_page(
    query: dict[str, str],
    total: int,
    items: list[dict[str, Any]],
    health: dict[str, Any],
    error: str | None = None,
) -> str:
    """Render the search form and a result table."""
    fields = "".join(
        f'<label>{label} <input name="{name}" value="{escape(query.get(name, ""))}"></label>'
        for name, label in (("id", "id"), ("org", "organization"), ("subject", "subject"))
    )
    rows = "".join(
        "<tr>"
        f'<td><a href="/ui/certificates/{quote(i["id"])}"><code>{i["id"][:16]}…</code></a></td>'
        f"<td>{escape(i['subject'] or '(unparsable)')}</td>"
        f"<td>{escape(i['organization'] or '')}</td><td>{_status(i['status'])}</td>"
        f"<td>{escape(i['not_after'] or '')}</td></tr>"
        for i in items
    )
    lag = health.get("lag_blocks")
    head = (
        f"<p>index at block {health.get('indexed_block')}"
        + (f", {lag} behind the chain" if lag is not None else ", chain head unknown")
        + f"; {health.get('certificates', 0)} certificates</p>"
    )
    problem = f'<p class="error">{escape(error)}</p>' if error else ""
    body = (
        f'{head}<form method="get" action="/">{fields}<button>search</button></form>{problem}'
        f"<p>{total} found</p><table><thead><tr><th>id</th><th>subject</th><th>organization</th>"
        f"<th>status</th><th>not after</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return _page("DPKI inquiry node", body)


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

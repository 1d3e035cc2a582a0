"""Server-rendered pages of the UI plugin: plain HTML with inline CSS, every value escaped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.2rem;color:#1d2330;background:#fff}
h1{font-size:1.35rem;margin:0 0 .6rem} h2{font-size:1.1rem;margin:1.4rem 0 .5rem}
table{border-collapse:collapse;font-size:.9rem;margin:.3rem 0} th,td{border-bottom:1px solid #e3e6ec;padding:.3rem .6rem;
text-align:left;vertical-align:top} th{background:#f4f6f9;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums}
a{color:#1a5fb4} code{background:#f4f6f9;padding:0 .25rem;border-radius:3px} .muted{color:#6b7280}
.box{border:1px solid #e3e6ec;border-radius:6px;padding:.8rem 1rem;margin:.6rem 0;background:#fafbfc}
.warn{border-color:#f0c36d;background:#fff8e6} .err{border-color:#e8a0a0;background:#fff1f1}
nav{margin-bottom:.8rem;font-size:.9rem}
"""


def e(value: Any) -> str:
    """Escape a value for HTML text or a quoted attribute (``None`` shows as an empty string)."""
    return "" if value is None else escape(str(value), quote=True)


def seg(value: Any) -> str:
    """Quote one URL path segment (``/``, ``?``, ``#``, ``..`` cannot escape it)."""
    return quote(str(value), safe="")


def link(href: str, text: Any) -> str:
    return f'<a href="{e(href)}">{e(text)}</a>'


def page(title: str, body: str, *, crumbs: Sequence[tuple[str, str | None]] = ()) -> str:
    """A whole page. ``body`` must already be escaped HTML; ``crumbs`` are (text, href or None)."""
    nav = ""
    if crumbs:
        nav = "<nav>" + " / ".join(link(h, t) if h else e(t) for t, h in crumbs) + "</nav>"
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{e(title)}</title>"
        f"<style>{CSS}</style></head><body>{nav}<h1>{e(title)}</h1>{body}</body></html>"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Sequence[int] = ()) -> str:
    """A table; cells must already be escaped HTML. ``numeric``: column indices aligned right."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}" class="muted">none</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def counts_text(counts: dict[str, Any] | None) -> str:
    """``processed 10 · selected 3 · …`` from a commit's counts (escaped)."""
    if not counts:
        return ""
    return " · ".join(f"{e(k)} {e(v)}" for k, v in counts.items() if not isinstance(v, (dict, list)))

"""Server-rendered pages of the UI plugin: plain HTML with inline CSS, every value escaped.

A filter histogram's bars outside the chosen range are hollow (a faint fill inside an outline in the accent colour):
faded to 25 % they were 1.4:1 on the light page and 1.6:1 on the dark one, under WCAG's 3:1 for graphical objects;
a fade that keeps 3:1 (70 %) left them hardly apart from the bars inside (5.2:1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

CSS = """
:root{--fg:#1d2330;--bg:#fff;--muted:#6b7280;--line:#e3e6ec;--head:#f4f6f9;--box:#fafbfc;--link:#1a5fb4;
--warnb:#f0c36d;--warnbg:#fff8e6;--errb:#e8a0a0;--errbg:#fff1f1;--okb:#9fd3a8;--okbg:#effaf1;--accent:#2563eb;--card:#fff;
--onaccent:#fff;color-scheme:light}
html[data-theme=dark]{--fg:#e5e7eb;--bg:#111827;--muted:#9ca3af;--line:#374151;--head:#1f2937;--box:#1a2230;
--link:#8ab4f8;--warnb:#a16207;--warnbg:#2a2110;--errb:#b91c1c;--errbg:#2b1414;--okb:#15803d;--okbg:#10251a;
--accent:#60a5fa;--card:#1f2937;--onaccent:#111827;color-scheme:dark}
@media (prefers-color-scheme: dark){html:not([data-theme=light]){--fg:#e5e7eb;--bg:#111827;--muted:#9ca3af;
--line:#374151;--head:#1f2937;--box:#1a2230;--link:#8ab4f8;--warnb:#a16207;--warnbg:#2a2110;--errb:#b91c1c;
--errbg:#2b1414;--okb:#15803d;--okbg:#10251a;--accent:#60a5fa;--card:#1f2937;--onaccent:#111827;color-scheme:dark}}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.2rem;color:var(--fg);background:var(--bg)}
h1{font-size:1.35rem;margin:0 0 .6rem} h2{font-size:1.1rem;margin:1.4rem 0 .5rem} h3{font-size:1rem;margin:1rem 0 .4rem}
table{border-collapse:collapse;font-size:.9rem;margin:.3rem 0} th,td{border-bottom:1px solid var(--line);padding:.3rem .6rem;
text-align:left;vertical-align:top} th{background:var(--head);font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums}
a{color:var(--link)} code{background:var(--head);padding:0 .25rem;border-radius:3px;word-break:normal;overflow-wrap:anywhere} .muted{color:var(--muted)}
.box{border:1px solid var(--line);border-radius:6px;padding:.8rem 1rem;margin:.6rem 0;background:var(--box)}
.box>p:first-child{margin-top:0} .box>p:last-child{margin-bottom:0}
.warn{border-color:var(--warnb);background:var(--warnbg)} .err{border-color:var(--errb);background:var(--errbg)}
.ok{border-color:var(--okb);background:var(--okbg)}
nav{margin-bottom:.8rem;font-size:.9rem} nav.tabs a{margin-right:.9rem}
.layout{display:flex;gap:1.2rem;align-items:flex-start} .side{flex:0 0 17rem;font-size:.85rem} .main{flex:1;min-width:0}
@media (max-width:760px){.layout{flex-direction:column;align-items:stretch} .side{flex:none}}
.layout.no-picture{display:block} .layout.no-picture>.side{float:right;width:17rem;margin:0 0 .6rem 1.2rem}
@media (max-width:760px){.layout.no-picture>.side{float:none;width:auto;margin:0}}
.side fieldset{border:1px solid var(--line);border-radius:6px;margin:0 0 .6rem;padding:.4rem .6rem}
.side legend{font-weight:600} .side label{display:block;margin:.15rem 0;overflow-wrap:anywhere}
td:first-child:not(.n):not(.name){overflow-wrap:anywhere} td.name{overflow-wrap:normal;word-break:normal}
@media (min-width:761px){td.name{white-space:nowrap} td.name wbr{display:none} .side td.name{white-space:normal}
.side td.name wbr{display:inline}} td code{overflow-wrap:break-word} .long{overflow-wrap:anywhere} .hscroll{overflow-x:auto;max-width:100%} .nowrap{white-space:nowrap}
input,select,button{font:inherit;color:var(--fg);background:var(--bg);border:1px solid var(--line);border-radius:4px;padding:.15rem .35rem}
button{cursor:pointer;background:var(--head)} button.primary{background:var(--accent);color:var(--onaccent);border-color:var(--accent)}
.skip{position:absolute;left:-9999px} .skip:focus{left:1rem;top:.4rem;z-index:10;background:var(--bg);padding:.3rem .6rem;
border:2px solid var(--accent);border-radius:4px}
@media (max-width:760px){.side.filters{max-height:50vh;overflow-y:auto}}
@media (max-width:600px){table.stack thead{display:none} table.stack tr{display:block;border-bottom:1px solid var(--line);
padding:.3rem 0} table.stack td{display:block;border:0;padding:.1rem .6rem;text-align:left}
table.stack td[data-label]::before{content:attr(data-label) ": ";color:var(--muted)}
table.stack td:first-child{font-weight:600} table.stack td:empty{display:none}}
.range input{width:6.2rem} svg.hist{display:block;width:13rem;height:1.6rem;margin:.1rem 0}
svg.hist rect{fill:var(--accent)}
svg.hist rect.out{fill-opacity:.2;stroke:var(--accent);stroke-width:1px;vector-effect:non-scaling-stroke}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(var(--cell,150px),1fr));gap:.6rem;margin:.6rem 0}
.card{border:1px solid var(--line);border-radius:6px;background:var(--card);overflow:hidden;font-size:.78rem}
.card a.thumb{display:flex;align-items:center;justify-content:center;height:calc(var(--cell,150px) - 10px);
background:var(--head)} .card img{width:100%;height:100%;object-fit:contain;display:block}
.card .cap{padding:.3rem .4rem;overflow-wrap:anywhere} .cap input{margin:0 .3rem 0 0;vertical-align:middle} .cellsize input{width:7rem;vertical-align:middle}
.card .cap b{font-variant-numeric:tabular-nums} .sel{outline:2px solid var(--accent)}
select.sort{max-width:14rem;text-overflow:ellipsis} select{max-width:100%}
.toolbar{display:flex;flex-wrap:wrap;gap:.6rem;align-items:center;margin:.4rem 0}
.bar{display:inline-block;height:.7rem;background:var(--accent);vertical-align:middle}
.pill{display:inline-block;border:1px solid var(--line);border-radius:999px;padding:0 .5rem;margin:0 .2rem .2rem 0;font-size:.8rem}
.figure{position:relative;display:block;width:min(100%,520px)} .figure img{width:100%;display:block}
.figure svg{position:absolute;left:0;top:0;width:100%;height:100%} .figure.crop{width:auto}
.figure.crop img{width:auto;min-width:200px;max-width:min(100%,420px);image-rendering:pixelated}
video.player{display:block;width:min(100%,520px);background:#000}
.figure video.live{position:absolute;left:0;top:0;width:100%;height:100%;object-fit:contain;background:#000}
.figure video.live[hidden]{display:none}
.live-btn{position:absolute;left:.5rem;top:.5rem;font-size:.7rem;font-weight:700;letter-spacing:.08em;color:#fff;
background:rgba(17,24,39,.72);border:1px solid rgba(255,255,255,.85);border-radius:999px;padding:.1rem .55rem}
.live-btn[aria-pressed=true]{background:#f59e0b;border-color:#f59e0b;color:#111827}
.live-btn[aria-disabled=true]{cursor:not-allowed;opacity:.7;text-decoration:line-through}
.card.obj img{width:100%;height:120px;object-fit:contain;image-rendering:pixelated}
.card.obj .cap{word-break:normal;overflow-wrap:anywhere} .figure svg a{cursor:pointer}
#map{width:100%;max-width:900px;aspect-ratio:4/3;border:1px solid var(--line);border-radius:6px;background:var(--box);cursor:crosshair}
#hover{position:fixed;pointer-events:none;display:none;background:var(--card);border:1px solid var(--line);border-radius:6px;
padding:.3rem;font-size:.75rem;max-width:220px;z-index:5} #hover img{max-width:200px;max-height:160px;display:block}
#hover div{overflow-wrap:anywhere;margin-top:.15rem} #hover .hover-value{color:var(--muted)}
.legend .sw,.cap .sw{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.25rem;vertical-align:middle}
.legend .sw.ramp{width:4rem}
"""


def e(value: Any) -> str:
    """Escape a value for HTML text or a quoted attribute (``None`` shows as an empty string)."""
    return "" if value is None else escape(str(value), quote=True)


def breakable(name: Any) -> str:
    """A column name escaped, with a line-break opportunity after each ``.`` and ``_``
    (``selection.<wbr>object_<wbr>distance``): a narrow column wraps it between its parts, not inside a word."""
    return e(name).replace(".", ".<wbr>").replace("_", "_<wbr>")


def seg(value: Any) -> str:
    """Quote one URL path segment (``/``, ``?``, ``#``, ``..`` cannot escape it)."""
    return quote(str(value), safe="")


def link(href: str, text: Any, *, rel: str | None = None) -> str:
    """An escaped link; ``rel="prev"``/``"next"`` links are what the ← and → keys follow (``static/keys.js``)."""
    rel_attr = f' rel="{e(rel)}"' if rel else ""
    return f'<a href="{e(href)}"{rel_attr}>{e(text)}</a>'


#: where Airflow mounts the plugin's app (``plugin.py``); its pages link to Airflow's own from there
URL_PREFIX = "/lightly"


def airflow_link(root: str, path: str, text: Any) -> str:
    """A link to Airflow's own UI page ``path`` (e.g. ``/required_actions``) from a page of the app mounted at
    ``root`` (``/lightly`` behind any prefix of Airflow's ``base_url``), opened in the whole window (the plugin's
    pages are shown in an iframe of Airflow's UI)."""
    return f'<a href="{e(root.removesuffix(URL_PREFIX) + path)}" target="_top">{e(text)}</a>'


def page(
    title: str, body: str, *, crumbs: Sequence[tuple[str, str | None]] = (), scripts: Sequence[str] = (),
    static: str | None = None, skip: tuple[str, str] | None = None,
) -> str:
    """A whole page. ``body`` must already be escaped HTML; ``crumbs`` are (text, href or None).

    :param scripts: URLs of the plugin's own scripts (same origin; the CSP allows nothing else).
    :param static: URL of the plugin's static folder: adds the theme script (follows Airflow's light/dark mode).
    :param skip: (element id, text): the page's first focusable element, a link to that element, shown only while it
        has the keyboard's focus (a page whose filter panel comes first: ``CSS`` ``.skip``).
    """
    nav = ""
    if skip:
        nav = f'<a class="skip" href="#{e(skip[0])}">{e(skip[1])}</a>'
    if crumbs:
        nav += "<nav>" + " / ".join(link(h, t) if h else e(t) for t, h in crumbs) + "</nav>"
    srcs = ([f"{static}/theme.js"] if static else []) + list(scripts)
    tags = "".join(f'<script src="{e(s)}"{"" if s.endswith("/theme.js") else " defer"}></script>' for s in srcs)
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{e(title)}</title>"
        f"<style>{CSS}</style>{tags}</head><body>{nav}<h1>{e(title)}</h1>{body}</body></html>"
    )


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Sequence[int] = (), names: bool = False,
    stacked: bool = False,
) -> str:
    """A table; cells must already be escaped HTML. ``numeric``: column indices aligned right. ``names``: the first
    column holds column names made :func:`breakable`: they wrap only there (after ``.`` and ``_``), never inside a
    word (``status_rea`` / ``son``), where other first-column cells may wrap anywhere (``CSS``: ``td.name``); outside the
    narrow side column and narrow windows not at all (a sample's 330-character key, a long value, squeezed the names
    to ``commit_`` / ``version``). ``stacked``: in a window under 600 px each row is a block, its first cell its title
    (named by its column too where it is a number: ``Version: 3``), each other cell a line named by its column
    (``data-label``; a column without a name, of links, unnamed): a wide table (the home page's), or one whose first
    column a narrow window squeezed to a letter a line (the datapool page's tags: ``initi`` / ``al-`` / ``tag``)."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = []

    def cell(i: int, c: str) -> str:
        label = (f' data-label="{e(headers[i])}"' if stacked and i < len(headers) and headers[i]
                 and (i > 0 or i in numeric) else "")
        if i in numeric:
            return f'<td class="n"{label}>{c}</td>'
        return f'<td class="name">{c}</td>' if names and i == 0 else f"<td{label}>{c}</td>"

    for row in rows:
        cells = "".join(cell(i, c) for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}" class="muted">none</td></tr>')
    # (a table of facts has no column names: no empty header row drawn as a blank bar above it)
    thead = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""
    opening = '<table class="stack">' if stacked else "<table>"
    return f"{opening}{thead}<tbody>{''.join(body)}</tbody></table>"


def counts_text(counts: dict[str, Any] | None) -> str:
    """``processed 10 · selected 3 · …`` from a commit's counts (escaped)."""
    if not counts:
        return ""
    return " · ".join(f"{e(k)} {e(v)}" for k, v in counts.items() if not isinstance(v, (dict, list)))

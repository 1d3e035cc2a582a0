"""The FastAPI app the Lightly UI plugin mounts at ``/lightly`` in the Airflow API server.

Every route sits behind Airflow's own authentication (:data:`AUTHENTICATED`: a bearer token or the UI's
``_token`` cookie); the run routes also check that the user may read the DAG's runs (:data:`CAN_READ_RUNS`).
Datapools are named by their configured name only (:mod:`lightly_airflow.plugins.config`).

HTML routes (relative to the mount point):

- ``GET /`` — the configured datapools;
- ``GET /pools/{pool}?offset=&tag_offset=&before=&tags_before=`` — versions (newest first) with counts and report
  links, and tags with counts, :data:`~.pages.RECENT` of each a page (its links page by the cursors ``before`` /
  ``tags_before``: :func:`~.data.page_of`);
- ``GET /pools/{pool}/tags/{tag}?offset=&limit=&version=`` — a tag's samples (key, run, status, pick rank), paged;
  its links keep the version the first page read (``version``: :func:`~.data.tag_samples`);
- ``GET /pools/{pool}/reports/{folder}/{file}`` — a run's report files (``index.html``, PNGs, ``problems.parquet``);
- ``GET /runs/{dag_id}/{run_id}`` — the DAG-run tab: redirects to the run's report or says why there is none.

JSON: the same under ``/api/`` (``/api/pools``, ``/api/pools/{pool}``, ``/api/pools/{pool}/tags/{tag}``,
``/api/runs/{dag_id}/{run_id}``); ``/api/pools/{pool}`` pages its versions (``offset``, ``limit``, the cursor
``before``) and tags (``tag_offset``, ``tag_limit``, ``tags_before``), :data:`~.pages.RECENT` of each by default and
:data:`MAX_OVERVIEW_PAGE` at most, with their totals and the next and previous pages' parameters in ``paging``;
``/api/pools/{pool}/tags/{tag}`` pages its keys (``offset``, ``limit``) in one pool version (``version``, the
latest unless given), its ``paging`` naming the version it read.

Query parameters are declared with FastAPI's ``Query(ge=, le=, pattern=)``; a bad value answers 400 (not FastAPI's
422) naming the parameter, what it must be and the value given (:func:`_bad_parameters`): JSON ``{"detail": ...}``
under ``/api/``, the app's error page elsewhere.
"""

from __future__ import annotations

import logging
import re
from typing import Any, get_args
from urllib.parse import quote, urlencode, urlsplit

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import (
    get_user,
    requires_access_asset,
    requires_access_dag,
    requires_authenticated,
)
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from lightly_airflow import columns as C
from lightly_airflow.plugins import data as D
from lightly_airflow.plugins import html as H
from lightly_airflow.plugins.config import (
    DatapoolsConfigError,
    PoolSpec,
    configured_datapools,
)

log = logging.getLogger(__name__)

#: Airflow's "any signed-in user" check; module-level so tests can override exactly this dependency.
AUTHENTICATED = requires_authenticated()
#: Airflow's "may read this DAG's runs" check (``dag_id`` comes from the path).
CAN_READ_RUNS = requires_access_dag("GET", DagAccessEntity.RUN)
#: Making a tag writes a datapool version: Airflow's "may create asset events" permission.
CAN_TAG = requires_access_asset("POST")
#: The signed-in user (recorded in the commit of a hand-made tag).
CURRENT_USER = get_user

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
#: Most versions (``limit``) and tags (``tag_limit``) one answer of ``GET /api/pools/{pool}`` lists.
MAX_OVERVIEW_PAGE = 500
#: Our pages and the reports need no script and load nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-cache",
    "Referrer-Policy": "same-origin",
}


def _root(request: Request) -> str:
    """The URL path the app is mounted at (``/lightly`` in Airflow, plus any proxy prefix)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _html(body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)


def _pool(name: str) -> PoolSpec:
    pools = configured_datapools()
    spec = pools.get(name)
    if spec is None:
        raise D.NotFoundError(f"No datapool named {name!r} is configured ([lightly] datapools).")
    return spec


def _is_api(request: Request) -> bool:
    route = request.scope.get("route")
    return bool(route is not None and getattr(route, "path", "").startswith("/api/"))


def _error(request: Request, status_code: int, title: str, message: str) -> Response:
    if _is_api(request):
        return JSONResponse({"detail": message}, status_code=status_code, headers={"Cache-Control": "no-store"})
    body = f'<div class="box err">{H.e(message)}</div>' + _back_link(request)
    root = _root(request)  # (theme.js: the page follows Airflow's light or dark mode, as the others do)
    return _html(H.page(title, body, crumbs=[("Datapools", f"{root}/")], static=f"{root}/static"), status_code)


def _host(request: Request) -> str:
    """The host the browser sent the request to (behind a proxy: the one it forwarded), for same-site checks."""
    return request.headers.get("x-forwarded-host") or request.headers.get("host") or ""


def _back_link(request: Request) -> str:
    """Under a refused form (a tag name taken, a tag that would be empty): a link back to the page it was sent from
    (its ``Referer``, this site's only: path and query), where the filters and the ticked samples still are; the
    error page's only other link is the list of datapools."""
    referer = request.headers.get("referer")
    if request.method != "POST" or not referer:
        return ""
    came = urlsplit(referer)
    if came.netloc != _host(request) or not came.path.startswith("/"):
        return ""
    back = came.path + (f"?{came.query}" if came.query else "")
    return f"<p>{H.link(back, '← back to the page you came from')} (the browser's back button keeps what you typed)</p>"


def _login_url(next_url: str) -> str | None:
    """Airflow's login page that sends the user back to ``next_url`` (``None`` without an auth manager)."""
    try:
        from airflow.api_fastapi.app import get_auth_manager

        return str(get_auth_manager().get_url_login(next_url=next_url))
    except Exception:  # noqa: BLE001 - no auth manager yet: the plain 401 stands
        return None


#: A ``Query(pattern=)`` of plain alternatives (``^(asc|desc)$``): said as "one of asc, desc".
_CHOICES = re.compile(r"\^\(([\w.-]+(?:\|[\w.-]+)*)\)\$")


def _bad_parameters(request: Request, exc: RequestValidationError) -> str:
    """What the 400 answer to a request FastAPI refused says: a sentence a bad parameter, naming it, what it must be
    and the value given (``limit must be a whole number from 1 to 500, got '0'.``). What it must be comes from the
    route's own declaration of the parameter (``Query(ge=, le=, pattern=)`` and its type: a parameter that is no
    number at all has no bound in its error) and the error's ``ctx``; any other error: pydantic's words."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    said = []
    for err in exc.errors():
        where, name = str(err["loc"][0]), str(err["loc"][-1])
        field = next((f for f in getattr(dependant, f"{where}_params", []) if f.alias == name), None)
        rules: dict[str, Any] = {}
        for meta in field.field_info.metadata if field is not None else []:
            rules.update({k: getattr(meta, k) for k in ("ge", "le", "pattern") if getattr(meta, k, None) is not None})
        rules.update({k: v for k, v in (err.get("ctx") or {}).items() if k in ("ge", "le", "pattern")})
        kind = field.field_info.annotation if field is not None else None
        choices = _CHOICES.fullmatch(str(rules.get("pattern", "")))
        if err["type"].startswith("int_") or int in (kind, *get_args(kind)):
            ge, le = rules.get("ge"), rules.get("le")
            must = "a whole number" + (f" from {ge} to {le}" if ge is not None and le is not None else
                                       f" from {ge} up" if ge is not None else f" up to {le}" if le is not None else "")
        elif choices:
            must = "one of " + ", ".join(choices.group(1).split("|"))
        elif "pattern" in rules:
            must = f"text matching {rules['pattern']}"
        else:
            said.append(f"{name}: {err['msg']}, got {err.get('input')!r}.")
            continue
        said.append(f"{name} must be {must}, got {err.get('input')!r}.")
    return " ".join(said)


def _report_url(root: str, pool: str, slug: str, filename: str = D.REPORT_INDEX) -> str:
    return f"{root}/pools/{H.seg(pool)}/reports/{H.seg(slug)}/{H.seg(filename)}"


# ------------------------------------------------------------------------------------------------ pages
def _summary_cells(spec: PoolSpec) -> tuple[str, str, str, str]:
    """A pool's latest version, its commit time, its samples (distinct, else "processed", summed) and selected
    (:func:`~.data.pool_summary`); a pool that cannot be read says why in its row and leaves the others listed."""
    try:
        got = D.pool_summary(spec)
    except Exception as exc:  # (an unreachable bucket, bad credentials: one pool must not blank the list)
        log.warning("Datapool %s (%s): cannot read its history for the home page: %s", spec.name, spec.uri, exc)
        return (f'<span class="muted">cannot read: {H.e(str(exc)[:300])}</span>', "", "", "")
    if not got["exists"]:
        return ('<span class="muted">no commit yet</span>', "", "", "")
    selected = H.e(f"{got['selected']:,}") if got["selected"] is not None else (
        '<span class="muted" title="its latest commit recorded no count: the pool page counts it">—</span>')
    when = got["timestamp"].strftime("%Y-%m-%d %H:%M UTC") if got["timestamp"] else ""
    count = H.e(f"{got['samples']:,}")
    samples = count if got["exact"] else (
        f'<span title="its runs\' processed counts, summed: a sample processed again counts once a run">{count} '
        "processed</span>")
    return H.e(got["version"]), H.e(when), samples, selected


def _index_page(root: str, pools: dict[str, PoolSpec]) -> str:
    rows = [
        (H.link(f"{root}/pools/{H.seg(p.name)}", p.name), *_summary_cells(p), f"<code>{H.e(p.uri)}</code>",
         H.e(p.conn_id or "ambient"))
        for p in pools.values()
    ]
    # (seven columns: a window under 600 px lays each pool out as a block of labelled lines, ``H.table``'s
    # ``stacked``; it scrolled the table sideways, 799 px wide in a 400 px window, its counts out of sight)
    body = ('<div class="hscroll">' + H.table(["Datapool", "Latest version", "Committed", "Samples", "Selected", "URI",
                                               "Connection"], rows, numeric=(1, 3, 4), stacked=True) + "</div>"
            + '<p class="muted">Samples: the images and video frames of its latest version, each once however '
            f'many runs processed it; for a pool of more than {D.EXACT_SAMPLES_ROWS:,} rows or '
            f'{D.EXACT_SAMPLES_FILES} data files, "processed": its '
            'runs\' counts, summed (one processed again counts once a run; a compaction brings the files under). '
            f'Selected: in <code class="nowrap">{H.e(C.INITIAL_TAG)}</code>, from each pool\'s log.</p>')
    if not pools:
        body = (
            '<div class="box warn">No datapools are configured. Set <code>[lightly] datapools</code> (or '
            "<code>AIRFLOW__LIGHTLY__DATAPOOLS</code> / <code>LIGHTLY_DATAPOOLS</code>) to a JSON object like "
            '<code>{"main": {"uri": "s3://bucket/pool", "conn_id": "aws_default"}}</code>.</div>'
        )
    return H.page("Datapools", body)


def _proposal_cells(w: dict[str, Any]) -> tuple[str, str, str]:
    """A proposal's run (not broken inside a word: a wide Review column squeezed it to ``manua`` / ``l__min``),
    picks and the pool version its selection read (:func:`~.data.proposals_awaiting_review`). Its tables are
    ``stacked`` in a narrow window (six columns overflowed a 400 px page to 514 px)."""
    picks = "record unreadable" if w["picks"] is None else (
        f"{w['picks']} of {w['candidates']} candidates" if w["candidates"] is not None else f"{w['picks']} picks")
    read = "the empty datapool" if w["version"] is None else f"version {w['version']}"
    return f'<span class="nowrap">{H.e(w["run_id"] or w["slug"])}</span>', H.e(picks), H.e(read)


def _awaiting_review(root: str, name: str, waiting: list[dict[str, Any]]) -> str:
    """The proposals a reviewer has not answered yet (``LIGHTLY_REVIEW``), with their reports: answered in
    Airflow's Required Actions."""
    if not waiting:
        return ""
    rows = [(*_proposal_cells(w), H.e(w["warnings"] or 0), "waits for a reviewer",
             H.link(_report_url(root, name, w["slug"]), "report")) for w in waiting]
    return (f'<h2>Awaiting review ({len(waiting)})</h2><p>Proposed selections that count only once a reviewer '
            f'answers <b>Commit</b> in Airflow\'s {H.airflow_link(root, "/required_actions", "Required Actions")} (or '
            '<b>Discard</b>); nothing of them is in the datapool yet.</p>'
            + '<div class="hscroll">' + H.table(["Run", "Proposed", "Selection read", "Warnings", "Review", "Report"],
                                                rows, numeric=(3,), stacked=True) + "</div>")


def _not_committed(root: str, name: str, refused: list[dict[str, Any]]) -> str:
    """The proposals whose reviewer's Commit the run refused (the datapool changed meanwhile, or part of a
    sequence left out): nothing awaits a reviewer; the reviewer's decision, why nothing was committed and the fix
    (clear the run's select task to propose again)."""
    if not refused:
        return ""
    rows = [(*_proposal_cells(w), H.e((w.get("review") or {}).get("text") or "approved, not committed"),
             H.link(_report_url(root, name, w["slug"]), "report")) for w in refused]
    return (f'<h2>Approved, not committed ({len(refused)})</h2><p>A reviewer answered <b>Commit</b>, but the '
            'proposal could not be committed as reviewed, so nothing of it is in the datapool. Nothing awaits a '
            'reviewer here: to propose again on the datapool as it is now, clear the run\'s '
            '<code>select_and_commit</code> task in Airflow (the Review column says why).</p>'
            + '<div class="hscroll">' + H.table(["Run", "Proposed", "Selection read", "Review", "Report"], rows,
                                                stacked=True) + "</div>")


def _list_pager(here: str, anchor: str, paging: dict[str, Any], keep: dict[str, int | None], *,
                sized: bool = False) -> str:
    """The pool page's (``here``) pager of its list ``anchor``: ``paging``'s ``previous`` and ``next`` queries
    (:func:`~.data.page_of`: a cursor where they page through versions) without their size (the page shows
    :data:`~.pages.RECENT`) unless ``sized``, the other list kept where it is (``keep``: its query). The tag page's
    pager too (:func:`~.data.tag_samples`: the pinned version; no ``anchor``, its ``limit`` kept)."""

    def href(query: dict[str, int]) -> str:
        params = [(k, v) for k, v in {**keep, **query}.items()
                  if v is not None and (sized or not k.endswith("limit"))]
        return f"{here}?{urlencode(params)}" + (f"#{anchor}" if anchor else "")

    links = [H.link(href(paging[at]), text) for at, text in (("previous", "← previous"), ("next", "next →"))
             if paging[at] is not None]
    return f"<p>{' · '.join(links)}</p>" if links else ""


def _shown(offset: int, count: int, total: int) -> str:
    return f'<p class="muted">{offset + 1}–{offset + count} of {total:,}, newest first.</p>' if count < total else ""


def _overview_page(root: str, ov: dict[str, Any], versions_at: dict[str, int | None],
                   tags_at: dict[str, int | None]) -> str:
    """A page of a pool's versions and tags, newest first (``initial-tag`` on top): :func:`~.data.overview`, asked
    with the query ``versions_at`` (``offset``, ``before``) and ``tags_at`` (``tag_offset``, ``tags_before``)."""
    name = ov["name"]
    crumbs = [("Datapools", f"{root}/"), (name, None)]
    head = f'<p class="muted"><code>{H.e(ov["uri"])}</code></p>'
    waiting = (_awaiting_review(root, name, ov.get("awaiting_review") or [])
               + _not_committed(root, name, ov.get("not_committed_after_review") or []))
    if not ov["exists"]:
        body = head + '<div class="box warn">No run has committed to this datapool yet.</div>' + waiting
        return H.page(f"Datapool {name}", body, crumbs=crumbs)
    samples = f"{root}/pools/{H.seg(name)}/samples"
    versions, tags = ov["paging"]["history"], ov["paging"]["tags"]
    offset, tag_offset = versions["offset"], tags["offset"]  # (their places in the lists)
    tag_rows = [
        (
            H.link(f"{samples}?tag={quote(t['name'], safe='')}", t["name"]),
            H.e(t["count"]),
            H.e(t["version"]),
            H.e(t["run_id"] or (f"by hand ({t['made_by']})" if t.get("made_by") else "by hand" if "made_by" in t else "")),
            H.link(f"{root}/pools/{H.seg(name)}/map?tag={quote(t['name'], safe='')}", "map") + " · "
            + H.link(f"{root}/pools/{H.seg(name)}/tags/{H.seg(t['name'])}", "key list"),
        )
        for t in ov["tags"]
    ]
    from lightly_airflow.datapool.reclaim import describe_vacuum

    hist_rows = []
    vacuums = sorted(ov.get("vacuums") or [], key=lambda v: str(v.get("started_at")), reverse=True)
    for h in ov["history"]:
        # A vacuum adds no version: shown above the version that was the latest when it ran (newest first).
        for v in [v for v in vacuums if v.get("version") == h["version"]]:
            hist_rows.append(('<span class="muted">—</span>', H.e(v.get("started_at") or ""), "vacuum", "", "", "", "",
                              H.e(describe_vacuum(v)), "", ""))
        report = H.link(_report_url(root, name, h["report"]), "report") if h["report"] else '<span class="muted">—</span>'
        browse = (f'<span class="muted" title="a vacuum deleted files this version needs">vacuumed (files deleted '
                  f'{H.e(h["vacuumed"])})</span>' if h.get("vacuumed")
                  else H.link(f"{samples}?version={h['version']}", "browse"))
        hist_rows.append((
            H.e(h["version"]), H.e(h["timestamp"] or ""),
            (H.link(f"{samples}?run={quote(h['run_id'], safe='')}", h["run_id"]) if h["run_id"]
             else H.e(h["operation"] or "")),
            H.e(h["dag_id"] or ""),
            H.e(h["tag"] or ""), H.e(h["rows"] if h["rows"] is not None else ""),
            H.e(h["selected"] if h["selected"] is not None else ""), H.counts_text(h["counts"]), report, browse,
        ))
    here = f"{root}/pools/{H.seg(name)}"
    nav = (
        f'<nav class="tabs">{H.link(samples, "Samples")} {H.link(f"{root}/pools/{H.seg(name)}/map", "Map")} '
        f'{H.link(f"{root}/pools/{H.seg(name)}/compare", "Compare tags")} <b>Versions &amp; tags</b></nav>'
    )
    body = (
        f"{nav}{head}<p>Latest version <b>{H.e(ov['version'])}</b>.</p>{waiting}"
        '<section id="tags"><h2>Tags</h2>' + _shown(tag_offset, len(tag_rows), tags["total"])
        # (stacked in a narrow window: at 400 px the tag column, squeezed by the run ids, broke the tag names a letter
        # or three a line, and the run ids scrolled out of sight)
        + '<div class="hscroll">' + H.table(["Tag", "Samples", "Version", "Run", ""], tag_rows, numeric=(1, 2),
                                            stacked=True)
        + "</div>"
        + _list_pager(here, "tags", tags, versions_at) + "</section>"
        + '<section id="versions"><h2>Versions</h2>' + _shown(offset, len(ov["history"]), versions["total"])
        # (ten columns, stacked in a narrow window: scrolling sideways, the counts squeezed to a word a line made each
        # version 170 px tall at 400 px, its run, report and browse links out of sight)
        + '<div class="hscroll">'
        + H.table(["Version", "Committed", "Run", "DAG", "Tag", "Rows", "Selected", "Counts", "Report", ""], hist_rows,
                  numeric=(0, 5, 6), stacked=True)
        + "</div>"
        + _list_pager(here, "versions", versions, tags_at) + "</section>"
    )
    return H.page(f"Datapool {name}", body, crumbs=crumbs, static=f"{root}/static")


def _tag_page(root: str, page: dict[str, Any]) -> str:
    name, tag = page["datapool"], page["tag"]
    base = f"{root}/pools/{H.seg(name)}/tags/{H.seg(tag)}"
    offset, limit, total = page["offset"], page["limit"], page["total"]
    read, latest = page["pool_version"], page["latest_version"]
    rows = [
        (H.e(offset + i + 1), f"<code>{H.e(s.get('key'))}</code>", H.e(s.get("run_id")), H.e(s.get("status")),
         H.e(s.get("pick_rank")))
        for i, s in enumerate(page["samples"])
    ]
    shown = f"{offset + 1}–{offset + len(rows)}" if rows else "none"
    # (the pages read the version the first one read: a run committing meanwhile moves no key between them)
    newer = (f" (the latest is {H.e(latest)}: {H.link(f'{base}?limit={limit}', 'first page of the latest')})"
             if read != latest else "")
    body = (
        f"<p>{H.e(total)} samples (showing {H.e(shown)}) in version {H.e(read)}{newer}"
        + (f", run <code>{H.e(page['run_id'])}</code>" if page["run_id"] else "") + ".</p>"
        + H.table(["#", "Key", "Run", "Status", "Pick rank"], rows, numeric=(0, 4))
        + _list_pager(base, "", page["paging"], {}, sized=True)
    )
    crumbs = [("Datapools", f"{root}/"), (name, f"{root}/pools/{H.seg(name)}"), (tag, None)]
    return H.page(f"Tag {tag}", body, crumbs=crumbs, static=f"{root}/static")  # (theme.js, as the others)


def _run_page(root: str, where: D.RunLocation) -> str:
    parts = [f"<p>DAG <code>{H.e(where.dag_id)}</code>, run <code>{H.e(where.run_id)}</code>.</p>"]
    if where.committed is not None:
        spec, entry = where.committed
        parts.append(
            f'<div class="box">This run committed version <b>{H.e(entry["version"])}</b> of datapool '
            f'{H.link(f"{root}/pools/{H.seg(spec.name)}", spec.name)} with tag <code>{H.e(entry.get("tag"))}</code> '
            f"({H.counts_text(entry.get('counts'))}), but no report was found in "
            f"<code>{H.e(D.REPORTS_DIR)}/{H.e(where.slug)}/</code> (the worker may have stopped right after the "
            "commit, or writing it failed: see the select task's log). Clearing the <code>select_and_commit</code> "
            "task writes the missing report from the datapool without committing again.</div>"
        )
    elif where.reports:
        links = ", ".join(
            H.link(_report_url(root, p.name, where.slug), f"report in datapool {p.name}") for p in where.reports
        )
        if where.not_committed:  # (an answered review: no "awaiting review" or "dry run" in the box)
            parts.append(f'<div class="box warn">This run\'s proposal was not committed. <b>Review:</b> '
                         f"{H.e(where.not_committed)} Its selection report: {links}.</div>")
        else:
            parts.append(
                '<div class="box warn">This run has committed nothing (a dry run: '
                "<code>enable_datapool_update=false</code>; or a selection awaiting review, or discarded in review: "
                "<code>LIGHTLY_REVIEW</code>; the report says which), but it wrote a selection report: " + links
                + ".</div>"
            )
    else:
        parts.append(
            # (no "skipped": it read as a failure, and a dry run or a proposal writes a report: not this case)
            '<div class="box">No curation report yet: this run has committed nothing to the configured datapools '
            "and written no report there. A run writes its report in its select task: it has not reached that task "
            "yet, or it found no new files to curate (its wait for files ended without any), or it curates a "
            "datapool this server does not show (<code>LIGHTLY_DATAPOOLS</code>).</div>"
        )
    if where.problems:
        items = "".join(f"<li>{H.e(n)}: {H.e(m)}</li>" for n, m in where.problems)
        parts.append(f'<div class="box err">Some datapools could not be read:<ul>{items}</ul></div>')
    return H.page("Curation report", "".join(parts), crumbs=[("Datapools", f"{root}/")])


def _tag_samples(pool: str, tag: str, offset: int, limit: int, version: int | None) -> dict[str, Any]:
    """:func:`~.data.tag_samples`; a version past the latest is refused as FastAPI refuses a bad parameter (400,
    :func:`_bad_parameters`: its range, from 0 to the latest)."""
    try:
        return D.tag_samples(_pool(pool), tag, offset=offset, limit=limit, version=version)
    except D.VersionRangeError as exc:
        raise RequestValidationError([{"type": "less_than_equal", "loc": ("query", exc.name), "input": str(exc.value),
                                       "msg": str(exc), "ctx": {"le": exc.latest}}]) from None


# ------------------------------------------------------------------------------------------------ app
def create_app() -> FastAPI:
    """Build the plugin's app (no API docs: they would be public)."""
    app = FastAPI(
        title="Lightly datapools", docs_url=None, redoc_url=None, openapi_url=None,
        dependencies=[Depends(AUTHENTICATED)],
    )

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # A browser opening a page without a session goes through Airflow's login and comes back; API calls,
        # pictures and downloads keep the plain 401.
        if exc.status_code == 401 and request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            login = _login_url(str(request.url))
            if login:
                return RedirectResponse(login, status_code=303)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(D.NotFoundError)
    async def _not_found(request: Request, exc: D.NotFoundError) -> Response:
        return _error(request, 404, "Not found", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _bad_parameter(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, 400, "Bad request", _bad_parameters(request, exc))

    @app.exception_handler(D.GoneError)
    async def _gone(request: Request, exc: D.GoneError) -> Response:
        return _error(request, 410, "Gone", str(exc))

    @app.exception_handler(DatapoolsConfigError)
    async def _bad_config(request: Request, exc: DatapoolsConfigError) -> Response:
        log.error("Invalid datapools configuration: %s", exc)
        return _error(request, 500, "Configuration error", str(exc))

    from lightly_airflow.hooks.storage import UnsupportedConnectionError

    @app.exception_handler(UnsupportedConnectionError)
    async def _bad_connection(request: Request, exc: UnsupportedConnectionError) -> Response:
        # (a pool's conn_id that is undefined or of another type: the deployment's problem, named with its fix)
        log.error("A datapool's connection cannot be used: %s", exc)
        return _error(request, 500, "Configuration error", f"{exc} (the datapool's conn_id in $LIGHTLY_DATAPOOLS)")

    @app.exception_handler(Exception)
    async def _failed(request: Request, exc: Exception) -> Response:
        # Anything else (a data file that cannot be read, a bug): the page says what failed, in the plugin's page
        # with its way back, not Starlette's bare "Internal Server Error"; the traceback goes to the log as before
        # (Starlette's ServerErrorMiddleware re-raises after this answer).
        what = f"{type(exc).__name__}: {exc}"
        return _error(request, 500, "Server error", f"The server failed to answer {request.url.path}: "
                      f"{what[:600]}{'…' if len(what) > 600 else ''}. The API server's log has the traceback; "
                      "reload to try again.")

    # -------------------------------------------------------------- HTML
    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        return _html(_index_page(_root(request), configured_datapools()))

    @app.get("/pools/{pool}", response_class=HTMLResponse)
    def pool_page(request: Request, pool: str, offset: int = Query(0, ge=0), tag_offset: int = Query(0, ge=0),
                  before: int | None = Query(None, ge=0), tags_before: int | None = Query(None, ge=0)) -> HTMLResponse:
        from lightly_airflow.plugins.pages import RECENT

        ov = D.overview(_pool(pool), offset=offset, limit=RECENT, tag_offset=tag_offset, tag_limit=RECENT,
                        before=before, tags_before=tags_before)
        return _html(_overview_page(_root(request), ov, {"offset": offset, "before": before},
                                    {"tag_offset": tag_offset, "tags_before": tags_before}))

    @app.get("/pools/{pool}/tags/{tag}", response_class=HTMLResponse)
    def tag_page(
        request: Request, pool: str, tag: str, offset: int = Query(0, ge=0),
        limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE), version: int | None = Query(None, ge=0),
    ) -> HTMLResponse:
        return _html(_tag_page(_root(request), _tag_samples(pool, tag, offset, limit, version)))

    @app.get("/pools/{pool}/reports/{slug}/")
    def report_folder(request: Request, pool: str, slug: str) -> RedirectResponse:
        D.check_report_path(slug, D.REPORT_INDEX)
        _pool(pool)
        return RedirectResponse(_report_url(_root(request), pool, slug), status_code=303)

    @app.get("/pools/{pool}/reports/{slug}/{filename}")
    def report_file(pool: str, slug: str, filename: str) -> Response:
        payload, content_type = D.read_report_file(_pool(pool), slug, filename)
        headers = dict(SECURITY_HEADERS)
        if content_type.startswith("application/"):
            headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        return Response(payload, media_type=content_type, headers=headers)

    @app.get("/runs/{dag_id}/{run_id}", dependencies=[Depends(CAN_READ_RUNS)])
    def run_tab(request: Request, dag_id: str, run_id: str) -> Response:
        root = _root(request)
        where = D.find_run(configured_datapools(), dag_id, run_id)
        target = where.report_pool
        if target is not None and (where.committed is not None or where.awaiting_review):  # (the reviewer's link)
            return RedirectResponse(_report_url(root, target.name, where.slug), status_code=303)
        return _html(_run_page(root, where))

    # -------------------------------------------------------------- JSON
    @app.get("/api/pools")
    def api_pools() -> list[dict[str, Any]]:
        return [{"name": p.name, "uri": p.uri, "conn_id": p.conn_id} for p in configured_datapools().values()]

    @app.get("/api/pools/{pool}")
    def api_pool(
        pool: str, offset: int = Query(0, ge=0), limit: int | None = Query(None, ge=1, le=MAX_OVERVIEW_PAGE),
        tag_offset: int = Query(0, ge=0), tag_limit: int | None = Query(None, ge=1, le=MAX_OVERVIEW_PAGE),
        before: int | None = Query(None, ge=0), tags_before: int | None = Query(None, ge=0),
    ) -> dict[str, Any]:
        from lightly_airflow.plugins.pages import RECENT  # (read per request: tests make it small)

        return D.overview(_pool(pool), offset=offset, limit=limit or RECENT, tag_offset=tag_offset,
                          tag_limit=tag_limit or RECENT, before=before, tags_before=tags_before)

    @app.get("/api/pools/{pool}/tags/{tag}")
    def api_tag(
        pool: str, tag: str, offset: int = Query(0, ge=0), limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
        version: int | None = Query(None, ge=0),
    ) -> dict[str, Any]:
        return _tag_samples(pool, tag, offset, limit, version)

    @app.get("/api/runs/{dag_id}/{run_id}", dependencies=[Depends(CAN_READ_RUNS)])
    def api_run(request: Request, dag_id: str, run_id: str) -> dict[str, Any]:
        where = D.find_run(configured_datapools(), dag_id, run_id)
        out = where.to_dict()
        target = where.report_pool
        out["report_url"] = None if target is None else _report_url(_root(request), target.name, where.slug)
        return out

    from lightly_airflow.plugins.routes import add_curation_routes

    add_curation_routes(app)
    return app


app = create_app()

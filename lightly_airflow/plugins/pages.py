"""The curation pages: thumbnail grid with filters, sample page, embedding map, tag comparison.

Server-rendered HTML (every value escaped with :func:`~lightly_airflow.plugins.html.e`); the only scripts are
the plugin's own ``theme.js`` and ``map.js``, served from ``/lightly/static``. Data comes from
:class:`~lightly_airflow.plugins.query.View`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlencode

from lightly_airflow import columns as C
from lightly_airflow.colours import TASK_COLOURS, task_colours
from lightly_airflow.datapool.rows import COMMIT_VERSION
from lightly_airflow.plugins import html as H
from lightly_airflow.plugins.query import SHOW_IMAGES, SHOW_OBJECTS, SIMILAR, Scope, View, Walk, column_group

#: How the export links name the formats (``datapool.export.FORMATS`` owns which there are: one added there is
#: linked by its own name until it gets a label here)
EXPORT_LABELS = {"list": "file list", "csv": "CSV", "label-studio": "Label Studio", "coco": "COCO",
                 "filenames": "file names", "labelbox": "Labelbox"}


def qs(params: Sequence[tuple[str, Any]]) -> str:
    items = [(k, str(v)) for k, v in params if v is not None and v != ""]
    return ("?" + urlencode(items)) if items else ""


def pool_url(root: str, pool: str, *rest: str) -> str:
    return "/".join([f"{root}/pools/{H.seg(pool)}", *rest])


def fmt(value: Any) -> str:
    """A value for a cell (escaped): numbers compact, lists and dicts as JSON."""
    if value is None:
        return '<span class="muted">—</span>'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return H.e(value)
        return H.e(f"{value:.6g}")
    if isinstance(value, (list, dict)):
        text = json.dumps(value, default=str)
        return f"<code>{H.e(text if len(text) < 400 else text[:400] + '…')}</code>"
    text = str(value)
    if len(text) > 24 and " " not in text:  # an etag, a hash, a run id: may wrap anywhere in a narrow window
        return f'<span class="long">{H.e(text)}</span>'
    return H.e(value)


def tabs(root: str, pool: str, scope: Scope, current: str) -> str:
    params = scope.to_params()
    items = [
        ("Samples", pool_url(root, pool, "samples") + qs(params)),
        ("Map", pool_url(root, pool, "map") + qs(params)),
        ("Compare tags", pool_url(root, pool, "compare") + qs([("version", scope.version)])),
        ("Versions & tags", pool_url(root, pool)),
    ]
    out = []
    for text, href in items:
        out.append(f"<b>{H.e(text)}</b>" if text == current else H.link(href, text))
    return '<nav class="tabs">' + "".join(f"<span>{x}</span> " for x in out) + "</nav>"


def scope_text(view: View, scope: Scope) -> str:
    parts = [f"version {view.version}" + (" (latest)" if view.version == view.latest else f" of {view.latest}")]
    if scope.tag:
        parts.append(f"tag {scope.tag}")
    if scope.run:
        parts.append(f"run {scope.run}")
    f = scope.filters
    for col in sorted(set(f.lo) | set(f.hi)):
        lo, hi = f.lo.get(col), f.hi.get(col)
        parts.append(f"{col} in [{'−∞' if lo is None else f'{lo:g}'}, {'∞' if hi is None else f'{hi:g}'}]")
    for col, vals in f.values.items():
        parts.append(f"{col} ∈ {{{', '.join(vals)}}}")
    return " · ".join(parts)


def _hidden(params: Sequence[tuple[str, Any]]) -> str:
    return "".join(f'<input type="hidden" name="{H.e(k)}" value="{H.e(v)}">' for k, v in params if v not in (None, ""))


def histogram_svg(facet: dict[str, Any], lo: float | None, hi: float | None) -> str:
    """A numeric facet's histogram (``bins``, equal widths from min to max) as a small inline SVG: bar heights by
    count (square root, so a few outliers stay visible), bars outside the chosen ``lo``-``hi`` range faded, each
    bar's range and count on hover. Nothing without bins."""
    bins = facet.get("bins")
    if not bins:
        return ""
    top, n = max(bins) or 1, len(bins)
    mn, mx = float(facet["min"]), float(facet["max"])
    width = (mx - mn) / n
    bars = []
    for i, count in enumerate(bins):
        a, b = mn + i * width, mn + (i + 1) * width
        inside = (lo is None or b >= lo) and (hi is None or a <= hi)
        h = 0 if not count else max(0.6, 10 * math.sqrt(count / top))
        faded = "" if inside else ' class="out"'
        bars.append(f'<rect x="{i}" y="{10 - h:.2f}" width="0.86" height="{h:.2f}"{faded}>'
                    f"<title>{H.e(_short(a))} – {H.e(_short(b))}: {count:,}</title></rect>")
    return (f'<svg class="hist" viewBox="0 0 {n} 10" preserveAspectRatio="none" role="img" '
            f'aria-label="distribution from {H.e(_short(mn))} to {H.e(_short(mx))}">{"".join(bars)}</svg>')


def filter_form(root: str, pool: str, view: View, scope: Scope, action: str, extra: Sequence[tuple[str, Any]] = ()) -> str:
    """The side panel: version, tag, run, numeric ranges, categories. Submits to ``action`` (GET). Its choosers list
    the :data:`RECENT` newest versions, runs and tags and the chosen ones; an older version is reached by number
    (:func:`older_version_form`), an older run or tag from the pool's pages of versions and tags."""
    facets = view.facets(scope.show)
    versions = "".join(version_options(view))
    tag_opts = '<option value="">— every sample —</option>' + "".join(
        f'<option value="{H.e(t["name"])}"{" selected" if t["name"] == scope.tag else ""}>{H.e(t["name"])}</option>'
        for t in recent_tags(view, [scope.tag])
    )
    run_opts = '<option value="">— every run —</option>' + "".join(
        f'<option value="{H.e(r["run_id"])}"{" selected" if r["run_id"] == scope.run else ""}>'
        f'{H.e(r.get("tag") or r["run_id"])} (v{H.e(r["version"])})</option>'
        for r in recent(view.runs(), lambda r: r["run_id"] == scope.run)
    )
    parts = [
        f'<form method="get" action="{H.e(action)}">{_hidden(extra)}<fieldset><legend>Scope</legend>'
        f'<label>Version (time travel) <select name="version">{versions}</select></label>'
        f'<label>Tag <select name="tag">{tag_opts}</select></label>'
        f'<label>Run <select name="run">{run_opts}</select></label>'
        + (show_select(scope) if view.has_objects else "") + "</fieldset>"
    ]
    cats, nums = [], []
    for col, facet in facets.items():
        if facet["kind"] == "category":
            chosen = set(scope.filters.values.get(col, []))
            boxes = "".join(
                f'<label><input type="checkbox" name="in.{H.e(col)}" value="{H.e(v)}"'
                f'{" checked" if v in chosen else ""}> {H.e(v)} <span class="muted">({H.e(n)})</span></label>'
                for v, n in facet["values"]
            )
            cats.append(f"<details{' open' if chosen else ''}><summary>{H.breakable(col)}</summary>{boxes}</details>")
        else:
            lo, hi = scope.filters.lo.get(col), scope.filters.hi.get(col)
            nums.append(
                f'<label class="range" title="{H.e(col)}">{H.breakable(col)}<br>{histogram_svg(facet, lo, hi)}'
                f'<input type="number" step="any" name="lo.{H.e(col)}" placeholder="{H.e(_short(facet["min"]))}" '
                f'value="{"" if lo is None else H.e(_short(lo))}" aria-label="{H.e(col)} from"> – '
                f'<input type="number" step="any" name="hi.{H.e(col)}" placeholder="{H.e(_short(facet["max"]))}" '
                f'value="{"" if hi is None else H.e(_short(hi))}" aria-label="{H.e(col)} to"></label>'
            )
    if cats:
        parts.append("<fieldset><legend>Values</legend>" + "".join(cats) + "</fieldset>")
    if nums:
        parts.append("<fieldset><legend>Ranges</legend>" + "".join(nums) + "</fieldset>")
    parts.append('<button class="primary" type="submit">Apply</button> '
                 f'{H.link(action + qs([("version", scope.version), *extra]), "clear")}</form>')
    parts.append(older_version_form(root, pool, view, scope, action, extra))
    return '<div class="side filters">' + "".join(parts) + "</div>"


#: the newest versions, runs and tags a chooser lists (with the chosen ones): a page stays small however long the
#: pool's history is; any other is reached by number or from the pool's pages of versions and tags (as many a page)
RECENT = 50


def recent(items: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The :data:`RECENT` last of ``items`` (oldest first: the newest) and the earlier ones ``keep`` keeps, in order."""
    cut = len(items) - RECENT
    return [x for i, x in enumerate(items) if i >= cut or keep(x)]


def recent_tags(view: View, chosen: Sequence[str | None]) -> list[dict[str, Any]]:
    """The tags a chooser lists: ``initial-tag``, the :data:`RECENT` newest others and the ``chosen`` ones."""
    return recent(view.tags(), lambda t: t["kind"] == "all" or t["name"] in chosen)


def older_version_form(root: str, pool: str, view: View, scope: Scope, action: str,
                       extra: Sequence[tuple[str, Any]] = ()) -> str:
    """Below the filters of a pool with more versions than the version chooser lists: any version by its number
    (the scope kept; the server checks it exists and is readable) and a link to the pool's pages of versions."""
    if view.latest < RECENT:
        return ""
    params = [(k, v) for k, v in [*scope.to_params(), *extra] if k != "version"]
    return (f'<form method="get" action="{H.e(action)}" class="toolbar goto">{_hidden(params)}'
            f'<label>Older version <input type="number" name="version" min="0" max="{view.latest}" step="1" '
            f'required placeholder="0–{view.latest}" aria-label="version number"></label>'
            f'<button type="submit">Go</button> {H.link(pool_url(root, pool) + "#versions", "every version")}</form>')


def vacuumed_text(lost: dict[str, Any]) -> str:
    """How a version a vacuum made unreadable is shown (not offered for time travel)."""
    from lightly_airflow.datapool.reclaim import versions_text

    day = str(lost.get("vacuum") or "")[:10]
    if lost.get("by"):  # Delta's own VACUUM, from its versions in the log
        return f"vacuumed by {lost['by']} at {versions_text(lost)} (files deleted {day})"
    return f"vacuumed (files deleted {day})"


def version_options(view: View) -> list[str]:
    """The time-travel options, newest first, the :data:`RECENT` newest and the chosen one: each readable version,
    and one disabled option per range of versions a vacuum made unreadable (``12–1: vacuumed (files deleted
    2026-12-04)``), ``datapool vacuum``'s (its record) or Delta's own VACUUM run by hand (its versions in the log:
    ``3–1: vacuumed by Delta VACUUM at versions 5–6 (files deleted 2026-12-04)``)."""
    from lightly_airflow.datapool.reclaim import lost_range

    out = []
    lost = view.lost() + view.delta_lost()
    v = view.latest
    oldest = view.latest - RECENT + 1  # (the chooser lists the RECENT newest versions and the chosen one)
    while v >= max(0, oldest):
        hit = lost_range(lost, v) if v != view.latest else None
        if hit is None:
            out.append(version_option(view, v))
            v -= 1
            continue
        first = max(0, min(r["first"] for r in lost if r["first"] <= v <= r["last"]))
        # Adjacent ranges of several vacuums read as one: walk down while the versions stay lost.
        while first > 0 and lost_range(lost, first - 1) is not None:
            first -= 1
        label = f"{v}" if first == v else f"{v}–{first}"
        out.append(f'<option disabled>{label}: {H.e(vacuumed_text(hit))}</option>')
        v = first - 1
    if view.version < oldest:
        out.append(version_option(view, view.version))
    return out


def version_option(view: View, v: int) -> str:
    return (f'<option value="{v}"{" selected" if v == view.version else ""}>{v}'
            f'{" (latest)" if v == view.latest else ""}</option>')


def show_select(scope: Scope) -> str:
    """Images (default) or the objects of object-level runs (crops), for a pool that has objects."""
    opts = "".join(f'<option value="{v}"{" selected" if v == scope.show else ""}>{t}</option>'
                   for v, t in ((SHOW_IMAGES, "images"), (SHOW_OBJECTS, "objects (crops)")))
    return f'<label>Show <select name="show">{opts}</select></label>'


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


#: the grid's tag form: the cards' check boxes belong to it (``form=``)
TAG_FORM = "tagform"
#: Most checked samples one tag from the grid may name (``static/checks.js`` keeps ticks across pages)
MAX_CHECKED = 1_000


def save_tag_form(root: str, pool: str, scope: Scope, *, polygon: bool = False, checkable: bool = False) -> str:
    """The "New tag" form: of every sample of the scope, of the map's ``polygon`` selection, or (``checkable``,
    the grid) also of the samples whose boxes are checked on the page (``only=checked``)."""
    hidden = _hidden(scope.to_params())
    poly = '<input type="hidden" name="polygon" id="polygon" value="">' if polygon else ""
    disabled = " disabled" if polygon else ""
    button_id = ' id="savesel"' if polygon else ""
    # (static/checks.js: ticks kept across the grid's pages, their count, "check this page", "clear")
    checked = ('<button type="submit" name="only" value="checked">Save the checked samples as a tag</button>'
               '<button type="button" id="checkpage">Check this page</button>'
               '<span id="checkcount" class="muted" aria-live="polite"></span>'
               '<button type="button" id="checkclear" hidden>Clear the checks</button>' if checkable else "")
    limit = f' data-max-checked="{MAX_CHECKED}"' if checkable else ""
    return (
        f'<form method="post" action="{H.e(pool_url(root, pool, "tags"))}" class="toolbar" id="{TAG_FORM}"{limit}>'
        f'{hidden}{poly}'
        '<label>New tag <input name="name" required pattern="[A-Za-z0-9]([A-Za-z0-9 ._:;=@+\\-]{0,126}[A-Za-z0-9._:;=@+\\-])?" '
        'placeholder="e.g. night-shots" size="18" title="Letters, digits, spaces and . _ : ; = @ + -, starting with a '
        'letter or digit, not ending with a space, at most 128 characters"></label>'
        f'<button type="submit"{button_id}{disabled}>Save {"selection" if polygon else "these samples"} as a tag</button>'
        f"{checked}</form>"
    )


def export_links(root: str, pool: str, scope: Scope) -> str:
    from lightly_airflow.datapool.export import FORMATS

    params = scope.to_params()
    links = " · ".join(H.link(pool_url(root, pool, "export") + qs([*params, ("format", f)]), EXPORT_LABELS.get(f, f))
                       for f in FORMATS)
    return f"<span>Export: {links}</span>"


def unviewable_note(count: int, pool: str, scope: Scope) -> str:
    """Beside the export links: how many of the scope's images a labelling tool in the browser shows blank (HEIC,
    TIFF: :meth:`View.unviewable_count`), and the command that exports copies a browser shows."""
    if not count:
        return ""
    tag = H.e(scope.tag) if scope.tag else "&lt;tag&gt;"
    first = "" if scope.tag else " (save these as a tag first)"
    return (f'<p class="muted">{H.e(f"{count:,}")} of these {"are" if count != 1 else "is a"} HEIC/TIFF '
            f'image{"s" if count != 1 else ""}: browsers other than Safari show {"them" if count != 1 else "it"} '
            "blank, in a labelling tool too. <code>lightly-airflow datapool export &lt;datapool URI&gt; --tag "
            f"{tag} --format label-studio --viewable-copies &lt;URI&gt;</code>{first} exports JPEG/PNG copies a "
            "browser shows.</p>")


def run_of(view: View, scope: Scope) -> dict[str, Any] | None:
    """The history entry of the run a scope names (by ``run`` or by the run's tag)."""
    entry = None
    for e in view.runs():
        if (scope.run and e["run_id"] == scope.run) or (scope.tag and e.get("tag") == scope.tag):
            entry = e
    return entry


def run_grids(root: str, pool: str, version: int | None, entry: dict[str, Any]) -> tuple[str, str | None]:
    """The two grids of a run (its history ``entry``), in pick order: its rows as it committed them (``run=``: every
    sample it processed, each with the key it had then) and its picks as they are now (its tag, ``None`` for a run
    without one: a file moved since holds its pick under its new key, :mod:`~lightly_airflow.datapool.moves`)."""
    base = pool_url(root, pool, "samples")
    rows = base + qs([("version", version), ("run", entry["run_id"]), ("sort", C.PICK_RANK)])
    tag = entry.get("tag")
    return rows, (base + qs([("version", version), ("tag", tag), ("sort", C.PICK_RANK)]) if tag else None)


def run_links(root: str, pool: str, entry: dict[str, Any] | None, files: set[str], scope: Scope) -> str:
    """For a run's tag or rows (``scope``): links to its report and problems file (those it has), the Airflow run,
    and its other grid (:func:`run_grids`), saying which one this is."""
    from lightly_airflow.staging import run_slug

    if entry is None:
        return ""
    slug = run_slug(entry["run_id"])
    links = [H.link(pool_url(root, pool, "reports", H.seg(slug), name), text)
             for name, text in (("index.html", "run report"), ("problems.parquet", "problems file")) if name in files]
    if entry.get("dag_id"):
        links.append(H.airflow_link(root, f"/dags/{H.seg(entry['dag_id'])}/runs/{H.seg(entry['run_id'])}",
                                    "Airflow run"))
    rows, picks = run_grids(root, pool, scope.version, entry)
    if scope.run and picks:  # (a run's rows showed its moved picks under their gone keys, nothing said so)
        links.append("these are the rows it committed, with the keys they had then; its picks as they are now: "
                     + H.link(picks, f"tag {entry['tag']}"))
    elif scope.tag and not scope.run:
        links.append("these are its picks as they are now; " + H.link(rows, "every sample it processed")
                     + ", as it committed them")
    return f'<p class="muted">Run <code>{H.e(entry["run_id"])}</code>: {" · ".join(links)}</p>'


#: samples on one grid page (its ``limit``)
GRID_PAGE = 60
#: the grid's cell width in pixels: smallest, largest and default of its "Size" slider
CELL_SIZES = (90, 260, 150)  # (thumbnails are at most 256 pixels wide)


def grid_params(scope: Scope, sort: str, descending: bool, limit: int) -> list[tuple[str, Any]]:
    """The query of a grid (scope, sort, order; the page size when not :data:`GRID_PAGE`) without its offset."""
    out: list[tuple[str, Any]] = [*scope.to_params(), ("sort", sort), ("order", "desc" if descending else "asc")]
    return out + ([("limit", limit)] if limit != GRID_PAGE else [])


def grid_page(
    root: str, pool: str, view: View, scope: Scope, page: dict[str, Any], static: str, run_files: set[str] | None = None,
) -> str:
    from lightly_airflow.plugins.media import is_frame

    base = pool_url(root, pool, "samples")
    params = scope.to_params()
    sort, desc = page["sort"], page["descending"]
    offset, limit, total = page["offset"], page["limit"], page["total"]
    # a card opens its sample with its place in this grid: the sample page steps to the previous and next ones
    opened = grid_params(scope, sort, desc, limit)
    similar = page.get("similar_key") if sort.startswith(SIMILAR) else None
    # (the select is as wide as its longest name: capped with an ellipsis, each option's whole name in its title)
    sort_opts = "".join(
        f'<option value="{H.e(c)}" title="{H.e(c)}"{" selected" if c == sort else ""}>{H.e(c)}</option>'
        for c in view.sortable()
    ) + (f'<option value="{H.e(sort)}" title="similarity to {H.e(similar)}" selected>similarity to {H.e(similar)}'
         "</option>" if similar is not None else "")
    current = f"similarity to {similar}" if similar is not None else sort
    sorter = (
        f'<form method="get" action="{H.e(base)}" class="toolbar">{_hidden(params)}'
        f'<label>Sort by <select name="sort" class="sort" title="{H.e(current)}">{sort_opts}</select></label>'
        f'<select name="order"><option value="asc"{"" if desc else " selected"}>ascending</option>'
        f'<option value="desc"{" selected" if desc else ""}>descending</option></select>'
        '<button type="submit">Sort</button></form>'
        # (static/grid.js: the thumbnails' size, kept in this browser)
        f'<label class="cellsize">Size <input type="range" id="cellsize" min="{CELL_SIZES[0]}" max="{CELL_SIZES[1]}" '
        f'step="10" value="{CELL_SIZES[2]}" aria-label="thumbnail size"></label>'
    )
    cards = []
    colours = page_colours(view.tasks(), page["items"]) if scope.objects else {}  # (object cards: their task's)
    for at, item in enumerate(page["items"], start=offset):
        sid = item.get(C.SAMPLE_ID) or ""
        href = pool_url(root, pool, "samples", H.seg(sid)) + qs([*opened, ("at", at)])
        thumb = pool_url(root, pool, "thumbnails", H.seg(sid))
        rank = item.get(C.PICK_RANK)
        value = ("" if sort in (C.PICK_RANK, C.KEY) else f'<br>distance <b>{fmt(item.get("value"))}</b>'
                 if similar is not None else f'<br>{H.breakable(sort)} <b>{fmt(item.get("value"))}</b>')
        if scope.objects:
            cls = "card obj sel" if item.get(C.OBJECT_SELECTED) else "card obj"
            # (an object of a video frame: its frame was picked or not, not an "image")
            parent = "frame" if is_frame(item.get("parent_frame")) else "image"
            task = swatch(colours[str(item.get(C.OBJECT_TASK))])
            state = (f"#{H.e(item.get(C.OBJECT_INDEX))} {task}{object_label(item)}<br>"
                     f"{parent} {'picked' if item.get(C.OBJECT_SELECTED) else 'not picked'}")
            # (its image, or its frame's video and frame number, not its key: ``cat-6-mp4.png#shapes#0``, the
            # run's name for it, is the link's title)
            caption = image_name(item.get(C.PARENT_KEY), item.get("parent_frame"))
        else:
            cls = "card sel" if item.get(C.SELECTED) else "card"
            # (1-based, as the sample page's "Pick 1 (pick rank 0)"; in a run's grid a pick its move carried in has an
            # earlier run's rank, which tied with one of the run's own picks: said so, not as the run's pick). A
            # sample outlined as selected whose row has no pick: in the whole version, its latest row is a later
            # run's, which processed it again, and an earlier run picked it (in initial-tag; the sample page says
            # which run): not "not picked" beside the outline
            earlier = "selected: an earlier run's pick" if not (scope.tag or scope.run) else "selected"
            picked = ((earlier if item.get(C.SELECTED) else "not picked") if rank is None
                      else f"moved in: an earlier run's pick {H.e(int(rank) + 1)}"
                      if scope.run and item.get("moved_from") else f"pick {H.e(int(rank) + 1)}")
            state = f"{picked} · {H.e(item.get(C.STATUS))}"
            caption = image_name(item.get(C.KEY), item)  # (a frame: its video and number; its key the title)
        check = "" if scope.objects else (  # (a box of the tag form: "Save the checked samples as a tag")
            f'<input type="checkbox" name="sample" value="{H.e(sid)}" form="{TAG_FORM}" '
            f'aria-label="check {H.e(item.get(C.KEY))}" title="check for a tag">')
        cards.append(
            f'<div class="{cls}"><a class="thumb" href="{H.e(href)}"><img loading="lazy" src="{H.e(thumb)}" '
            f'alt="{H.e(item.get(C.KEY))}"></a><div class="cap">{check}<a href="{H.e(href)}" title="{H.e(item.get(C.KEY))}">'
            f'{H.e(caption)}</a><br>{state}{value}</div></div>'
        )
    # (a page past the end: a bookmark, or a grid that a tag or a filter made shorter; "previous" goes to the last page)
    last = (total - 1) // limit * limit if total else 0
    pager = []
    if offset > 0:
        pager.append(H.link(base + qs([*opened, ("offset", min(max(0, offset - limit), last))]), "← previous",
                            rel="prev"))
    if offset + limit < total:
        pager.append(H.link(base + qs([*opened, ("offset", offset + limit)]), "next →", rel="next"))
    shown = f"{offset + 1}–{offset + len(cards)}" if cards else "none"
    noun = "object" if scope.objects else "sample"
    matches = f"{noun} matches" if total == 1 else f"{noun}s match"
    if not total and (not scope.objects or not view.has_objects):
        head = f'<p><b>0</b> {matches} ({H.e(shown)} shown) — {H.e(scope_text(view, scope))}.</p>'
        # (no sorter, export links, map link or tag form: they sorted nothing, exported an empty file, mapped
        # nothing, saved an empty tag; a pool without objects: no_matches says why)
        tools = "" if scope.objects else (
            '<p class="muted" id="nothing">Nothing here to export, map or save as a tag: widen the filters or choose '
            "another tag.</p>")
    elif scope.objects:
        head = (f'<p><b>{H.e(total)}</b> {matches} ({H.e(shown)} shown) — {H.e(scope_text(view, scope))}. '
                "Crops of the objects of object-level runs; outlined: their image was selected.</p>")
        tools = (f'<div class="toolbar">{sorter}<span class="muted">Tags and exports are of images: '
                 f'{H.link(base + qs([("version", scope.version)]), "show images")}.</span></div>')
    else:
        head = (f'<p><b>{H.e(total)}</b> {matches} ({H.e(shown)} shown) — {H.e(scope_text(view, scope))}. '
                'Outlined: selected by a run.</p>')
        # (the map link in the exports' group: a narrow toolbar wraps them together, never "· map of these" alone)
        tools = (f'<div class="toolbar">{sorter}<span>{export_links(root, pool, scope)} · '
                 f'{H.link(pool_url(root, pool, "map") + qs(params), "map of these")}</span></div>'
                 + unviewable_note(view.unviewable_count(scope), pool, scope)
                 + save_tag_form(root, pool, scope, checkable=bool(cards)))
    if similar is not None:
        query_href = pool_url(root, pool, "samples", H.seg(sort[len(SIMILAR):])) + qs([("version", scope.version)])
        head += (f'<p class="box">Ordered by similarity to {H.link(query_href, similar)}, '
                 f'{"farthest" if desc else "nearest"} first: the distance of their embeddings (0: the same, '
                 "√2: unrelated, 2: opposite). Filters, tags and runs narrow what is compared.</p>")
    main = (
        head + run_links(root, pool, run_of(view, scope), run_files or set(), scope) + tools
        + (f'<div class="grid">{"".join(cards)}</div>' if cards else past_the_end(base, opened, last, total, noun)
           if total else no_matches(root, pool, view, scope, noun))
        + f"<p>{' · '.join(pager)}</p>"
    )
    body = tabs(root, pool, scope, "Samples") + '<div class="layout">' + filter_form(root, pool, view, scope, base) + (
        f'<div class="main" id="{MAIN}" tabindex="-1">{main}</div></div>'
    )
    crumbs = [("Datapools", f"{root}/"), (pool, pool_url(root, pool)), ("samples", None)]
    return H.page(f"Samples of {pool}", body, crumbs=crumbs, static=static, skip=(MAIN, f"Skip the filters to the {noun}s"),
                  scripts=[f"{static}/keys.js", f"{static}/grid.js", f"{static}/checks.js"])


def no_matches(root: str, pool: str, view: View, scope: Scope, noun: str) -> str:
    """In place of the cards of a grid that nothing matches: for objects of a pool that no object-level run
    committed to, why (not "no object matches", which read as a filter's doing) and how a run makes them."""
    if scope.objects and not view.has_objects:
        images = pool_url(root, pool, "samples") + qs([("version", scope.version)])
        return ('<div class="box warn"><p>This datapool has no objects: no object-level run has committed to it '
                f"by this version. {H.link(images, 'Show the images')}.</p><p>A run crops and embeds objects when an "
                "<code>EMBEDDINGS</code> input of its <code>selection_config</code> names with <code>task</code> an "
                "object-detection, instance-segmentation or keypoint-detection task of "
                "<code>.lightly/predictions/tasks.json</code> (or an <code>auto_tasks</code> entry); "
                "<code>worker_config</code> <code>object_level.padding</code> pads the crops (docs/objects.md).</p>"
                "</div>")
    return f'<div class="box warn">No {noun} matches.</div>'


#: the id of a page's content beside the filter panel: the target of its "Skip the filters" link (keyboard users
#: otherwise Tab through every range of the panel, two inputs per numeric column, before the first sample)
MAIN = "results"


def past_the_end(base: str, opened: list[tuple[str, Any]], last: int, total: int, noun: str) -> str:
    """In place of the cards of a grid page past the last one (``offset`` ≥ the count): not "no sample matches",
    which the count above contradicts, but where the last page is."""
    href = base + qs([*opened, *([("offset", last)] if last else [])])
    return (f'<div class="box warn">This page is past the last {H.e(noun)}: {H.e(f"{total:,}")} match, the last page '
            f'shows {H.e(f"{last + 1:,}")}–{H.e(f"{total:,}")}. {H.link(href, "Go to the last page")}.</div>')


#: a card's caption shows at most this many characters of a key: the start and the end (the file name), the
#: whole key in its title; a longer one made its card, and with it the whole row of the grid, many lines tall
CARD_KEY = 72


def card_key(key: Any) -> str:
    """A key as a card's caption shows it: whole up to :data:`CARD_KEY` characters, else its first 20 and its
    end with "…" between (``s3/cam-front/2026-…/very-long-name.jpg``; not escaped)."""
    text = "" if key is None else str(key)
    if len(text) <= CARD_KEY:
        return text
    return text[:20] + "…" + text[-(CARD_KEY - 21):]


def walk_bar(root: str, pool: str, view: View, scope: Scope, walk: Walk | None, at: int, limit: int) -> str:
    """A sample's (or object's) place in the grid it was opened from: the previous and next ones there (links
    the ← and → keys follow), its position of how many, and the grid page that holds it."""
    base = pool_url(root, pool, "samples")
    if walk is None:
        return (f'<p class="muted box">This sample is no longer at position {H.e(f"{at + 1:,}")} of the grid it was '
                f'opened from: {H.link(base + qs(scope.to_params()), "back to the samples")}.</p>')
    opened = grid_params(scope, walk.sort, walk.descending, limit)

    def step(sid: str | None, text: str, rel: str, to: int) -> str:
        if sid is None:
            return f'<span class="muted">{H.e(text)}</span>'
        return H.link(pool_url(root, pool, "samples", H.seg(sid)) + qs([*opened, ("at", to)]), text, rel=rel)

    page_offset = walk.at // limit * limit
    back = H.link(base + qs([*opened, *([("offset", page_offset)] if page_offset else [])]), "back to the grid")
    order = "similarity" if walk.sort.startswith(SIMILAR) else walk.sort
    what = "objects" if scope.objects else "samples"
    return (f'<p class="box walk">{step(walk.before, "← previous", "prev", walk.at - 1)} · '
            f'<b>{H.e(f"{walk.at + 1:,}")}</b> of {H.e(f"{walk.total:,}")} {what} · '
            f'{step(walk.after, "next →", "next", walk.at + 1)} · {back} <span class="muted">(keys ← and →)</span>'
            f'<br><span class="muted">{H.e(scope_text(view, scope))} · by {H.e(order)}, '
            f'{"descending" if walk.descending else "ascending"}</span></p>')


#: Box colours: the report's (``colours.TASK_COLOURS``, each 4.5:1 on the labels' white halo), a task's by its name
#: (``colours.task_colours`` among the version's tasks, ``View.tasks``), so a task has one colour on the image's
#: page, its objects' pages, every other image of the version and the report's objects figure. Before, the n-th
#: sorted task of the image got the n-th colour and an object's page always the first; predicted boxes (from the
#: prediction files) took the n-th colour by their place in the file, two boxes of one task two colours.
PALETTE = TASK_COLOURS


def object_text(obj: dict[str, Any]) -> str:
    """``task · category · score`` of an object row (not escaped)."""
    parts = [obj.get(C.OBJECT_TASK), obj.get(C.OBJECT_CATEGORY)]
    score = obj.get(C.OBJECT_SCORE)
    text = " · ".join(str(p) for p in parts if p)
    return text + (f" · {score:.2f}" if isinstance(score, (int, float)) else "")


def object_label(obj: dict[str, Any]) -> str:
    """:func:`object_text`, escaped."""
    return H.e(object_text(obj))


def image_name(image_key: Any, frame: dict[str, Any] | None) -> str:
    """The image an object was cut from as a user knows it (not escaped): its key, or a video frame's video and
    frame number (``cat.mp4 · frame 6``: a frame's key, ``cat-6-mp4.png``, is the run's name for it, no file of
    the datasource), each cut as a card cuts a key (:func:`card_key`)."""
    from lightly_airflow.plugins.media import is_frame

    if frame is not None and is_frame(frame):
        return f"{card_key(frame[C.VIDEO])} · frame {int(frame[C.FRAME_INDEX])}"
    return card_key(image_key)


def object_name(obj: dict[str, Any], frame: dict[str, Any] | None) -> str:
    """An object as a user knows it (not escaped): its image (or video and frame) and its task's index,
    ``cat.mp4 · frame 6 · shapes #0``; its key (``cat-6-mp4.png#shapes#0``) is the run's name for it."""
    index = obj.get(C.OBJECT_INDEX)
    return f"{image_name(obj.get(C.PARENT_KEY), frame)} · {obj.get(C.OBJECT_TASK)} #{'' if index is None else index}"


def _box_label(x: float, y: float, colour: str, font: float, stroke: float, text: str, weight: int) -> str:
    """A box's label in its colour on an opaque white halo: the text is 4.5:1 over any picture. Before, the halo's
    opacity .8 made it a grey #ccc over black (the old orange #f97316: 2.8:1 on white, 1.75:1 on that grey; this
    palette's green would be 2.8:1 there) and the predicted boxes' labels had no halo."""
    return (f'<text x="{x:.1f}" y="{y:.1f}" fill="{colour}" font-size="{font:.1f}" font-weight="{weight}" '
            f'paint-order="stroke" stroke="#fff" stroke-width="{stroke * 1.5:.2f}">{text}</text>')


def _casing(stroke: float) -> str:
    """A thin white glow around a box's line: the palette is 4.5:1 on white, the glow shows the line on dark
    pictures (on black the brick #962d2d is 2.7:1, the violet #3c00ff 2.6:1)."""
    return f' style="filter:drop-shadow(0 0 {stroke * 0.6:.2f}px #fff)"'


def swatch(colour: str) -> str:
    """A small square of a task's box colour (the legend's, and before the task on an object's card)."""
    return f'<span class="sw" style="background:{colour};outline:1px solid #fff"></span>'


def page_colours(among: Iterable[Any], objects: Sequence[dict[str, Any]] = (),
                 boxes: Sequence[dict[str, Any]] = ()) -> dict[str, str]:
    """``{task: colour}`` of every task a page draws (``colours.task_colours``), made once per page and passed to
    its figure, legends and cards: ``among`` (the version's tasks, :data:`PALETTE`) and the tasks of the
    ``objects`` first, so a task of the predicted ``boxes`` alone (a prediction file's) never moves theirs."""
    drawn = [o.get(C.OBJECT_TASK) for o in objects]
    return task_colours([*drawn, *(b.get("task") for b in boxes)], [*among, *drawn])


def task_legend(tasks: Iterable[Any], colours: dict[str, str]) -> str:
    """``Tasks`` and a swatch of its box colour before each task's name, by name (the page did not say which
    colour is which task); ``colours``: the page's (:func:`page_colours`)."""
    swatches = (f'<span class="task">{swatch(colours[t])}{H.e(t)}</span>' for t in sorted({str(t) for t in tasks}))
    return '<span class="legend">Tasks (box colour): ' + ", ".join(swatches) + ".</span>"


def _boxes_svg(width: int, height: int, boxes: list[dict[str, Any]], objects: Sequence[dict[str, Any]],
               object_href: Any, colours: dict[str, str]) -> str:
    """Predicted boxes (from the prediction files) and object boxes (from the object rows: a link to the
    object's page each, selected objects solid and marked ✓, the others dashed) over an image, each in its task's
    colour (``colours``: the page's, :func:`page_colours`)."""
    parts = []
    # In image pixels: the figure shows the image ~520 px wide, so these are ~2 px lines and ~13 px labels.
    stroke = max(width, height) / 260
    font = max(width, height) / 40
    for b in boxes:
        x, y, w, h = (float(v) for v in b["bbox"])
        colour = colours[str(b.get("task"))]
        label = f'{b.get("category", "")} {b.get("score", "")}'.strip()
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="none" stroke="{colour}" '
            f'stroke-width="{stroke:.1f}"{_casing(stroke)}><title>{H.e(label)}</title></rect>'
            + _box_label(x + 2, max(y - 3, 10), colour, font, stroke, H.e(label), 400)
        )
    for o in objects:
        bbox = o.get(C.OBJECT_BBOX)
        if not bbox or len(bbox) != 4:
            continue
        x, y, w, h = (float(v) for v in bbox)
        colour = colours[str(o.get(C.OBJECT_TASK))]
        chosen = bool(o.get(C.OBJECT_SELECTED))
        label = f"{'✓ ' if chosen else ''}#{o.get(C.OBJECT_INDEX)} {o.get(C.OBJECT_CATEGORY) or o.get(C.OBJECT_TASK)}"
        title = f"{o.get(C.KEY)}: {object_text(o)}" + (" (selected)" if chosen else "")
        dash = "" if chosen else f' stroke-dasharray="{stroke * 3:.2f} {stroke * 2:.2f}"'
        above = y - font * 0.3 if y > font * 1.1 else y + h + font  # the label above the box, else below it
        rect = (f'<rect class="obj{" chosen" if chosen else ""}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" '
                f'height="{h:.1f}" fill="{colour}" fill-opacity="0.08" stroke="{colour}" '
                f'stroke-width="{stroke * (1.6 if chosen else 1):.2f}"{dash}{_casing(stroke)}><title>{H.e(title)}</title></rect>'
                + _box_label(x, above, colour, font, stroke, H.e(label), 700 if chosen else 400))
        href = object_href(o) if object_href else None
        parts.append(f'<a href="{H.e(href)}">{rect}</a>' if href else rect)
    return (f'<svg viewBox="0 0 {int(width)} {int(height)}" preserveAspectRatio="none" '
            f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="predicted boxes">{"".join(parts)}</svg>')


def objects_section(root: str, pool: str, view: View, objects: list[dict[str, Any]], picked: bool,
                    what: str, colours: dict[str, str]) -> str:
    """The crops of an image's (``what``: or a video ``"frame"``'s) objects: thumbnail, task/category/score,
    selected or not, crop metrics; ``colours``: the page's (:func:`page_colours`)."""
    metrics = ("sharpness", "luminance", "snr")
    cards = []
    for o in objects:
        sid = str(o.get(C.SAMPLE_ID) or "")
        href = pool_url(root, pool, "samples", H.seg(sid)) + qs([("version", view.version)])
        thumb = pool_url(root, pool, "thumbnails", H.seg(sid))
        width, height = o.get(C.lightly_metadata_column("width")), o.get(C.lightly_metadata_column("height"))
        values = " · ".join(f"{m} {fmt(o.get(C.lightly_metadata_column(m)))}" for m in metrics
                            if o.get(C.lightly_metadata_column(m)) is not None)
        chosen = bool(o.get(C.OBJECT_SELECTED))
        cards.append(
            f'<div class="card obj{" sel" if chosen else ""}"><a class="thumb" href="{H.e(href)}">'
            f'<img loading="lazy" src="{H.e(thumb)}" alt="{H.e(o.get(C.KEY))}"></a><div class="cap">'
            f'<a href="{H.e(href)}">#{H.e(o.get(C.OBJECT_INDEX))}</a> {swatch(colours[str(o.get(C.OBJECT_TASK))])}{object_label(o)}<br>'
            f'<b>{"✓ selected" if chosen else "not selected"}</b> · crop {H.e(width)}×{H.e(height)} px<br>'
            f'<span class="muted">{values}</span></div></div>'
        )
    n_sel = sum(1 for o in objects if o.get(C.OBJECT_SELECTED))
    why = (f"Its run picked this {what}, so all its objects are selected (object-level selection picks images and "
           "frames by their objects)." if picked else
           f"This {what} is in {C.INITIAL_TAG} (an earlier run picked it), so all its objects are selected." if n_sel
           else f"Its run did not pick this {what}, so none of its objects is selected.")
    grid = pool_url(root, pool, "samples") + qs([("version", view.version), ("show", SHOW_OBJECTS)])
    return (f'<h2 id="objects">Objects ({H.e(len(objects))}, {H.e(n_sel)} selected)</h2>'
            f'<p class="muted">{task_legend((o.get(C.OBJECT_TASK) for o in objects), colours)} {H.e(why)} Boxes as predicted; crops padded as the '
            f'run cropped them. {H.link(grid, "all objects")}</p><div class="grid objects">{"".join(cards)}</div>')


def strategy_text(strategy: Any) -> str:
    """``BALANCE on METADATA source (target digits 0.8, photos 0.2)`` from one config strategy."""
    if not isinstance(strategy, dict):
        return str(strategy)
    inp, strat = strategy.get("input") or {}, strategy.get("strategy") or {}
    what = " ".join(str(v) for v in (inp.get("type"), inp.get("key"), inp.get("task"), inp.get("score")) if v)
    extra = {k: v for k, v in strat.items() if k not in ("type", "strength") and v is not None}
    detail = ", ".join(
        f"{k} " + (", ".join(f"{a} {b}" for a, b in v.items()) if isinstance(v, dict) else str(v)) for k, v in extra.items()
    )
    return f"{strat.get('type', '?')} on {what}" + (f" ({detail})" if detail else "")


def run_samples(entry: dict[str, Any]) -> Any:
    """How many samples (images and video frames) a run processed: its ``processed`` count; the commit's ``rows``
    only for a commit without counts (they include an object-level run's object rows)."""
    counts = entry.get("counts") or {}
    processed = counts.get("processed") if isinstance(counts, dict) else None
    return processed if processed is not None else entry.get("rows")


def earlier_pick(view: View, sid: str, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest earlier row of the sample its run picked, when the latest row (``rows[0]``, not picked) still
    shows as selected in the whole version (``initial-tag``: :meth:`View.in_initial_tag`; a query only then); else ``None``."""
    picked = None if rows[0].get(C.SELECTED) else next((r for r in rows[1:] if r.get(C.SELECTED)), None)
    return picked if picked is not None and view.in_initial_tag(sid) else None


def sample_page(
    root: str, pool: str, view: View, sid: str, rows: list[dict[str, Any]], extra: dict[str, Any], static: str,
    walk: str = "",
) -> str:
    """A sample's page; ``walk``: its :func:`walk_bar` when opened from a grid."""
    from lightly_airflow.plugins.media import is_frame

    row = rows[0]
    if row.get(C.PARENT_KEY) is not None:
        return object_page(root, pool, view, sid, rows, extra, static, walk)
    scope = Scope(version=view.version)
    key = row.get(C.KEY)
    image_url = pool_url(root, pool, "samples", H.seg(sid), "image") + qs([("version", view.version)])
    boxes = extra.get("boxes") or []
    objects = extra.get("objects") or []
    size = extra.get("size")

    def object_href(o: dict[str, Any]) -> str:
        return pool_url(root, pool, "samples", H.seg(str(o.get(C.SAMPLE_ID)))) + qs([("version", view.version)])

    colours = page_colours(extra.get("tasks") or (), objects, boxes)
    overlay = _boxes_svg(size[0], size[1], boxes, objects, object_href, colours) if (boxes or objects) and size else ""
    status = row.get(C.STATUS)
    status_box = (
        f'<div class="box {"ok" if status == C.STATUS_OK else "err"}">Status <b>{H.e(status)}</b>'
        + (f": {H.e(row.get(C.STATUS_REASON))}" if row.get(C.STATUS_REASON) else "")
        + duplicate_text(row.get(C.DUPLICATE_OF), row.get(C.STATUS_REASON))
        + "</div>"
    )
    tags = row.get(C.TAGS) or []
    tag_pills = "".join(
        f'<a class="pill" href="{H.e(pool_url(root, pool, "samples") + qs([("version", view.version), ("tag", t)]))}">'
        f"{H.e(t)}</a>" for t in tags
    ) or '<span class="muted">no tags</span>'
    why = ["<h2>Why it was picked</h2>"]
    run_entry = extra.get("run") or {}
    if row.get(C.PICK_RANK) is not None:
        picked = extra.get("picked") or row  # (a moved file's pick: the row of the run that picked it)
        # The run's name opens its picks as they are now (its tag: this sample among them under its key now, in
        # pick order); it opened the rows the run committed, with their keys then (a moved pick under its gone key,
        # this one missing), still a link beside it.
        rows_grid, picks_grid = run_grids(root, pool, view.version, {**run_entry, "run_id": picked.get(C.RUN_ID)})
        why.append(
            f'<p>Pick <b>{H.e(int(picked[C.PICK_RANK]) + 1)}</b> (pick rank {H.e(picked[C.PICK_RANK])}) of run '
            f'{H.link(picks_grid or rows_grid, picked.get(C.RUN_ID))}, which selected {H.e(run_entry.get("selected"))} '
            f'of {H.e(run_samples(run_entry))} samples.</p>'
        )
        if picks_grid:
            why.append(f'<p class="muted">{H.link(picks_grid, "Its picks")} as they are now · '
                       f'{H.link(rows_grid, "every sample it processed")}, as it committed them.</p>')
        if picked is not row:
            from lightly_airflow.datapool.moves import MOVED_FROM

            version = f'version {H.e(picked.get(COMMIT_VERSION))}'
            picked_as = (f'Picked in {version}' if picked.get(C.KEY) == row.get(MOVED_FROM) else  # (a chain: a key
                         f'Picked as <code>{H.e(picked.get(C.KEY))}</code> ({version})')  # before the one it left)
            why.append(f'<p>{picked_as}; the file was moved from <code>{H.e(row.get(MOVED_FROM))}</code> by run '
                       f'{H.e(row.get(C.RUN_ID))} (version {H.e(row.get(COMMIT_VERSION))}).</p>')
        near = extra.get("neighbours") or {}
        links = []
        for side in ("before", "after"):
            if side in near:
                n = near[side]
                href = pool_url(root, pool, "samples", H.seg(n[C.SAMPLE_ID])) + qs([("version", view.version)])
                links.append(f"{'previous' if side == 'before' else 'next'} pick: {H.link(href, image_name(n[C.KEY], n))}")
        if links:
            why.append("<p>" + " · ".join(links) + "</p>")
    elif picked := earlier_pick(view, sid, rows):
        why.append(
            f'<p><b>Selected</b> (in <code>{H.e(C.INITIAL_TAG)}</code>): run {H.e(picked.get(C.RUN_ID))} picked it '
            f'(pick rank {H.e(picked.get(C.PICK_RANK))}, version {H.e(picked.get(COMMIT_VERSION))}); a later run '
            "processed the same content again without picking it again, which leaves the selection standing.</p>")
    elif status == C.STATUS_OK:
        why.append("<p>Not picked by its run: the selection reached its target or stopped before this sample "
                   "(see the run's report).</p>")
    else:
        why.append("<p>Not a candidate: only samples with status ok are selected.</p>")
    objective = {k: v for k, v in row.items() if column_group(k) == "Why it was picked"}
    if any(v is not None for v in objective.values()):  # (a sample its run did not pick has none of them)
        # (names with line-break opportunities between their parts: the side column is narrow)
        why.append(H.table(["Objective at its pick", "Value"],
                           [(H.breakable(k), fmt(v)) for k, v in sorted(objective.items())], names=True))
    elif row.get(C.PICK_RANK) is not None:
        why.append('<p class="muted">The run recorded no per-pick objective values for this sample.</p>')
    strategies = ((run_entry.get("config") or {}).get("strategies")) or []
    if strategies:
        why.append("<p>The run's strategies:</p><ul>" + "".join(
            f"<li>{H.e(strategy_text(s))}</li>" for s in strategies) + "</ul>")
    groups: dict[str, list[tuple[str, str]]] = {}
    # (an image of a pool with videos: its video columns say nothing, four "—" lines; a row of a video, a frame or
    # a video that could not be read, keeps them all. Other empty columns stay: a corrupt file's missing embedding
    # and metadata are what its page is about)
    no_video = all(row.get(c) is None for c in C.VIDEO_COLUMNS)
    for k, v in row.items():
        if k in (C.TAGS,) or column_group(k) == "Why it was picked":
            continue
        if v is None and (k.startswith("object_") or k == C.PARENT_KEY):
            continue  # object columns of an image row (shown in the Objects section instead)
        if no_video and k in C.VIDEO_COLUMNS:
            continue
        groups.setdefault(column_group(k), []).append((k, fmt(v)))
    tables = column_tables(groups)
    versions = H.table(
        ["Committed in version", "Run", "Selected", "Pick rank", "Tags"],
        # (each run id and tag on one line, the table scrolling: wrapped anywhere in the scroller, 3 characters a line)
        [(H.e(r.get(COMMIT_VERSION)), _unbroken(r.get(C.RUN_ID)), fmt(r.get(C.SELECTED)), fmt(r.get(C.PICK_RANK)),
          ", ".join(_unbroken(t) for t in r.get(C.TAGS) or [])) for r in rows],
        numeric=(0, 3),
    )
    pred_note = ""
    if extra.get("predictions_error"):
        pred_note = f'<p class="muted">Predictions: {H.e(extra["predictions_error"])}</p>'
    elif boxes:
        noun = "box" if len(boxes) == 1 else "boxes"
        pred_note = (f'<p class="muted">{H.e(len(boxes))} predicted {noun} drawn (from <code>.lightly/predictions</code>). '
                     f'{task_legend((b.get("task") for b in boxes), colours)}</p>')
    if objects:
        pred_note += (f'<p class="muted">{H.e(len(objects))} object{"s" * (len(objects) != 1)} drawn: selected ones solid and marked ✓, the '
                      "others dashed; click a box for the object's page.</p>")
    live = live_control(root, pool, view, sid, extra.get("live"))
    body = (
        tabs(root, pool, scope, "") + walk
        + (f'<p>Frame {H.e(int(row[C.FRAME_INDEX]))} of video <code>{H.e(row[C.VIDEO])}</code> · frame key '
           if is_frame(row) else "<p>")
        + f'<code>{H.e(key)}</code> · sample id <code>{H.e(sid)}</code> · version {H.e(view.version)}</p>'
        + f'<div class="{layout_class(extra)}"><div class="main">' + content_note(extra)
        + ("" if picture_gone(extra) else
           f'<div class="figure"><img src="{H.e(image_url)}" alt="{H.e(key)}">{overlay}{live}</div>{pred_note}')
        + ("" if gone(extra) and extra.get("content_video") else video_player(root, pool, view, sid, row))
        + "</div><div class=\"side\">" + status_box + f"<h3>Tags</h3><p>{tag_pills}</p>"
        + similar_link(root, pool, view, sid, row, SHOW_IMAGES) + "".join(why) + "</div></div>"
        + (objects_section(root, pool, view, objects, bool(row.get(C.SELECTED)),
                           "frame" if is_frame(row) else "image", colours) if objects else "")
        # (its own scroller: at 400 px the run ids, wrapped, still left the table 22 px wider than the page)
        + tables + '<h2>Versions of this sample</h2><div class="hscroll">' + versions + "</div>"
    )
    crumbs = [("Datapools", f"{root}/"), (pool, pool_url(root, pool)), ("samples", pool_url(root, pool, "samples")),
              (image_name(key, row), None)]  # (as on its card: a 330-character key filled three lines; whole below)
    scripts = ([f"{static}/keys.js"] if walk else []) + ([f"{static}/live.js"] if getattr(extra.get("live"), "key", None) else [])
    return H.page("Sample", body, crumbs=crumbs, static=static, scripts=scripts)


def _unbroken(value: Any) -> str:
    """A value that must not wrap (a run id, a tag): one line, its table in an ``.hscroll``."""
    return fmt(value) if value is None else f'<span class="nowrap">{H.e(value)}</span>'


def duplicate_text(original: Any, reason: Any) -> str:
    """After a duplicate's status and reason: " — duplicate of <key>" only where the reason does not already name
    the original (the metadata stage's reason, ``same content as 'a.jpg'``, does: the box named it twice)."""
    if not original or str(original) in str(reason or ""):
        return ""
    return f" — duplicate of <code>{H.e(original)}</code>"


def live_control(root: str, pool: str, view: View, sid: str, clip: Any) -> str:
    """The "LIVE" control over an image whose Live Photo clip is beside it (``clip``: a
    :class:`~lightly_airflow.plugins.media.LiveClip`): it plays the clip (``…/video``, muted, inline) in place of
    the photo until pressed again or the clip ends (``static/live.js``; a clip the browser cannot play leaves the
    photo and says so in the control's title). A clip whose check failed: the control, inactive, says why;
    nothing when there is no clip."""
    if clip is None or (clip.key is None and not clip.error):
        return ""
    if clip.key is None:
        why = f"Whether this photo has a Live Photo clip could not be checked ({clip.error}): only the photo is shown."
        return (f'<button type="button" class="live-btn" aria-disabled="true" aria-pressed="false" '
                f'title="{H.e(why)}">LIVE</button>')
    src = pool_url(root, pool, "samples", H.seg(sid), "video") + qs([("version", view.version)])
    name = clip.key.rsplit("/", 1)[-1]
    title = f"Play its Live Photo clip {name} (muted) in place of the photo; press again for the photo"
    return (f'<video class="live" muted playsinline preload="none" hidden src="{H.e(src)}"></video>'
            f'<button type="button" class="live-btn" aria-pressed="false" data-clip="{H.e(clip.key)}" '
            f'title="{H.e(title)}">LIVE</button>')


def gone(extra: dict[str, Any]) -> bool:
    """Whether the file the page's pictures come from is gone (:func:`content_note` says so)."""
    from lightly_airflow.plugins.media import GONE

    state = extra.get("content")
    return state is not None and state.state == GONE


def picture_gone(extra: dict[str, Any]) -> bool:
    """Whether the page's picture cannot be shown because its file is gone (the image, or the video of a frame
    whose run stored no PNG of it): the page shows the note (:func:`content_note`) instead of a broken image (and
    a frame's page no player of a gone video)."""
    return gone(extra) and not (extra.get("content_video") and extra.get("still") == "stored")


def layout_class(extra: dict[str, Any]) -> str:
    """The class of a sample's or object's two columns: ``layout no-picture`` when its picture is gone
    (:func:`picture_gone`): the side column floats at the right and the tables below rise beside it, instead of an
    empty main column as tall as the side one under the note (``html.CSS``)."""
    return "layout no-picture" if picture_gone(extra) and not extra.get("stored_crop") else "layout"


def content_note(extra: dict[str, Any], of_object: bool = False) -> str:
    """The warning when the file a sample's pictures come from (its image, its video, an object's image or video)
    is not the content its row was computed from any more (replaced under the same key), is gone, or could not be
    checked (``extra``: ``content``, a :class:`~lightly_airflow.plugins.media.ContentState`, ``content_video``
    and, for a frame, ``still``: ``"stored"``, ``"decoded"`` or ``None``); nothing when it is the same."""
    from lightly_airflow.plugins.media import CHANGED, GONE, UNKNOWN

    state = extra.get("content")
    if state is None or state.state not in (CHANGED, GONE, UNKNOWN):
        return ""
    video, still = bool(extra.get("content_video")), extra.get("still")
    what = "object" if of_object else "sample"
    at = f"the file at <code>{H.e(state.key)}</code>"
    recorded = f"recorded etag <code>{H.e(state.recorded)}</code>"
    # What the page shows from that file, as it is now (the current file) …
    if not video:
        shown = ("the crop and the image below are cut from the current file" if of_object
                 else "the image below is the current file")
    elif of_object:  # an object of a video frame: no player, the crop and the frame come from the frame's picture
        shown = {"stored": "", None: "the crop and the frame below may be cut from the current file"}.get(
            still, "the crop and the frame below are cut from the current file")
    else:
        shown = "the video below is the current file"
    # … and the frame's picture, which is the processed version's when its run stored it as PNG
    frame = ""
    if video and still == "stored":
        frame = (" The crop and the frame below are cut from the PNG its run stored of the processed frame: they "
                 "are the ones the scores describe." if of_object
                 else " The frame above the player is the PNG its run stored of the processed version.")
    elif video and still == "decoded" and not of_object:
        frame = " The frame above the player is decoded from the current file too."
    elif video and still is None and not of_object:
        frame = " Whether the frame above the player is the processed version's could not be checked."
    if state.state == CHANGED:
        text = (f"{at[0].upper()}{at[1:]} changed after this {what} was processed ({recorded}, now "
                f"<code>{H.e(state.current)}</code>)" + (f": {shown}, not the one the scores describe." if shown
                                                         else ".") + frame)
        return f'<div class="box warn content-changed">{text}</div>'
    if state.state == GONE:
        cannot = {(False, False): "its image cannot be shown", (False, True): "its crop cannot be cut",
                  (True, False): "its video cannot be played", (True, True): "its frame cannot be decoded"}
        lost = cannot[(video, of_object)]
        if video and still == "stored":
            frame = frame.replace(" The frame above the player", " The frame shown")
        elif of_object and extra.get("stored_crop"):  # the page shows the crop's thumbnail its run stored
            lost = (f"its {'frame' if video else 'image'} cannot be shown nor its crop cut from it: the crop below is "
                    "the thumbnail its run stored of it")
            frame = ""
        elif of_object:  # no stored PNG of its frame (or an image), no stored crop: the page shows neither picture
            lost, frame = f"neither its crop nor its {'frame' if video else 'image'} can be shown", ""
        elif video and still == "decoded":
            frame = " Its frame cannot be shown either."
        text = f"{at[0].upper()}{at[1:]} is gone: the datasource no longer holds it ({recorded}), so {lost}.{frame}"
        return f'<div class="box err content-gone">{text}</div>'
    now = shown or "the pictures below are from the current file"
    text = (f"Whether {at} is still the content this {what} was processed from could not be checked "
            f"({H.e(state.reason)}): {now}, which may not be the one the scores describe.{frame}")
    return f'<div class="box warn content-unknown">{text}</div>'


def video_player(root: str, pool: str, view: View, sid: str, row: dict[str, Any]) -> str:
    """For a video frame: its video in the browser's player, starting at the frame (a media fragment ``#t=``),
    or a note why there is none (a container browsers do not play)."""
    from lightly_airflow.plugins.media import PLAYABLE_VIDEOS, is_frame, playable_video

    if not is_frame(row):
        return ""
    video = str(row.get(C.VIDEO))
    if playable_video(video) is None:
        return (f'<p class="muted">Its video <code>{H.e(video)}</code> is not a container browsers play '
                f'({", ".join(sorted(PLAYABLE_VIDEOS))}): only the frame is shown.</p>')
    raw = row.get(C.FRAME_SECONDS)
    seconds = float(raw) if isinstance(raw, (int, float)) and math.isfinite(raw) else None
    at = "" if seconds is None else f"#t={seconds:.3f}"
    src = pool_url(root, pool, "samples", H.seg(sid), "video") + qs([("version", view.version)]) + at
    when = "" if seconds is None else f" at {seconds:.2f} s"
    return (f'<h3>In its video</h3><video class="player" controls preload="metadata" src="{H.e(src)}"></video>'
            f'<p class="muted">Frame {H.e(row.get(C.FRAME_INDEX))} of <code>{H.e(video)}</code>{H.e(when)}: the '
            "player starts there; it plays the video as the datasource holds it now.</p>")


def column_tables(groups: dict[str, list[tuple[str, str]]]) -> str:
    """One table per column group, in the sample page's order (sample, metadata, scores, predictions)."""
    order = ["Sample", "Metadata", "Scores", "Predictions"]
    # (``items``: raw column names, formatted values; a name wraps only after its ``.`` and ``_``: H.breakable)
    return "".join(f"<h2>{H.e(g)}</h2>" + H.table(["Column", "Value"], [(H.breakable(k), v) for k, v in sorted(items)],
                                                  names=True)
                   for g, items in sorted(groups.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 9))


def similar_link(root: str, pool: str, view: View, sid: str, row: dict[str, Any], show: str) -> str:
    """A link to the grid of this version's samples (or objects) ordered by similarity to this one (its embedding);
    nothing for a row without one (``View.sample`` gives its size as ``embedding``)."""
    if not row.get("embedding"):
        return ""
    params: list[tuple[str, Any]] = [("version", view.version), ("sort", SIMILAR + sid)]
    if show == SHOW_OBJECTS:
        params.append(("show", SHOW_OBJECTS))
    what = "objects" if show == SHOW_OBJECTS else "samples"
    base = pool_url(root, pool, "samples")
    # (among the selected: the selected rows' partition alone is read, fast on a pool of millions)
    selected = H.link(base + qs([*params, ("tag", C.INITIAL_TAG)]), "among the selected")
    return f'<p>{H.link(base + qs(params), f"Find similar {what}")} · {selected}</p>'


def stored_crop(root: str, pool: str, sid: str, key: Any) -> str:
    """An object's crop when the file it was cut from is gone: the thumbnail its run made of the crop it processed
    (``<datapool>/_thumbnails/<object id>.jpg``, at most 256 px), captioned as such."""
    thumb = pool_url(root, pool, "thumbnails", H.seg(sid))
    return (f'<h3>Its stored crop</h3><div class="figure crop stored"><img src="{H.e(thumb)}" alt="{H.e(key)}">'
            '</div><p class="muted stored-crop">The stored crop: the thumbnail its run made of this object\'s crop '
            "when it processed it (at most 256 pixels), the object its scores describe; not cut from the file now, "
            "which is gone.</p>")


def object_page(
    root: str, pool: str, view: View, sid: str, rows: list[dict[str, Any]], extra: dict[str, Any], static: str,
    walk: str = "",
) -> str:
    """An object of an object-level run: its crop, its image (link), why it is selected, its own columns."""
    row = rows[0]
    key = row.get(C.KEY)
    crop_url = pool_url(root, pool, "samples", H.seg(sid), "image") + qs([("version", view.version)])
    parent = extra.get("parent")
    in_image = ""
    if parent:
        parent_href = pool_url(root, pool, "samples", H.seg(parent[C.SAMPLE_ID])) + qs([("version", view.version)])
        # A video frame's objects: say "frame" (of which video) where an image's say "image".
        what = "frame" if parent.get(C.VIDEO) is not None and parent.get(C.FRAME_INDEX) is not None else "image"
        # (its image's key, or its frame's number and video, not the frame's key: ``cat-6-mp4.png`` is the run's
        # name for a frame, no file of the datasource; its task and index, its key in the line below)
        where = (f'frame {H.e(int(parent[C.FRAME_INDEX]))} of video <code>{H.e(parent[C.VIDEO])}</code>'
                 if what == "frame" else f"<code>{H.e(parent.get(C.KEY))}</code>")
        image_link = (f'<p class="objname">Object of {"" if what == "frame" else "image "}<a href="'
                      f'{H.e(parent_href + "#objects")}">{where}</a>: {H.e(row.get(C.OBJECT_TASK))} '
                      f'#{H.e(row.get(C.OBJECT_INDEX))}, {fmt(row.get(C.OBJECT_CATEGORY))}.</p>')
        size = extra.get("size")
        # (its image, or its frame's video without a stored PNG of the frame, gone: the note says so, no broken image)
        if size and not picture_gone(extra):
            image_url = pool_url(root, pool, "samples", H.seg(parent[C.SAMPLE_ID]), "image") + qs([("version", view.version)])
            colours = page_colours(extra.get("tasks") or (), [row])
            overlay = _boxes_svg(size[0], size[1], [], [row], lambda o: parent_href + "#objects", colours)
            in_image = (f'<h3>In its {what}</h3><div class="figure"><img src="{H.e(image_url)}" '
                        f'alt="{H.e(parent.get(C.KEY))}">{overlay}</div>'
                        f'<p class="muted">{task_legend([row.get(C.OBJECT_TASK)], colours)}</p>')
        rank = parent.get(C.PICK_RANK)
        chosen = (f"Selected: its run picked its {what} (pick {H.e(int(rank) + 1)}), which selects all the {what}'s "
                  f"objects." if rank is not None else
                  f"Selected: its {what} is in <code>{C.INITIAL_TAG}</code> (an earlier run picked it), which selects "
                  f"all the {what}'s objects." if row.get(C.OBJECT_SELECTED) else
                  f"Not selected: its run did not pick its {what}.")
        values = {k: v for k, v in parent.items() if k.startswith(C.SELECTION_PREFIX) and v is not None}
        if values:  # object-level objectives score the image by its objects (docs/objects.md)
            chosen += f"<br>Its {what}'s objective at that pick:" + H.table(
                ["", ""], [(H.breakable(k), fmt(v)) for k, v in sorted(values.items())], names=True)
    else:
        image_link = (f'<p class="warn box">Its image <code>{H.e(row.get(C.PARENT_KEY))}</code> is not in this '
                      "version.</p>")
        chosen = "Selected with its image." if row.get(C.OBJECT_SELECTED) else "Not selected."
    box = row.get(C.OBJECT_BBOX)
    crop = row.get(C.OBJECT_CROP_BOX)
    facts = H.table(["", ""], [
        ("task", H.e(row.get(C.OBJECT_TASK))), ("index", H.e(row.get(C.OBJECT_INDEX))),
        ("category", fmt(row.get(C.OBJECT_CATEGORY))), ("score", fmt(row.get(C.OBJECT_SCORE))),
        ("box as predicted [x, y, w, h]", fmt(box)), ("crop (padded, clipped) [x, y, w, h]", fmt(crop)),
        ("selected", fmt(row.get(C.OBJECT_SELECTED))),
    ])
    groups: dict[str, list[tuple[str, str]]] = {}
    for k, v in row.items():
        if k in (C.TAGS, C.SELECTED) or v is None:  # object_selected says whether it is selected
            continue
        groups.setdefault(column_group(k), []).append((k, fmt(v)))
    tables = column_tables(groups)
    body = (
        tabs(root, pool, Scope(version=view.version, show=SHOW_OBJECTS), "") + walk
        + image_link + f'<p class="muted">object key <code>{H.e(key)}</code> · object id <code>{H.e(sid)}</code> · '
        f'version {H.e(view.version)}</p>' + content_note(extra, of_object=True) + f'<div class="{layout_class(extra)}"><div class="main">'
        + (stored_crop(root, pool, sid, key) if picture_gone(extra) and extra.get("stored_crop") else
           "" if picture_gone(extra) else
           f'<h3>Its crop</h3><div class="figure crop"><img src="{H.e(crop_url)}" alt="{H.e(key)}"></div>')
        + in_image + f'</div><div class="side"><div class="box {"ok" if row.get(C.OBJECT_SELECTED) else ""}">{chosen}</div>'
        + f"<h3>{object_label(row)}</h3>{facts}" + similar_link(root, pool, view, sid, row, SHOW_OBJECTS)
        + "</div></div>" + tables
    )
    crumbs = [("Datapools", f"{root}/"), (pool, pool_url(root, pool)),
              ("objects", pool_url(root, pool, "samples") + qs([("show", SHOW_OBJECTS)])),
              (object_name(row, parent) if parent else card_key(key), None)]
    return H.page("Object", body, crumbs=crumbs, static=static, scripts=[f"{static}/keys.js"] if walk else [])


def map_page(root: str, pool: str, view: View, scope: Scope, color: str, static: str) -> str:
    params = scope.to_params()
    api = f"{root}/api/pools/{H.seg(pool)}/map" + qs([*params, ("color", color)])
    options = [("selected", "selected / not"), ("run", "run")] + [
        (f"tag:{t['name']}", f"tag {t['name']}") for t in recent_tags(view, [color.removeprefix("tag:")])]
    options += [(c, c) for c, f in view.facets().items() if c not in (C.SELECTED, C.RUN_ID)]
    color_opts = "".join(  # (each option's whole name in its title: the select is cut, ``CSS`` ``select.sort``)
        f'<option value="{H.e(v)}"{" selected" if v == color else ""} title="{H.e(t)}">{H.e(t)}</option>'
        for v, t in options
    )
    base = pool_url(root, pool, "map")
    main = (
        f'<p>{H.e(scope_text(view, scope))}</p>'
        f'<form method="get" action="{H.e(base)}" class="toolbar">{_hidden(params)}'
        f'<label>Colour by <select name="color" class="sort">{color_opts}</select></label><button type="submit">Show</button></form>'
        '<div class="toolbar"><span>Drag to select:</span><label><input type="radio" name="mapmode" value="lasso" checked> '
        'lasso</label><label><input type="radio" name="mapmode" value="box"> box</label>'
        '<span class="muted">hover: thumbnail · click: open the sample</span></div>'
        '<canvas id="map" aria-label="embedding map"></canvas><div id="legend" class="legend"></div>'
        '<p id="mapstatus" class="muted">Loading…</p><p id="selinfo" class="muted"></p>'
        + save_tag_form(root, pool, scope, polygon=True)
        + f'<div id="hover"></div><div id="mapdata" data-api="{H.e(api)}" '
        f'data-thumb="{H.e(pool_url(root, pool, "thumbnails") + "/")}" '
        f'data-sample="{H.e(pool_url(root, pool, "samples") + "/")}" data-suffix="{H.e(qs([("version", scope.version)]))}">'
        "</div>"
    )
    body = tabs(root, pool, scope, "Map") + '<div class="layout">' + filter_form(
        root, pool, view, scope, base, extra=[("color", color)]
    ) + f'<div class="main" id="{MAIN}" tabindex="-1">{main}</div></div>'
    crumbs = [("Datapools", f"{root}/"), (pool, pool_url(root, pool)), ("map", None)]
    return H.page(f"Embedding map of {pool}", body, crumbs=crumbs, static=static, skip=(MAIN, "Skip the filters to the map"),
                  scripts=[f"{static}/map.js"])


def compare_page(root: str, pool: str, view: View, chosen: list[str], column: str | None,
                 result: dict[str, Any] | None, static: str) -> str:
    tag_names = [t["name"] for t in recent_tags(view, chosen)]
    selects = "".join(
        f'<label>Tag {i + 1} <select name="tag"><option value="">—</option>' + "".join(
            f'<option value="{H.e(n)}"{" selected" if i < len(chosen) and chosen[i] == n else ""}>{H.e(n)}</option>'
            for n in tag_names) + "</select></label> "
        for i in range(max(2, min(4, len(chosen) + 1)))
    )
    col_opts = '<option value="">—</option>' + "".join(
        f'<option value="{H.e(c)}"{" selected" if c == column else ""} title="{H.e(c)}">{H.e(c)}</option>'
        for c in view.facets()
    )
    form = (
        f'<form method="get" action="{H.e(pool_url(root, pool, "compare"))}" class="toolbar">'
        f'<input type="hidden" name="version" value="{H.e(view.version)}">{selects}'
        f'<label>Distribution of <select name="column" class="sort">{col_opts}</select></label>'
        '<button class="primary" type="submit">Compare</button></form>'
    )
    parts = [tabs(root, pool, Scope(version=view.version), "Compare tags"), form]
    if result:
        tags = result["tags"]
        head = ["", *tags]
        rows = [(H.e(t), *[H.e(n) for n in result["overlap"][i]]) for i, t in enumerate(tags)]
        parts.append("<h2>Overlap (samples in both)</h2>" + H.table(head, rows, numeric=tuple(range(1, len(head)))))
        parts.append(f"<p>In every tag: <b>{H.e(result['all'])}</b> · in any: <b>{H.e(result['any'])}</b>.</p>")
        if result.get("column"):
            parts.append(_distribution(result))
    return H.page(f"Compare tags of {pool}", "".join(parts),
                  crumbs=[("Datapools", f"{root}/"), (pool, pool_url(root, pool)), ("compare", None)], static=static)


def _distribution(result: dict[str, Any]) -> str:
    col, bins, series, tags = result["column"], result["bins"], result["series"], result["tags"]
    if not bins:
        return f"<p class='muted'>{H.e(col)} has no values.</p>"
    if result["kind"] == "number":
        labels = [f"{bins[i]:.4g} – {bins[i + 1]:.4g}" for i in range(len(bins) - 1)]
        labels[0] = "≤ " + labels[0].split(" – ")[1]
        labels[-1] = "≥ " + labels[-1].split(" – ")[0]
        note = (f"<p class='muted'>{H.e(col)}: 20 bins between its 1st and 99th percentile; values outside are "
                "counted in the first and last bin (clipped). Bars: share of each tag.</p>")
    else:
        labels = [str(b) for b in bins]
        note = f"<p class='muted'>{H.e(col)}: share of each tag per value.</p>"
    totals = [max(1, sum(s)) for s in series]
    rows = []
    for i, label in enumerate(labels):
        cells = [H.e(label)]
        for j in range(len(tags)):
            share = series[j][i] / totals[j]
            cells.append(f'<span class="bar" style="width:{share * 120:.1f}px"></span> {share:.1%} ({H.e(series[j][i])})')
        rows.append(cells)
    return f"<h2>Distribution of {H.e(col)}</h2>" + note + H.table([col, *tags], rows)

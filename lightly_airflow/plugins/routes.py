"""The curation routes of the plugin app: grid, sample, thumbnails, images, map, compare, export, tagging.

Relative to the mount point (``/lightly``); every one sits behind the app's Airflow authentication, and making a
tag also needs Airflow's "create asset events" permission (:data:`~lightly_airflow.plugins.app.CAN_TAG`).

HTML: ``GET /pools/{pool}/samples`` (grid + filters), ``GET /pools/{pool}/samples/{sample_id}``,
``GET /pools/{pool}/map``, ``GET /pools/{pool}/compare``, ``POST /pools/{pool}/tags`` (303 to the new tag).
Files: ``GET /pools/{pool}/thumbnails/{sample_id}``, ``GET /pools/{pool}/samples/{sample_id}/image``,
``GET /pools/{pool}/export?format=list|csv|label-studio|coco&<scope>``, ``GET /static/{theme.js,map.js}``.
JSON: ``GET /api/pools/{pool}/samples``, ``/api/pools/{pool}/samples/{sample_id}``, ``/api/pools/{pool}/map``,
``/api/pools/{pool}/facets``, ``/api/pools/{pool}/compare``; ``POST /api/pools/{pool}/tags``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from lightly_airflow import columns as C
from lightly_airflow.datapool.rows import COMMIT_VERSION
from lightly_airflow.plugins import app as A
from lightly_airflow.plugins import data as D
from lightly_airflow.plugins import pages as P
from lightly_airflow.plugins.config import PoolSpec
from lightly_airflow.plugins.media import PLACEHOLDER_SVG, MediaError
from lightly_airflow.plugins.query import QueryError, Scope, View, parse_scope

if TYPE_CHECKING:
    from lightly_airflow.plugins.media import ContentState, NotModifiedHook

log = logging.getLogger(__name__)

STATIC_FILES = {name: "text/javascript; charset=utf-8"
                for name in ("theme.js", "map.js", "keys.js", "grid.js", "checks.js", "live.js")}
SAMPLE_ID = re.compile(r"^[0-9a-f]{32}(-f[0-9]{1,9})?$")
#: Rows one export may hold (list and CSV); Label Studio and COCO read prediction files, so fewer.
MAX_EXPORT_ROWS = 1_000_000
MAX_RICH_EXPORT_ROWS = 20_000


class ForbiddenError(PermissionError):
    """A request that must not change anything (another site's form)."""


def _static(request: Request) -> str:
    return f"{A._root(request)}/static"


def _check_sample_id(sid: str) -> str:
    if not SAMPLE_ID.match(sid):
        raise D.NotFoundError("No such sample.")
    return sid


def _view(spec: PoolSpec, version: int | None) -> View:
    return View(spec, version, D.credentials(spec))


def _scope(request: Request) -> Scope:
    reserved = {"sort", "order", "offset", "limit", "color", "format", "name", "polygon", "column", "theme", "at"}
    return parse_scope((k, v) for k, v in request.query_params.multi_items() if k not in reserved)


def _source_credentials(spec: PoolSpec, source: str | None) -> Any:
    """What reads a run's images at ``source``: the pool's ``datasource_conn_id``, else its ``conn_id`` when that
    reaches the datasource's store (runs from another cloud than the pool's: the environment's credentials)."""
    from lightly_airflow.hooks.storage import credentials_for, fallback_credentials

    if spec.datasource_conn_id:
        return credentials_for(spec.datasource_conn_id)
    return fallback_credentials(spec.conn_id, source, own="the datapool's datasource_conn_id")


def _same_origin(request: Request) -> None:
    """Refuse a state-changing request sent by another site's page (the auth cookie would ride along)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return
    host = A._host(request)
    if urlsplit(origin).netloc != host:
        raise ForbiddenError(f"Refused: the request came from {urlsplit(origin).netloc or 'elsewhere'}, not from {host}.")


def _sample_extra(view: View, spec: PoolSpec, row: dict[str, Any]) -> dict[str, Any]:
    from lightly_airflow.plugins.media import frame_size, image_size, is_frame, live_photo_clip, read_predictions

    extra: dict[str, Any] = {}
    version = row.get("commit_version")
    extra["tasks"] = view.tasks()  # (every page colours a task alike: ``colours.task_colours``' among)
    try:
        # (a moved file's pick: the run that picked it, not the one that moved it, with that run's neighbours)
        extra["picked"] = view.original_pick(row)
        extra["neighbours"] = view.neighbours_in_pick_order(row, extra["picked"])
    except Exception as exc:  # noqa: BLE001 - the page still shows the sample
        log.warning("Pick neighbours of %s: %s", row.get(C.SAMPLE_ID), exc)
    picker = (extra.get("picked") or row).get("commit_version")
    extra["run"] = next((e for e in view.history() if e["version"] == picker), {})
    if row.get(C.PARENT_KEY) is not None:  # an object: its image (with the object's box drawn over it)
        extra["parent"] = parent = view.parent_of(row)
        source = view.datasource_of(version)
        if source:
            extra.update(_content(spec, source, row, parent))
        if P.picture_gone(extra):  # its crop cannot be cut: the thumbnail its run stored of it, if there is one
            extra["stored_crop"] = _has_thumbnail(spec, str(row.get(C.SAMPLE_ID) or ""))
        if parent and is_frame(parent):
            extra["size"] = frame_size(parent)
        elif source and parent:
            extra["size"] = image_size(source, str(row[C.PARENT_KEY]), _source_credentials(spec, source))
        return extra
    objects = view.objects_of(row)
    if objects:
        extra["objects"] = objects
    source = view.datasource_of(version)
    if source:
        extra.update(_content(spec, source, row, None))
        creds = _source_credentials(spec, source)
        if not is_frame(row) and not P.picture_gone(extra):  # a photo's Live Photo clip beside it (its LIVE control)
            extra["live"] = live_photo_clip(source, row.get(C.KEY) or "", creds)
        try:
            # Boxes of tasks that became objects are drawn from the object rows (with their links and selection).
            tasks = {o.get(C.OBJECT_TASK) for o in objects}
            boxes = [b for b in read_predictions(source, row.get(C.KEY) or "", creds) if b["task"] not in tasks]
            if boxes:
                extra["boxes"] = boxes
            if boxes or objects:
                extra["size"] = frame_size(row) if is_frame(row) else image_size(source, row.get(C.KEY) or "", creds)
                if extra["size"] is None:
                    extra["predictions_error"] = "the image's size could not be read, so its boxes are not drawn"
        except MediaError as exc:
            extra["predictions_error"] = str(exc)
    return extra


def _has_thumbnail(spec: PoolSpec, sid: str) -> bool:
    """Whether the datapool holds the thumbnail of sample ``sid`` (an object's: its crop, as its run cut it)."""
    from lightly_airflow.thumbnails import thumbnail_exists

    if not SAMPLE_ID.match(sid):
        return False
    try:  # (an existence check: the page's picture request reads it)
        return thumbnail_exists(spec.uri, sid, D.credentials(spec))
    except Exception as exc:  # noqa: BLE001 - the page shows no picture, as without a thumbnail
        log.warning("Cannot read the thumbnail of %s: %s", sid, exc)
        return False


def _content(spec: PoolSpec, source: str, row: dict[str, Any], parent: dict[str, Any] | None) -> dict[str, Any]:
    """Whether the file the row's pictures come from (:func:`~lightly_airflow.plugins.media.content_file`) is
    still the content the row was computed from (``content``: one metadata call, or locally the listing's cached
    hash) and, for a frame's video that is not (``still``): whether the frame shown is its run's stored PNG of
    the processed version (``"stored"``), decoded from the video as it is now (``"decoded"``) or unknown (``None``)."""
    from lightly_airflow.plugins.media import SAME, content_file, content_state, is_frame
    from lightly_airflow.video.export import stored_frame_etag

    creds = _source_credentials(spec, source)
    key, video = content_file(row, parent)
    state = content_state(source, key, row.get(C.ETAG), creds)
    out: dict[str, Any] = {"content": state, "content_video": video}
    frame = row if is_frame(row) else parent if parent is not None and is_frame(parent) else None
    if video and frame is not None and state.state != SAME:
        try:
            stored = stored_frame_etag(source, str(frame[C.KEY]), creds)
            out["still"] = "stored" if stored is not False and stored == state.recorded else "decoded"
        except Exception as exc:  # noqa: BLE001 - the page says it cannot tell
            log.warning("Cannot read the stored PNG of frame %s: %s", frame.get(C.KEY), exc)
            out["still"] = None
    return out


def _sample_rows(view: View, sid: str) -> list[dict[str, Any]]:
    """The sample's rows in ``view``; not there: a 404 that says whether the latest version has it (a link
    from a newer grid opened with an older ``version``, a bookmark: before, only "no sample at version 1")."""
    rows = view.sample(sid)
    if not rows:
        later = ""
        if view.version != view.latest and _view(view.spec, None).sample(sid):
            later = (f" It was committed after that: the latest version ({view.latest}) has it (open the page "
                     "without its version to see it).")
        raise D.NotFoundError(f"Datapool {view.spec.name!r} has no sample {sid!r} at version {view.version}.{later}")
    return rows


def _export(view: View, spec: PoolSpec, scope: Scope, fmt: str) -> tuple[bytes, str, str, int]:
    """The scope as a download, through the formats of :mod:`lightly_airflow.datapool.export` (keys
    percent-encoded into URIs). The UI adds to them: CSV carries every metadata/score column after the
    module's own columns and ``file_gone`` (the datasource's latest listing no longer holds the file:
    :func:`~lightly_airflow.datapool.export.gone_exports`), COCO gets the predicted boxes of
    ``.lightly/predictions`` as annotations. The last value: how many exported files are gone (logged too)."""
    from lightly_airflow.datapool import export as X
    from lightly_airflow.plugins.media import read_predictions

    if fmt not in X.FORMATS:
        raise QueryError(f"Unknown export format {fmt!r}; use one of {sorted(X.FORMATS)}.")
    if scope.objects:
        raise QueryError("Exports are of images: show images (a COCO export of images carries their objects' boxes).")
    total = view.count(scope)
    limit = MAX_RICH_EXPORT_ROWS if fmt == "coco" else MAX_EXPORT_ROWS
    if total > limit:
        raise QueryError(f"{total} samples match; a {fmt} export holds at most {limit}. Narrow the filter or tag.")
    # (the records' fields: key, ids, run, pick, version and a frame's video, index, pts and seconds; CSV: every column)
    fields = (C.KEY, C.SAMPLE_ID, C.RUN_ID, C.PICK_RANK, COMMIT_VERSION, C.VIDEO, C.FRAME_INDEX, C.FRAME_PTS,
              C.FRAME_SECONDS)
    table = view.export_rows(scope, only=None if fmt == "csv" else fields)
    rows = table.select([c for c in fields if c in table.column_names]).to_pylist()  # (CSV: the others by column)
    sources = X.run_datasources(view.history())
    uris = X.SampleUris()  # (a selected video frame: its PNG under .lightly/frames/, as the CLI's export)
    records = [
        X.ExportRecord(key=r[C.KEY], uri=uris.uri(r, sources.get(r.get("commit_version"))),
                       sample_id=r.get(C.SAMPLE_ID), run_id=r.get(C.RUN_ID), pick_rank=r.get(C.PICK_RANK),
                       **X.frame_fields(r))
        for r in rows
    ]
    name = scope.tag or scope.run or f"filter ({P.scope_text(view, scope)})"
    gone = X.gone_exports(view.datapool(), records, history=view.all_history())
    X.warn_gone(gone, name, len(records))
    if fmt == "csv":  # (column by column, X.column_cells: 50,000 rows of 30 columns, CPU 2.3 -> 1.2 s, 2026-12-07)
        extra = [c for c in table.column_names if c not in (C.KEY, C.SAMPLE_ID, C.RUN_ID, C.PICK_RANK)] if rows else []
        gone_uris = set(gone.uris)
        text = X.csv_text([*X.CSV_HEADER, *extra, "file_gone"], [
            *X.csv_cells(records, name), *(X.column_cells(table.column(c)) for c in extra),
            ["true" if record.uri in gone_uris else "false" for record in records]])
    elif fmt == "coco":
        doc = X.coco_images(records, name)
        creds = {s: _source_credentials(spec, s) for s in set(sources.values()) if s}
        categories: dict[int, dict[str, Any]] = {}
        for image, r in zip(doc["images"], rows, strict=True):
            source = sources.get(r.get("commit_version"))
            try:
                boxes = read_predictions(source, r[C.KEY], creds[source]) if source else []
            except MediaError:
                boxes = []
            for box in boxes:
                cid = box.get("category_id")
                cid = int(cid) if isinstance(cid, int) else len(categories)
                categories.setdefault(cid, {"id": cid, "name": str(box.get("category", cid))})
                x, y, w, h = box["bbox"]
                doc["annotations"].append({
                    "id": len(doc["annotations"]) + 1, "image_id": image["id"], "category_id": cid,
                    "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0, "score": box.get("score"),
                })
        doc["categories"] = sorted(categories.values(), key=lambda c: c["id"])
        text = X.json_document(doc) + "\n"
    else:
        text = X.render(records, name, fmt)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{spec.name}-{scope.tag or scope.run or 'filter'}-v{view.version}")[:100]
    return (text.encode("utf-8"), X.content_type(fmt), f"{safe}{'.coco' if fmt == 'coco' else ''}{X.file_suffix(fmt)}",
            gone.count)




def _make_tag(view: View, spec: PoolSpec, scope: Scope, name: str, polygon: str | None, user: Any,
              checked: list[str] | None = None) -> dict[str, Any]:
    """A hand-made tag of the scope's rows: all of them, those inside the map's ``polygon``, or the ``checked``
    sample ids (the grid's check boxes; each must be in the scope)."""
    from lightly_airflow.datapool.tagging import create_tag

    if scope.objects:
        raise QueryError("Tags are on images, not on objects: show images to make a tag.")
    if checked is not None:
        members = _checked_members(view, scope, checked)
        source: dict[str, Any] = {"from": "checked samples", "samples": sorted(set(checked))}
    elif polygon:
        try:
            points = [(float(p[0]), float(p[1])) for p in json.loads(polygon)]
        except (ValueError, TypeError, IndexError, KeyError):
            raise QueryError("The selection is not a list of [x, y] corners.") from None
        members = view.in_polygon(scope, points)
        source = {"from": "map selection", "polygon": points[:200]}
    else:
        members = view.members(scope)
        source = {"from": "filter"}
    source.update({"scope": scope.to_dict(), "version": view.version})
    made_by = None
    if user is not None:
        made_by = str(getattr(user, "get_name", lambda: None)() or "") or None
    return create_tag(view.datapool(), name, members, made_by=made_by, source=source)


def _checked_members(view: View, scope: Scope, checked: list[str]) -> Any:
    """The scope's rows of the ``checked`` sample ids; refuses none, too many, malformed ones and any that the
    scope does not hold (a box checked on a page of another filter or version), naming them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = sorted({c.strip() for c in checked if c.strip()})
    if not wanted:
        raise QueryError("No sample is checked: tick the boxes of the samples to tag, or save every sample that "
                         "matches the filters.")
    if len(wanted) > P.MAX_CHECKED:
        raise QueryError(f"{len(wanted)} samples are checked; at most {P.MAX_CHECKED} can be tagged this way: save a "
                         "filter as a tag instead.")
    bad = [c for c in wanted if not SAMPLE_ID.match(c)]
    if bad:
        raise QueryError(f"Not sample ids: {', '.join(repr(b) for b in bad[:5])}.")
    members = view.members(scope)
    members = members.filter(pc.is_in(members.column(C.SAMPLE_ID), value_set=pa.array(wanted, pa.string())))
    missing = sorted(set(wanted) - set(members.column(C.SAMPLE_ID).to_pylist()))
    if missing:
        raise QueryError(f"{len(missing)} checked sample(s) are not among this grid's samples (version "
                         f"{view.version}, these filters): {', '.join(missing[:5])}. Nothing was tagged; check them "
                         "again on the grid.")
    return members


def _sample_source(pool: str, sample_id: str, version: int | None) -> tuple[PoolSpec, View, dict[str, Any], str]:
    """A sample's latest row in the version and the datasource its run recorded (where its image or video is)."""
    sid = _check_sample_id(sample_id)
    spec = A._pool(pool)
    view = _view(spec, version)
    row = _sample_rows(view, sid)[0]
    source = view.datasource_of(row.get("commit_version"))
    if not source:
        raise MediaError("The run that committed this sample recorded no datasource, so its files cannot be shown.")
    return spec, view, row, source


#: The caching of a sample's ``…/image`` and ``…/video`` answers: the browser keeps them but asks each time
#: (``If-None-Match`` with their ``ETag``: a 304 without the file read when it is unchanged), since the file at a
#: sample's key can be replaced under it (``media.content_state``) and must not show from the cache beside the
#: scores of the new content. Thumbnails keep ``max-age``: their URL names the content (see ``thumbnail``).
MEDIA_CACHE = "private, no-cache"


def _media_headers(etag: str | None, state: ContentState | None) -> dict[str, str]:
    """The headers of a media answer: the app's, :data:`MEDIA_CACHE`, its ``ETag`` (none when the file's identity
    is unknown) and the ``X-Lightly-Content-Changed`` ones of ``state``."""
    return {**A.SECURITY_HEADERS, "Cache-Control": MEDIA_CACHE, **({"ETag": etag} if etag else {}),
            **(state.headers() if state is not None else {})}


def _not_modified(request: Request, etag_of: Callable[[ContentState], str | None]) -> NotModifiedHook | None:
    """The ``not_modified`` hook of the media readers for this request (``None`` without ``If-None-Match``: nothing
    is checked beforehand): it raises ``NotModified`` when the entity tag ``etag_of(state)`` is one it names."""
    from lightly_airflow.plugins.media import NotModified, etag_matches

    wanted = request.headers.get("if-none-match")
    if not wanted:
        return None

    def hook(state: ContentState) -> None:
        etag = etag_of(state)
        if etag is not None and etag_matches(wanted, etag):
            raise NotModified(etag, state)

    return hook


def _not_modified_answer(etag: str, state: ContentState, extra: dict[str, str] | None = None) -> Response:
    """304: the browser's copy is current; the headers a 200 would carry (RFC 9110 15.4.5), no body."""
    return Response(status_code=304, headers={**_media_headers(etag, state), **(extra or {})})


def add_curation_routes(app: FastAPI) -> None:
    """Add the curation routes and their error answers to the plugin app."""

    from lightly_airflow.datapool.errors import DatapoolError

    def answer(status: int, title: str) -> Any:
        async def handler(request: Request, exc: Exception) -> Response:
            return A._error(request, status, title, str(exc))
        return handler

    for exc_type, status, title in ((QueryError, 400, "Bad request"), (MediaError, 404, "Not found"),
                                    (LookupError, 404, "Not found"), (ForbiddenError, 403, "Forbidden")):
        app.add_exception_handler(exc_type, answer(status, title))

    @app.exception_handler(DatapoolError)
    async def _datapool(request: Request, exc: DatapoolError) -> Response:
        conflict = type(exc).__name__ in ("TagExistsError", "ConcurrentCommitError")
        return A._error(request, 409 if conflict else 400, "Not done", str(exc))

    # -------------------------------------------------------------- static
    @app.get("/static/{name}")
    def static_file(name: str) -> Response:
        if name not in STATIC_FILES:
            raise D.NotFoundError("No such file.")
        body = resources.files("lightly_airflow.plugins").joinpath("static", name).read_bytes()
        headers = {**A.SECURITY_HEADERS, "Cache-Control": "private, max-age=300"}
        return Response(body, media_type=STATIC_FILES[name], headers=headers)

    # -------------------------------------------------------------- grid
    def grid_data(request: Request, pool: str, sort: str | None, order: str, offset: int, limit: int) -> tuple[View, Scope, dict[str, Any]]:
        spec = A._pool(pool)
        scope = _scope(request)
        view = _view(spec, scope.version)
        scope.version = view.version
        page = view.grid(scope, sort=sort or None, descending=order == "desc", offset=offset, limit=limit)
        return view, scope, page

    @app.get("/pools/{pool}/samples", response_class=HTMLResponse)
    def samples_page(
        request: Request, pool: str, sort: str | None = None, order: str = Query("asc", pattern="^(asc|desc)$"),
        offset: int = Query(0, ge=0), limit: int = Query(P.GRID_PAGE, ge=1, le=A.MAX_PAGE_SIZE),
    ) -> HTMLResponse:
        view, scope, page = grid_data(request, pool, sort, order, offset, limit)
        entry = P.run_of(view, scope)
        files: set[str] = set()
        if entry is not None:
            from lightly_airflow.staging import run_slug

            files = D.report_files(view.spec, run_slug(entry["run_id"]), D.credentials(view.spec))
        return A._html(P.grid_page(A._root(request), pool, view, scope, page, _static(request), files))

    @app.get("/api/pools/{pool}/samples")
    def api_samples(
        request: Request, pool: str, sort: str | None = None, order: str = Query("asc", pattern="^(asc|desc)$"),
        offset: int = Query(0, ge=0), limit: int = Query(A.DEFAULT_PAGE_SIZE, ge=1, le=A.MAX_PAGE_SIZE),
    ) -> dict[str, Any]:
        view, scope, page = grid_data(request, pool, sort, order, offset, limit)
        root = A._root(request)
        for item in page["items"]:
            sid = item.get(C.SAMPLE_ID) or ""
            item["thumbnail_url"] = P.pool_url(root, pool, "thumbnails", sid)
            item["url"] = P.pool_url(root, pool, "samples", sid)
        return {"datapool": pool, "version": view.version, "scope": scope.to_dict(), **D._jsonable(page)}

    @app.get("/api/pools/{pool}/facets")
    def api_facets(request: Request, pool: str) -> dict[str, Any]:
        scope = _scope(request)
        view = _view(A._pool(pool), scope.version)
        return {"datapool": pool, "version": view.version, "show": scope.show,
                "facets": D._jsonable(view.facets(scope.show))}

    # -------------------------------------------------------------- one sample
    @app.get("/pools/{pool}/samples/{sample_id}", response_class=HTMLResponse)
    def sample_page(
        request: Request, pool: str, sample_id: str, version: int | None = Query(None, ge=0),
        at: int | None = Query(None, ge=0), sort: str | None = None,
        order: str = Query("asc", pattern="^(asc|desc)$"), limit: int = Query(P.GRID_PAGE, ge=1, le=A.MAX_PAGE_SIZE),
    ) -> HTMLResponse:
        """A sample's page; opened from a grid (``at``: its position there, with the grid's scope and sort) it
        also links to the previous and next sample of that grid."""
        sid = _check_sample_id(sample_id)
        spec = A._pool(pool)
        view = _view(spec, version)
        rows = _sample_rows(view, sid)
        extra = _sample_extra(view, spec, rows[0])
        root = A._root(request)
        walk = ""
        if at is not None:
            scope = _scope(request)
            scope.version = view.version
            place = view.walk(scope, sid, sort=sort or None, descending=order == "desc", at=at)
            walk = P.walk_bar(root, pool, view, scope, place, at, limit)
        return A._html(P.sample_page(root, pool, view, sid, rows, extra, _static(request), walk))

    @app.get("/api/pools/{pool}/samples/{sample_id}")
    def api_sample(pool: str, sample_id: str, version: int | None = Query(None, ge=0)) -> dict[str, Any]:
        sid = _check_sample_id(sample_id)
        spec = A._pool(pool)
        view = _view(spec, version)
        rows = _sample_rows(view, sid)
        extra = _sample_extra(view, spec, rows[0])
        out: dict[str, Any] = D._jsonable({
            "datapool": pool, "version": view.version, "sample_id": sid, "rows": rows,
            "boxes": extra.get("boxes", []), "image_size": extra.get("size"),
            "neighbours": extra.get("neighbours", {}), "picked": extra.get("picked"), "objects": extra.get("objects", []),
            "parent": extra.get("parent"),
            "content": extra["content"].to_dict() if extra.get("content") else None,
            "still": extra.get("still"), "stored_crop": extra.get("stored_crop"),
            "live_photo_clip": vars(extra["live"]) if extra.get("live") else None,
        })
        return out

    @app.get("/pools/{pool}/samples/{sample_id}/image")
    def sample_image(request: Request, pool: str, sample_id: str, version: int | None = Query(None, ge=0)) -> Response:
        """The picture; ``X-Lightly-Content-Changed`` when it is not the content the row was computed from (the
        file was replaced under its key; ``unknown``: that could not be checked), from the metadata the read
        needs anyway. Revalidated on every view (:data:`MEDIA_CACHE`): its ``ETag`` names the file's content
        identity now (and the crop box or frame), so a browser's ``If-None-Match`` with it gets a 304 before the
        file is read, and a replaced file is never shown from the browser's cache."""
        from lightly_airflow.plugins.media import (
            NotModified,
            is_frame,
            media_etag,
            read_frame,
            read_image,
        )

        spec, view, row, source = _sample_source(pool, sample_id, version)
        creds = _source_credentials(spec, source)
        check: list[ContentState] = []
        if row.get(C.PARENT_KEY) is not None:  # an object: its crop, cut from its image (or video frame)
            parts: tuple[Any, ...] = ("crop", row.get(C.PARENT_KEY), row.get(C.OBJECT_CROP_BOX))
        elif is_frame(row):  # a video frame: no file of the datasource
            parts = ("frame", row.get(C.KEY), row.get(C.FRAME_INDEX), row.get(C.FRAME_PTS))
        else:
            parts = ("image",)
        hook = _not_modified(request, lambda state: media_etag(state, *parts))
        try:
            if row.get(C.PARENT_KEY) is not None:
                from lightly_airflow.plugins.media import read_crop

                data, content_type = read_crop(source, row[C.PARENT_KEY], row.get(C.OBJECT_CROP_BOX), creds,
                                               view.parent_of(row), recorded=row.get(C.ETAG), check=check,
                                               not_modified=hook), "image/png"
            elif is_frame(row):
                data, content_type = read_frame(source, row, creds, check, hook), "image/png"
            else:
                data, content_type, _ = read_image(source, row.get(C.KEY) or "", creds, recorded=row.get(C.ETAG),
                                                   check=check, not_modified=hook)
        except NotModified as same:
            return _not_modified_answer(same.etag, same.state)
        state = check[0] if check else None
        return Response(data, media_type=content_type, headers=_media_headers(media_etag(state, *parts), state))

    @app.get("/pools/{pool}/samples/{sample_id}/video")
    def sample_video(request: Request, pool: str, sample_id: str, version: int | None = Query(None, ge=0)) -> Response:
        """The video of a frame sample (of a photo: its Live Photo clip, ``media.live_photo_clip``), as the datasource
        holds it now, for the sample page's player: ranged answers (``Range``: 206, at most ``VIDEO_CHUNK`` bytes
        each) so the browser seeks without the whole file;
        ``X-Lightly-Content-Changed`` on every answer when the video is not the one the frame was computed from.
        A strong ``ETag`` (the video's content identity now): ``If-None-Match`` with it gets a 304 before the file
        is read, and an ``If-Range`` naming another one (the video was replaced since the browser's first part)
        gets the whole current file, not a part of it to splice onto the old one."""
        from lightly_airflow.plugins.media import (
            byte_range,
            etag_matches,
            is_frame,
            live_photo_clip,
            media_etag,
            open_video,
            playable_video,
        )

        spec, view, row, source = _sample_source(pool, sample_id, version)
        creds = _source_credentials(spec, source)
        if is_frame(row):
            key = str(row[C.VIDEO])
        else:  # an image: the Live Photo clip beside it (by the listing's rule), as the datasource holds it now
            clip = live_photo_clip(source, str(row.get(C.KEY) or ""), creds) if row.get(C.PARENT_KEY) is None else None
            if clip is None or clip.key is None:
                why = f" (the check failed: {clip.error})" if clip is not None and clip.error else ""
                raise MediaError(f"This sample is neither a video frame nor a Live Photo: it has no video to play{why}.")
            key = clip.key
        check: list[ContentState] = []
        fs, path, size = open_video(source, key, creds, recorded=row.get(C.ETAG), check=check,
                                    described=is_frame(row))
        etag = media_etag(check[0], "video", weak=False)
        if etag_matches(request.headers.get("if-none-match"), etag):
            return _not_modified_answer(str(etag), check[0], {"Accept-Ranges": "bytes"})
        headers = {**_media_headers(etag, check[0]), "Accept-Ranges": "bytes"}
        media_type = playable_video(key) or "application/octet-stream"
        wanted = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if wanted and if_range is not None and (etag is None or if_range.strip() != etag):
            wanted = None  # RFC 9110 13.1.5: the browser's part is of another file (or a date): the whole file
        try:
            part = byte_range(wanted, size)
        except ValueError:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        if part is None:  # no Range: the whole file, streamed in chunks
            def chunks() -> Any:
                with fs.open(path, "rb") as fh:
                    while block := fh.read(1024 * 1024):
                        yield block

            return StreamingResponse(chunks(), media_type=media_type,
                                     headers={**headers, "Content-Length": str(size)})
        start, end = part
        data = fs.cat_file(path, start=start, end=end + 1)
        return Response(data, status_code=206, media_type=media_type,
                        headers={**headers, "Content-Range": f"bytes {start}-{start + len(data) - 1}/{size}"})

    @app.get("/pools/{pool}/thumbnails/{sample_id}")
    def thumbnail(pool: str, sample_id: str) -> Response:
        """A sample's thumbnail, cached for an hour: its URL names the content it was made from (the sample id is
        a digest of the key and the etag its run recorded, ``datapool.rows.sample_id``), so a file replaced under
        its key gets a new sample id and a new URL, never this thumbnail (unlike ``…/image``, which reads the key)."""
        from lightly_airflow.thumbnails import read_thumbnail_typed

        sid = _check_sample_id(sample_id)
        spec = A._pool(pool)
        found = read_thumbnail_typed(spec.uri, sid, D.credentials(spec))
        headers = {**A.SECURITY_HEADERS, "Cache-Control": "private, max-age=3600"}
        if found is None:
            return Response(PLACEHOLDER_SVG, media_type="image/svg+xml",
                            headers={**headers, "X-Lightly-Thumbnail": "missing", "Cache-Control": "private, no-cache"})
        return Response(found[0], media_type=found[1], headers=headers)

    # -------------------------------------------------------------- map
    @app.get("/pools/{pool}/map", response_class=HTMLResponse)
    def map_page(request: Request, pool: str, color: str = "selected") -> HTMLResponse:
        scope = _scope(request)
        view = _view(A._pool(pool), scope.version)
        scope.version = view.version
        return A._html(P.map_page(A._root(request), pool, view, scope, color, _static(request)))

    @app.get("/api/pools/{pool}/map")
    def api_map(request: Request, pool: str, color: str = "selected",
                max_points: int = Query(20_000, ge=100, le=100_000)) -> Response:
        scope = _scope(request)
        view = _view(A._pool(pool), scope.version)
        out = view.map(scope, color=color, max_points=max_points)
        out.update({"datapool": pool, "version": view.version})
        return JSONResponse(out, headers={"Cache-Control": "private, no-cache"})

    # -------------------------------------------------------------- compare
    @app.get("/pools/{pool}/compare", response_class=HTMLResponse)
    def compare_page(request: Request, pool: str, version: int | None = Query(None, ge=0),
                     tag: list[str] = Query([]), column: str | None = None) -> HTMLResponse:
        view = _view(A._pool(pool), version)
        chosen = [t for t in tag if t]
        result = view.compare(chosen, column or None) if len(chosen) >= 2 else None
        return A._html(P.compare_page(A._root(request), pool, view, chosen, column, result, _static(request)))

    @app.get("/api/pools/{pool}/compare")
    def api_compare(pool: str, version: int | None = Query(None, ge=0), tag: list[str] = Query([]),
                    column: str | None = None) -> dict[str, Any]:
        view = _view(A._pool(pool), version)
        return {"datapool": pool, "version": view.version, **D._jsonable(view.compare([t for t in tag if t], column))}

    # -------------------------------------------------------------- export
    @app.get("/pools/{pool}/export")
    def export(request: Request, pool: str, format: str = "csv") -> Response:  # noqa: A002 - the query name
        spec = A._pool(pool)
        scope = _scope(request)
        view = _view(spec, scope.version)
        scope.version = view.version
        payload, content_type, filename, gone = _export(view, spec, scope, format)
        headers = {**A.SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"',
                   "X-Lightly-Files-Gone": str(gone)}
        return Response(payload, media_type=content_type, headers=headers)

    # -------------------------------------------------------------- tagging
    @app.post("/pools/{pool}/tags", dependencies=[Depends(A.CAN_TAG)])
    async def make_tag(request: Request, pool: str, user: Any = Depends(A.CURRENT_USER)) -> Response:
        _same_origin(request)
        form = await request.form()
        params = [(k, str(v)) for k, v in form.multi_items() if k not in ("name", "polygon", "sample", "only")]
        scope = parse_scope(params)
        spec = A._pool(pool)
        view = _view(spec, scope.version)
        name = str(form.get("name") or "").strip()
        polygon = str(form.get("polygon") or "") or None
        # "only=checked": the button that saves the samples whose boxes are ticked on the grid
        checked = [str(v) for v in form.getlist("sample")] if form.get("only") == "checked" else None
        done = _make_tag(view, spec, scope, name, polygon, user, checked)
        target = P.pool_url(A._root(request), pool, "samples") + P.qs([("tag", done["tag"])])
        return RedirectResponse(target, status_code=303)

    @app.post("/api/pools/{pool}/tags", dependencies=[Depends(A.CAN_TAG)])
    async def api_make_tag(request: Request, pool: str, user: Any = Depends(A.CURRENT_USER)) -> dict[str, Any]:
        _same_origin(request)
        try:
            body = await request.json()
        except ValueError:
            raise QueryError("Send a JSON object: {name, scope: {version, tag, run, lo, hi, in}, polygon or "
                             "samples}.") from None
        if not isinstance(body, dict):
            raise QueryError("Send a JSON object: {name, scope: {...}, polygon}.")
        raw = body.get("scope") or {}
        params: list[tuple[str, str]] = []
        for k in ("version", "tag", "run"):
            if raw.get(k) is not None:
                params.append((k, str(raw[k])))
        for k, v in (raw.get("lo") or {}).items():
            params.append((f"lo.{k}", str(v)))
        for k, v in (raw.get("hi") or {}).items():
            params.append((f"hi.{k}", str(v)))
        for k, vs in (raw.get("in") or {}).items():
            params += [(f"in.{k}", str(v)) for v in (vs if isinstance(vs, list) else [vs])]
        scope = parse_scope(params)
        spec = A._pool(pool)
        view = _view(spec, scope.version)
        polygon = json.dumps(body["polygon"]) if body.get("polygon") else None
        samples = body.get("samples")
        if samples is not None and not (isinstance(samples, list) and all(isinstance(x, str) for x in samples)):
            raise QueryError("samples must be a list of sample ids.")
        return _make_tag(view, spec, scope, str(body.get("name") or ""), polygon, user, samples)

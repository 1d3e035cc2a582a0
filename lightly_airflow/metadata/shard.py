"""``compute_metadata_shard``: metrics, corruption checks, content hashes and custom metadata of one shard."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.arrow import from_pylist
from lightly_airflow.cores import usable_cores
from lightly_airflow.fixes import split_fix
from lightly_airflow.identity import sample_id
from lightly_airflow.lightly_dir import (
    METADATA_DIR,
    LightlyDir,
    LightlyFileError,
    json_relpath,
    parse_frame_name,
    parse_json_bytes,
)
from lightly_airflow.metadata.custom import SCHEMA_RELPATH, MetadataField, parse_metadata_schema, values_from_file
from lightly_airflow.metadata.duplicates import mark_duplicates
from lightly_airflow.metadata.metrics import INT_METRICS, METRICS, ImageResult, inspect_image
from lightly_airflow.pixels import image_memory
from lightly_airflow.staging import (
    METADATA,
    ProblemLog,
    check_error_fraction,
    read_manifest,
    sibling_uri,
    validate_fraction,
)
from lightly_airflow.storage import StorageCredentials, filesystem, join_uri, write_parquet
from lightly_airflow.thumbnails import manifest_thumbnails
from lightly_airflow.video.past_end import files_past_end, video_ends

logger = logging.getLogger(__name__)

STAGE = "metadata"
#: What an ok image's pixels may rest on (``ImageResult.notes``), counted in the result and logged per shard.
NOTE_KINDS = {
    "bit_depth_guessed": "with a high bit depth whose white was guessed (the file states none; docs/metadata-and-predictions.md)",
    "decoded_reduced": "above PIL.Image.MAX_IMAGE_PIXELS decoded at a reduced scale (metrics of the reduced picture)",
    "first_frame_only": "animated or multi-page, of which the first frame is the sample",
    "colour_profile_ignored": "whose embedded ICC colour profile could not be applied (damaged or unsupported: "
                              "colours as stored, read as sRGB)",
    "no_data_pixels": "float images with NaN or infinite pixel values (no data), shown black",
    "orientation_from_xmp": "turned by an orientation only their XMP packet gives (no EXIF Orientation tag): "
                            "as desktop viewers show them, while a browser shows the file as stored",
}
READ_BATCH = 64
#: The fix of an image's own problem whose reason says none (the problem row's ``key`` and ``path`` name the file):
#: a corrupt row is committed with the file's etag, so the same bytes are not new to a later run; a key whose latest
#: row is missing is no known file to a run's listing (``datapool.snapshot.known_rows``): the next run that
#: lists it processes it again.
CORRUPT_FIX = ("replace the file with an image this plugin reads (export or copy it again, as the problem says: the next "
               "run processes it, as its content changed), or delete it")
MISSING_FIX = ("nothing if it was deleted on purpose; a file moved or renamed is processed under its new key by the "
               "next run; put back under this key, it is processed again by the next run")
VANISHED = "file disappeared after listing (deleted or moved)"
UNREADABLE_FIX = ("let the run's datasource credentials read the file (or delete it): the next run processes it again "
                  "(this run records it as missing)")


def _default_workers() -> int:
    return min(4, usable_cores())


SCHEMA_PROBE = 16  # samples whose metadata files are looked for when schema.json is absent


def load_custom_schema(folder: LightlyDir | None, problems: ProblemLog, keys: list[str] | None = None
                       ) -> list[MetadataField]:
    """The custom metadata fields of ``.lightly/metadata/schema.json`` (empty when there is none).

    Without a schema no field is read, as in Lightly. Where ``keys`` are given and metadata files exist for some
    of them (:func:`_files_without_schema`), that is reported once, with the fix: the files were skipped silently.
    """
    if folder is None:
        return []
    data = folder.read_bytes(SCHEMA_RELPATH)
    if data is None:
        if keys:
            _files_without_schema(folder, keys, problems)
        return []
    rel = f".lightly/{SCHEMA_RELPATH}"
    try:
        obj = parse_json_bytes(data, SCHEMA_RELPATH)
    except LightlyFileError as exc:
        problems.add(rel, "", exc.reason)
        return []
    fields, schema_problems = parse_metadata_schema(obj)
    for field_, reason in schema_problems:
        problems.add(rel, field_, reason)
    return fields


def _files_without_schema(folder: LightlyDir, keys: list[str], problems: ProblemLog) -> None:
    """Report metadata files that no ``schema.json`` declares fields of: of up to :data:`SCHEMA_PROBE` samples
    spread over ``keys``, the sample's own file and its video's (a frame's) are looked for; one problem (under
    the schema's path) and one warning name a file found and the fix."""
    step = max(1, len(keys) // SCHEMA_PROBE)
    rels: list[str] = []
    for k in keys[::step][:SCHEMA_PROBE]:
        rels.append(json_relpath(METADATA_DIR, k))
        frame = parse_frame_name(k)
        if frame:
            rels.append(json_relpath(METADATA_DIR, frame[0]))
    got = folder.read_many(sorted(set(rels)))
    found = sorted(rel for rel, data in got.items() if isinstance(data, bytes))
    if not found:
        return
    reason = (f"metadata files exist (e.g. .lightly/{found[0]}) but .lightly/{SCHEMA_RELPATH} does not: no custom "
              f"metadata is read without it. Fix: add .lightly/{SCHEMA_RELPATH}, a list of "
              '{"name", "path", "defaultValue", "valueDataType"} entries, one per field to read')
    problems.add(f".lightly/{SCHEMA_RELPATH}", "file", reason, f".lightly/{SCHEMA_RELPATH}")
    logger.warning("%s", reason)


def _custom_values(
    folder: LightlyDir, fields: list[MetadataField], keys: list[str], problems: ProblemLog,
    video_misnamed: dict[str, tuple[str, str] | None] | None = None,
) -> list[list[Any]]:
    """Per key, the values of ``fields`` from its per-file JSON (or its video's), defaults where absent.

    A frame without its own file and without its video's is reported where a file of its video exists under
    another name (``clip.mp4.json`` for ``clip.mp4``: :func:`near_miss_stems`); ``video_misnamed`` caches the
    probe per video over a shard's batches.
    """
    frames = {k: parse_frame_name(k) for k in keys}
    own = {k: json_relpath(METADATA_DIR, k) for k in keys}
    got = folder.read_many(list(own.values()))
    video_rel = {k: json_relpath(METADATA_DIR, f[0]) for k, f in frames.items() if f and got.get(own[k]) is None}
    if video_rel:
        got.update(folder.read_many(sorted(set(video_rel.values()))))
    out: list[list[Any]] = []
    defaults = [f.default for f in fields]
    absent = [k for k in keys if got.get(own[k]) is None and (k not in video_rel or got.get(video_rel[k]) is None)]
    misnamed = folder.find_misnamed(METADATA_DIR, absent) if absent else {}
    for k, (other, why) in misnamed.items():  # Lightly's default values would stand in silently
        problems.add(k, "file", f"no metadata file, but .lightly/{other} exists: {why}. Rename it to .lightly/{own[k]} "
                     "(it is not read under its other name; the fields' defaultValue is used)", f".lightly/{own[k]}")
    if misnamed:
        k, (other, why) = next(iter(misnamed.items()))
        logger.warning("%d of %d samples without a metadata file have one under another name, e.g. .lightly/%s "
                       "instead of .lightly/%s (%s); rename them, they are not read", len(misnamed), len(absent),
                       other, own[k], why)
    _report_misnamed_video_files(folder, [k for k in absent if k in video_rel and k not in misnamed], frames,
                                 video_rel, problems, {} if video_misnamed is None else video_misnamed)
    for k in keys:
        rel = own[k]
        data = got.get(rel)
        accepted: tuple[str, ...] = (k,)
        if data is None and k in video_rel:
            rel = video_rel[k]
            data = got.get(rel)
            accepted = (frames[k][0], k)  # type: ignore[index]
        if data is None:
            out.append(list(defaults))
            continue
        if isinstance(data, Exception):
            why = data.reason if isinstance(data, LightlyFileError) else (  # (its own fix: one fix per message)
                f"{data}. Fix: make the file readable with the run's credentials (or remove it), and run again")
            problems.add(k, "file", f"cannot read .lightly/{rel}: {why}", f".lightly/{rel}")
            out.append(list(defaults))
            continue
        try:
            obj = parse_json_bytes(data, rel)
        except LightlyFileError as exc:
            problems.add(k, "file", exc.reason, f".lightly/{rel}")
            out.append(list(defaults))
            continue
        values, file_problems = values_from_file(obj, fields, k, accepted_names=accepted)
        for field_, reason in file_problems:
            problems.add(k, field_, reason, f".lightly/{rel}")
        out.append(values)
    return out


def _report_misnamed_video_files(folder: LightlyDir, frame_keys: list[str], frames: dict[str, Any],
                                 video_rel: dict[str, str], problems: ProblemLog,
                                 cache: dict[str, tuple[str, str] | None]) -> None:
    """Each frame (of ``frame_keys``, without its own file and its video's) whose video has a metadata file under
    another name gets a problem naming it and the fix: its fields took their defaults. One warning per video."""
    videos = sorted({frames[k][0] for k in frame_keys} - set(cache))
    found = folder.find_misnamed(METADATA_DIR, videos) if videos else {}
    for video in videos:
        hit = found.get(video)
        if hit is None:
            cache[video] = None
            continue
        other, why = cache[video] = (hit[0], hit[1].replace("the image's", "the video's"))
        logger.warning("video %r: its metadata file is .lightly/%s, not .lightly/%s (%s); rename it: it is not read, "
                       "and its frames take the fields' defaultValue", video, other, json_relpath(METADATA_DIR, video),
                       why)
    for k in frame_keys:
        hit = cache.get(frames[k][0])
        if hit is not None:
            other, why = hit
            problems.add(k, "file", f"no metadata file for the frame or its video, but .lightly/{other} exists: {why}. "
                         f"Rename it to .lightly/{video_rel[k]} (it is not read under its other name; the fields' "
                         "defaultValue is used)", f".lightly/{video_rel[k]}")


def _report_past_end(folder: LightlyDir, manifest: pa.Table, manifest_uri: str, problems: ProblemLog) -> int:
    """Report each video whose last frame is in this shard and which has a metadata file for the frame after it
    (:mod:`lightly_airflow.video.past_end`): never read, and the video's other frame files may be off by one.

    :returns: how many videos have one."""
    found = files_past_end(folder, METADATA_DIR, video_ends(manifest, manifest_uri, "metadata files"))
    for rel, video, count in found:  # (keyed by the file: no sample has that name)
        problems.add(f".lightly/{rel}", "file", (
            f"metadata file .lightly/{rel} is for frame {count}, but video {video!r} has {count} frames (0 to "
            f"{count - 1}, as PyAV decodes them): no sample has that frame and the file is not read. Fix: if your tool "
            "numbered frames from 1, rename every metadata file of this video to its frame number minus one (each "
            "frame now takes its neighbour's values); if it counted more frames, write them for Lightly's frames "
            f"(frame_index 0 to {count - 1}) and remove the files past the end"), f".lightly/{rel}")
    if found:
        rel, video, count = found[0]
        logger.warning("%d videos have a metadata file for a frame past their end, e.g. .lightly/%s for frame %d of "
                       "%r, which has %d frames: those files are not read and the video's other frame files may "
                       "be off by one; see the problems", len(found), rel, count, video, count)
    return len(found)


def file_problem(reason: str, fix: str) -> str:
    """An image's problem (corrupt, missing, unreadable) ending with one fix: the reason's own where it says one
    (``wrong type for its extension: …; rename it to .png``, an archived file's ``Fix: restore it …``:
    :func:`~lightly_airflow.fixes.split_fix`, which the report's fix column uses), else ``fix``. These
    said none: the report's fix column was empty for every corrupt or vanished image."""
    problem, own = split_fix(STAGE, reason)
    return f"{problem}. Fix: {own or fix}"


def _read_images(fs: Any, paths: list[str]) -> dict[str, bytes | Exception]:
    try:
        got: dict[str, bytes | Exception] = fs.cat(paths, on_error="return")
        return got
    except Exception:  # noqa: BLE001 - fall back to one by one, errors per file
        out: dict[str, bytes | Exception] = {}
        for p in paths:
            try:
                out[p] = fs.cat_file(p)
            except Exception as exc:  # noqa: BLE001
                out[p] = exc
        return out


def _read_error(exc: Exception) -> str:
    """The reason a file that could not be read is missing: archived (with its fix) or the store's error.

    The datasource package is imported here, on a file's read error, not when the module loads: the package
    (its listing, checks and queries) was 0.03 s of the 0.16 s of CPU that importing the metadata command took
    (numba and pandas come later, with the first image), for one function that only a failed read calls."""
    from lightly_airflow.datasource.reader import archived_read_error

    return archived_read_error(exc) or f"cannot read the file: {type(exc).__name__}: {exc}"


def compute_metadata_shard(
    manifest_uri: str,
    output_uri: str | None = None,
    *,
    lightly_uri: str | None = None,
    credentials: StorageCredentials | None = None,
    lightly_credentials: StorageCredentials | None = None,
    datasource_credentials: StorageCredentials | None = None,
    max_error_fraction: float | None = None,
    num_workers: int | None = None,
    thumbnails_uri: str | None = None,
) -> dict[str, Any]:
    """Compute ``lightly.*`` metrics, corruption status, content hash and custom metadata for one shard.

    :param manifest_uri: the manifest shard (``…/manifest/shard-NNNNN.parquet``) with ``key`` and the schema
        metadata ``lightly.datasource_uri`` (and optionally ``lightly.lightly_uri``).
    :param output_uri: where to write; default ``sibling_uri(manifest_uri, "metadata")``.
    :param lightly_uri: the folder holding ``.lightly/`` (default: the manifest's ``lightly.lightly_uri``;
        none at all means no custom metadata).
    :param credentials: credentials of the staging store (and of the images unless
        ``datasource_credentials`` is given).
    :param lightly_credentials: credentials of the ``.lightly/`` store (default: ``credentials``).
    :param datasource_credentials: credentials of the images' store (default: ``credentials``).
    :param max_error_fraction: fail (after writing the outputs) when more than this share of files is corrupt
        or has bad custom metadata; ``None`` never fails.
    :param num_workers: decoding threads (default ``min(4, cpu count)``).
    :param thumbnails_uri: where to write each ok image's thumbnail (default: ``<datapool>/_thumbnails`` when the
        manifest lies in a datapool's ``_staging/``; ``""`` writes none); see :mod:`lightly_airflow.thumbnails`.
    :returns: counts ``ok``, ``corrupt``, ``duplicate``, ``missing``, ``errors``, ``past_end`` (videos with a
        metadata file for the frame after their last one: :mod:`lightly_airflow.video.past_end`), ``thumbnails``,
        ``thumbnails_failed`` and of the :data:`NOTE_KINDS` (``bit_depth_guessed``, ``decoded_reduced``,
        ``first_frame_only``, ``colour_profile_ignored``), plus
        ``output_uri`` and ``errors_uri``.
    :raises TooManyErrorsError: when ``max_error_fraction`` is exceeded.
    """
    max_error_fraction = validate_fraction(max_error_fraction)
    workers = int(num_workers) if num_workers is not None else _default_workers()  # (0 is refused, not "auto")
    if workers < 1:
        raise ValueError(f"num_workers must be at least 1, got {num_workers}.")
    output_uri = output_uri or sibling_uri(manifest_uri, METADATA)
    manifest = read_manifest(manifest_uri, credentials)
    datasource_uri = manifest.require_datasource_uri()
    lightly_uri = lightly_uri or manifest.lightly_uri
    problems = ProblemLog(STAGE)
    folder = LightlyDir(lightly_uri, lightly_credentials or credentials) if lightly_uri else None
    keys = manifest.keys
    fields = load_custom_schema(folder, problems, keys)
    video_misnamed: dict[str, tuple[str, str] | None] = {}

    etags = manifest.table.column(C.ETAG).to_pylist() if C.ETAG in manifest.table.column_names else [None] * len(keys)
    fs, root = filesystem(datasource_uri, datasource_credentials or credentials)
    n = len(keys)
    hashes: list[str | None] = [None] * n
    status: list[str] = [C.STATUS_OK] * n
    reasons: list[str | None] = [None] * n
    metric_values: dict[str, list[Any]] = {m: [None] * n for m in METRICS}
    custom: list[list[Any]] = [[f.default for f in fields] for _ in range(n)]
    # Ok files whose pixels rest on a guess or a reduced decode (metrics.ImageResult.notes): kind -> keys, words
    notes: dict[str, list[tuple[str, str]]] = {kind: [] for kind in NOTE_KINDS}

    thumbs = manifest_thumbnails(manifest_uri, credentials, thumbnails_uri)
    # Video frames are decoded once, by the embed task, which writes their hash and metrics; here they only get
    # their custom metadata (per frame or per video) and status ok (the embed task reports undecodable frames).
    videos = manifest.table.column(C.VIDEO).to_pylist() if C.VIDEO in manifest.table.column_names else [None] * n
    not_samples = manifest.unreadable_videos
    started = time.monotonic()
    last_log = started
    with image_memory(workers), ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, n, READ_BATCH):
            idx_all = range(start, min(n, start + READ_BATCH))
            idx = [i for i in idx_all if videos[i] is None]
            paths = [f"{root}/{keys[i]}" for i in idx]
            got = _read_images(fs, paths) if paths else {}

            def work(i: int, path: str, got: dict[str, Any] = got) -> tuple[str | None, ImageResult | None, str | None]:
                data = got.get(path, FileNotFoundError(path))
                if isinstance(data, FileNotFoundError):
                    return None, None, VANISHED
                if isinstance(data, Exception):
                    return None, None, _read_error(data)
                on_image = None if thumbs is None else partial(
                    thumbs.add, sample_id(keys[i], None if etags[i] is None else str(etags[i])))
                return hashlib.sha256(data).hexdigest(), inspect_image(data, keys[i], on_image=on_image), None

            for i, (digest, image, missing) in zip(idx, pool.map(work, idx, paths)):
                if missing is not None:
                    status[i], reasons[i] = C.STATUS_MISSING, missing
                    fix = MISSING_FIX if missing == VANISHED else UNREADABLE_FIX
                    problems.add(keys[i], "file", file_problem(missing, fix), join_uri(datasource_uri, keys[i]))
                    continue
                if image is None:  # work() returns an ImageResult whenever nothing is missing
                    raise RuntimeError(f"no image result for {keys[i]!r} although the file was read")
                hashes[i] = digest
                if not image.ok:
                    status[i], reasons[i] = C.STATUS_CORRUPT, image.reason
                    problems.add(keys[i], "file", file_problem(f"corrupt: {image.reason}", CORRUPT_FIX),
                                 join_uri(datasource_uri, keys[i]))
                    continue
                if image.metrics is None:  # inspect_image sets metrics on every decoded image
                    raise RuntimeError(f"no metrics for {keys[i]!r} although it decoded")
                for m, v in image.metrics.items():
                    metric_values[m][i] = v
                for kind, words in image.notes:
                    notes.setdefault(kind, []).append((keys[i], words))
                    # the run's problems list and report name each one (the sample is kept: not a skip)
                    problems.add(keys[i], "pixels", f"{kind}: {words}", join_uri(datasource_uri, keys[i]))
            if folder is not None and fields:
                # a video without a decodable frame is its corrupt row, not a sample: no metadata file is looked
                # for (its defaults stand; a misnamed-file problem would send the user to rename a useless file)
                samples = [i for i in idx_all if keys[i] not in not_samples]
                batch_keys = [keys[i] for i in samples]
                for i, values in zip(samples, _custom_values(folder, fields, batch_keys, problems,
                                                                  video_misnamed)):
                    custom[i] = values
            now = time.monotonic()
            if now - last_log > 10 or idx_all.stop == n:
                rate = idx_all.stop / max(now - started, 1e-9)
                logger.info("metadata %s: %d/%d files (%.1f/s), %d problems", manifest_uri, idx_all.stop, n, rate, len(problems))
                last_log = now

    past_end = _report_past_end(folder, manifest.table, manifest_uri, problems) if folder is not None and fields else 0

    # (arrow.from_pylist, not pa.array: pyarrow's conversion of a list imports pandas, 0.2-0.3 s of the task)
    columns: dict[str, pa.Array] = {
        C.KEY: from_pylist(keys, pa.string()),
        C.ETAG: from_pylist([None if e is None else str(e) for e in etags], pa.string()),
        C.CONTENT_HASH: from_pylist(hashes, pa.string()),
        C.STATUS: from_pylist(status, pa.string()),
        C.STATUS_REASON: from_pylist(reasons, pa.string()),
        C.DUPLICATE_OF: from_pylist([None] * n, pa.string()),
    }
    schema_fields = [pa.field(name, arr.type) for name, arr in columns.items()]
    for m in METRICS:
        col = C.lightly_metadata_column(m)
        typ = pa.int64() if m in INT_METRICS else pa.float64()
        columns[col] = from_pylist(metric_values[m], typ)
        schema_fields.append(pa.field(col, typ))
    for j, f in enumerate(fields):
        columns[f.column] = from_pylist([row[j] for row in custom], f.arrow_type)
        schema_fields.append(f.arrow_field())
    meta = {
        C.DATASOURCE_URI_METADATA_KEY.encode(): json.dumps(datasource_uri).encode(),
        C.LIGHTLY_URI_METADATA_KEY.encode(): json.dumps(lightly_uri).encode(),
    }
    table = pa.Table.from_arrays(list(columns.values()), schema=pa.schema(schema_fields, metadata=meta))
    table = mark_duplicates(table, None)  # within this shard; the select task redoes it across all shards
    write_parquet(table, output_uri, credentials)
    report_uri = problems.write(manifest_uri, credentials)
    thumb_counts = thumbs.close() if thumbs is not None else {"thumbnails": 0, "thumbnails_failed": 0}

    status_col = table.column(C.STATUS).to_pylist()
    counts = {s: status_col.count(s) for s in C.STATUSES}
    result = {
        "ok": counts[C.STATUS_OK],
        "corrupt": counts[C.STATUS_CORRUPT],
        "duplicate": counts[C.STATUS_DUPLICATE],
        "missing": counts[C.STATUS_MISSING],
        "errors": len(problems),
        "past_end": past_end,
        "output_uri": output_uri,
        "errors_uri": report_uri,
        **thumb_counts,
        **{kind: len(found) for kind, found in notes.items()},
    }
    for kind, found in notes.items():
        if found:
            logger.warning("metadata %s: %d images %s, e.g. %s: %s", manifest_uri, len(found), NOTE_KINDS.get(kind, kind),
                           found[0][0], found[0][1])
    logger.info(
        "metadata %s: %d ok, %d corrupt, %d duplicate, %d missing, %d problems reported in %s",
        manifest_uri, result["ok"], result["corrupt"], result["duplicate"], result["missing"], len(problems), report_uri,
    )
    key_set = set(keys)
    bad_metadata = {r[0] for r in problems.rows if r[0] in key_set and r[3].startswith(".lightly/")}
    bad = len(bad_metadata | {k for k, s in zip(keys, status) if s == C.STATUS_CORRUPT})
    check_error_fraction(bad, n, max_error_fraction, "data (corrupt images or custom metadata)", report_uri)
    return result

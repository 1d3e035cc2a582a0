"""Readers of Lightly's ``.lightly/`` folder: predictions, custom metadata and relevant-filenames files.

The folder may live on another store than the images (the ``lightly_uri``). ``lightly_uri`` is the folder
that *contains* ``.lightly/`` (Lightly's convention) or the ``.lightly`` folder itself; both are accepted.
Every read goes through :func:`lightly_airflow.storage.filesystem`; per-image JSON files are fetched in
batches (``fs.cat`` of many paths, concurrent on object stores), and schema files are read once per shard by
the caller through one :class:`LightlyDir`.

Paths inside ``.lightly/`` follow the image key: ``.lightly/<kind>/<key without extension>.json``.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from lightly_airflow.config.errors import decode_user_text, describe_json_error
from lightly_airflow.storage import StorageCredentials, filesystem, join_uri, local_path, protocol_of

logger = logging.getLogger(__name__)

LIGHTLY_DIR = ".lightly"
PREDICTIONS_DIR = "predictions"
METADATA_DIR = "metadata"
TASKS_FILE = "predictions/tasks.json"
METADATA_SCHEMA_FILE = "metadata/schema.json"

# Lightly names video frames ``<video name>-<frame index, zero padded>-<video extension>.png``. Lightly's own
# extensions, and two it does not list, named the same way: Matroska (``.mkv``: dashcams, screen and OBS
# recordings, robot logs; PyAV reads it as WebM, the same container) and the MPEG transport streams of AVCHD
# camcorders (``.mts``/``.m2ts``: decoded from the start, as MPEG-PS), and of everything else (``.ts``: HLS
# segments, broadcast, surveillance and dashcam recordings; a TypeScript file shares the extension and becomes
# a problem row saying so, ``video.index.transport_stream_problem``).
VIDEO_EXTENSIONS = ("mp4", "m4v", "hevc", "mpg", "mpeg", "avi", "mov", "webm", "mkv", "mts", "m2ts", "ts")
#: A video frame's name without its extension (``clip-007-mp4``): the video's stem, the frame index, the video's
#: extension (:func:`parse_frame_name`; `video.listing` derives its Arrow pattern from this one).
FRAME_RE = re.compile(r"^(?P<stem>.+)-(?P<index>\d+)-(?P<ext>" + "|".join(VIDEO_EXTENSIONS) + r")$", re.IGNORECASE)


#: How far below a key's folder :meth:`LightlyDir.find_misnamed` looks for its file (``images/x.json`` for ``x.png``),
#: and how many folders it lists for that at most per :class:`LightlyDir` (one a shard).
DEEPER_LEVELS = 3
DEEPER_FOLDERS = 64


class LightlyFileError(ValueError):
    """A ``.lightly/`` file that cannot be used; ``relpath`` names it, ``field`` the offending part.

    ``reason`` is ``problem`` ending with its ``fix`` (``… . Fix: …``, the run report's fix column:
    ``report.problems.split_fix``); a caller that adds what became of the file (``the task is skipped``) or a fix
    of its own composes ``problem`` and ``fix`` instead, so that a message says one fix, at its end.
    """

    def __init__(self, relpath: str, field: str, problem: str, fix: str = "") -> None:
        self.relpath = relpath
        self.field = field
        self.problem = problem
        self.fix = fix
        self.reason = f"{problem}. Fix: {fix}" if fix else problem
        where = f"{LIGHTLY_DIR}/{relpath}: {field}" if field else f"{LIGHTLY_DIR}/{relpath}"
        super().__init__(f"{where}: {self.reason}")


def lightly_root(lightly_uri: str) -> str:
    """The URI of the ``.lightly`` folder for ``lightly_uri`` (the folder holding it, or the folder itself)."""
    uri = str(lightly_uri).rstrip("/")
    if uri.rsplit("/", 1)[-1] == LIGHTLY_DIR:
        return uri
    return join_uri(uri, LIGHTLY_DIR)


def check_lightly_option(uri: str | None, option: str = "--lightly-uri") -> None:
    """A folder named on the command line to hold ``.lightly/``: a local one that is not a folder (a typo) is an
    error, not a run that silently finds no ``.lightly/`` file; a bucket URI is not checked (a prefix exists only
    through its files, and a datasource without ``.lightly/`` is normal)."""
    if uri is not None and protocol_of(uri) == "file" and not os.path.isdir(local_path(uri)):
        raise FileNotFoundError(f"{option} {uri!r} is not a folder. Fix: give the folder that holds .lightly/ (or the "
                                ".lightly folder itself)")


def key_stem(key: str) -> str:
    """The key without its extension (``a/b/img.1.png`` -> ``a/b/img.1``), as ``.lightly/`` names files."""
    head, _, name = key.rpartition("/")
    stem, dot, _ext = name.rpartition(".")
    name = stem if dot and stem else name
    return f"{head}/{name}" if head else name


def json_relpath(kind_dir: str, key: str) -> str:
    """The relative path (inside ``.lightly/``) of the per-file JSON of ``key``: ``metadata/a/img.json``."""
    return f"{kind_dir}/{key_stem(key)}.json"


def parse_frame_name(key: str) -> tuple[str, int] | None:
    """Split a video frame's key into (the video's key, frame index); ``None`` for an ordinary image.

    ``subdir/video_1-099-mp4.png`` -> ``("subdir/video_1.mp4", 99)``.
    """
    head, _, name = key.rpartition("/")
    match = FRAME_RE.match(key_stem(name))
    if not match:
        return None
    video = f"{match['stem']}.{match['ext']}"
    return (f"{head}/{video}" if head else video), int(match["index"])


#: The image formats a Lightly Worker writes video frames in (``worker_config.output_image_format``: png, the
#: default, or jpg), so the ones a frame's ``file_name`` may end with; the frames here are PNG.
FRAME_IMAGE_FORMATS = ("png", "jpg", "jpeg")


def same_frame(file_name: str, key: str) -> bool:
    """``file_name`` names the video frame ``key`` in another of Lightly's frame formats (``clip-099-mp4.jpg`` for
    ``clip-099-mp4.png``: predictions or metadata made on a Lightly Worker run's frames with
    ``output_image_format: jpg``). The JSON file's own name, which is what finds it, has no extension: it is this
    frame's."""
    ext = file_name.rpartition(".")[2].lower()
    return (ext in FRAME_IMAGE_FORMATS and key_stem(file_name) == key_stem(key)
            and parse_frame_name(key) is not None)


def near_miss_stems(key: str) -> list[tuple[str, str, str]]:
    """Names a user's tool may have given the ``.lightly/`` file of ``key`` instead of Lightly's
    (:func:`key_stem`), most specific first: ``(stem without .json, kind, why it is not found)``; the kind is
    ``padding``, ``video-extension``, ``extension``, ``normalization``, ``case`` or ``folder``:

    - a video frame's number padded otherwise (``clip-7-mp4`` or ``clip-00007-mp4`` for ``clip-007-mp4``: Lightly
      pads it to the digits of the video's frame count, which the frame's key carries);
    - a video frame's name without the video's extension (``clip-007`` or ``clip-7`` for ``clip-007-mp4``);
    - the image's extension kept in the name, in its case or the other (``IMG_1.JPG``, ``IMG_1.jpg``);
    - the name in the other Unicode normalization form (NFC ``caf\u00e9`` for an NFD ``cafe\u0301.jpg``, or back);
    - the name in lower case (``img_1`` for ``IMG_1.png``);
    - the image's subfolders missing (``img`` at the top, or a shallower folder, for ``a/b/img.png``).

    The name in a folder *below* the image's (``images/x`` for ``x.png``: a ``.lightly/`` made for the datasource's
    parent folder) cannot be named in advance: :meth:`LightlyDir.find_misnamed` looks for it (kind ``deeper``).
    """
    stem = key_stem(key)
    head, _, name = stem.rpartition("/")
    prefix = f"{head}/" if head else ""
    out: list[tuple[str, str, str]] = []
    frame = FRAME_RE.match(name)
    if frame:
        width, index = len(frame["index"]), int(frame["index"])
        for w in range(len(str(index)), max(width + 2, 6) + 1):
            alt = f"{index:0{w}d}"
            if alt != frame["index"]:
                out.append((f"{prefix}{frame['stem']}-{alt}-{frame['ext']}", "padding",
                            f"its frame number is written with {len(alt)} digit{'s' * (len(alt) > 1)}; Lightly zero-pads "
                            "it to the number "
                            f"of digits of the video's frame count ({width} here)"))
        # the video's extension left out (``clip-007`` for ``clip-007-mp4``: tools name frames <video>-<number>)
        for alt in dict.fromkeys((frame["index"], str(index))):
            out.append((f"{prefix}{frame['stem']}-{alt}", "video-extension",
                        "its name lacks the video's extension; Lightly names a frame <video>-<frame number>-<video "
                        f"extension> (-{frame['ext']} here)"))
    base = key.rpartition("/")[2]
    ext = base.rpartition(".")[2] if "." in base.strip(".") else ""
    if ext:
        for alt_ext in dict.fromkeys((ext, ext.lower(), ext.upper())):
            out.append((f"{stem}.{alt_ext}", "extension", "its name keeps the image's extension; Lightly drops it"))
    for form in ("NFC", "NFD"):  # (a Mac names an image ``cafe\u0301.jpg``, NFD; a script elsewhere ``caf\u00e9``, NFC)
        alt = unicodedata.normalize(form, stem)
        if alt != stem:
            out.append((alt, "normalization", f"its name is the image's in another Unicode normalization form ({form}): "
                        "alike on screen, other bytes; Lightly looks for the name as the image's key has it"))
    if name.lower() != name:
        out.append((f"{prefix}{name.lower()}", "case", "its name differs in case; names are case-sensitive"))
    parts = head.split("/") if head else []
    for cut in range(1, len(parts) + 1):
        shallower = "/".join(parts[cut:])
        where = f"in {shallower}/" if shallower else "at the top of the task folder"
        out.append((f"{shallower}/{name}" if shallower else name, "folder",
                    f"it lies {where}, not in the image's folder {head}/; Lightly mirrors the image's folders"))
    return [(alt, kind, why) for alt, kind, why in out if alt != stem]


def check_relative_file_name(file_name: Any) -> str | None:
    """Why ``file_name`` (from a JSON file) does not name a file inside the datasource; ``None`` when it does."""
    if not isinstance(file_name, str) or not file_name:
        return "must be a non-empty string"
    if "\\" in file_name:
        return "must use '/' separators"
    if file_name.startswith("/") or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", file_name):
        return "must be relative to the datasource root (no leading '/', no scheme)"
    parts = file_name.split("/")
    if any(p in ("..", ".", "") for p in parts):
        return "must not contain '..', '.' or empty path segments"
    return None


class LightlyDir:
    """One ``.lightly/`` folder, opened once per shard.

    :param lightly_uri: the folder holding ``.lightly/`` (or the ``.lightly`` folder itself).
    :param credentials: credentials of the store holding it (``None``: ambient credentials).
    :param batch_size: how many per-file JSON files one ``fs.cat`` call fetches.
    """

    def __init__(self, lightly_uri: str, credentials: StorageCredentials | None = None, *, batch_size: int = 256) -> None:
        if not lightly_uri:
            raise ValueError("lightly_uri is empty: pass the folder that holds '.lightly/' (e.g. s3://bucket/prefix).")
        self.uri = lightly_root(lightly_uri)
        self.fs, self.path = filesystem(self.uri, credentials)
        self.batch_size = max(1, int(batch_size))
        self._cache: dict[str, bytes | None] = {}
        self._below: dict[str, list[tuple[str, set[str]]]] = {}  # folder -> [(a folder below it, its file names)]
        #: folders of ``.lightly/`` listed so far looking for files below a key's folder (:data:`DEEPER_FOLDERS`)
        self.folders_listed = 0
        self._holding: set[str] = set()  # folders a read found a file in: the level the files are at
        self._deeper_cut = False
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        # Local stores only (object stores have no links): the resolved .lightly/ folder files must stay in.
        self._real_root = os.path.realpath(self.path) if "file" in protocols else None

    def _escapes(self, relpath: str) -> LightlyFileError | None:
        """A local ``.lightly/`` file that is a symbolic link leaving the folder is never read (it could be
        ``/proc/self/environ``); the error names the file, never its content."""
        if self._real_root is None:
            return None
        real = os.path.realpath(self._full(relpath))
        if os.path.commonpath([self._real_root, real]) == self._real_root:
            return None
        return LightlyFileError(relpath, "", "is a symbolic link that leaves the .lightly/ folder, so it is not read",
                                "copy the file into .lightly/ instead of linking to it")

    def _full(self, relpath: str) -> str:
        return posixpath.join(self.path, relpath.lstrip("/"))

    def read_bytes(self, relpath: str) -> bytes | None:
        """The bytes of ``.lightly/<relpath>``, ``None`` when it does not exist (cached per instance).

        :raises LightlyFileError: when it is a local symbolic link that leaves ``.lightly/``.
        """
        escape = self._escapes(relpath)
        if escape is not None:
            raise escape
        if relpath not in self._cache:
            try:
                self._cache[relpath] = self.fs.cat_file(self._full(relpath))
            except (FileNotFoundError, IsADirectoryError):
                self._cache[relpath] = None
        return self._cache[relpath]

    def read_json(self, relpath: str) -> Any:
        """The parsed JSON of ``.lightly/<relpath>``.

        :raises FileNotFoundError: when the file does not exist.
        :raises LightlyFileError: when it is not valid UTF-8 JSON.
        """
        data = self.read_bytes(relpath)
        if data is None:
            raise FileNotFoundError(f"{self.uri}/{relpath} does not exist.")
        return parse_json_bytes(data, relpath)

    def read_many(self, relpaths: Sequence[str]) -> dict[str, bytes | None | Exception]:
        """Fetch many ``.lightly/`` files: relpath -> bytes, ``None`` (missing) or the read error."""
        out: dict[str, bytes | None | Exception] = {}
        for start in range(0, len(relpaths), self.batch_size):
            chunk = []
            for rel in relpaths[start : start + self.batch_size]:
                escape = self._escapes(rel)
                if escape is not None:
                    out[rel] = escape  # never read
                else:
                    chunk.append(rel)
            full = [self._full(r) for r in chunk]
            try:
                got = self.fs.cat(full, on_error="return")
            except Exception as exc:  # a whole batch failed: fall back to one by one
                logger.debug("batched read failed (%s); reading one by one", exc)
                got = {}
                for path in full:
                    try:
                        got[path] = self.fs.cat_file(path)
                    except Exception as one:  # noqa: BLE001 - reported per file
                        got[path] = one
            for rel, path in zip(chunk, full):
                value = got.get(path, FileNotFoundError(path))
                if isinstance(value, (FileNotFoundError, IsADirectoryError)):
                    value = None
                elif isinstance(value, bytes):
                    self._holding.add(rel.rpartition("/")[0])
                out[rel] = value
        return out

    def find_misnamed(self, folder: str, keys: Sequence[str], probe_first: int = 16) -> dict[str, tuple[str, str]]:
        """For keys whose file in ``folder`` (e.g. ``predictions/<task>``, ``metadata``) is absent, the file a tool
        may have written under another name (:func:`near_miss_stems`), or in a folder below the key's
        (:meth:`_deeper`): key -> (its relpath, why it is not read).

        Every other name is probed for at most ``probe_first`` video frames and as many images spread over
        ``keys``; the rest are probed only for the kinds of names found among those (a run whose files exist for
        a few samples only pays a few reads).
        """
        found: dict[str, tuple[str, str]] = {}
        sample: list[str] = []
        for group in ([k for k in keys if parse_frame_name(k)], [k for k in keys if not parse_frame_name(k)]):
            sample += group[:: max(1, len(group) // probe_first)][:probe_first]  # video frames and images apart
        sampled = set(sample)
        kinds: set[str] = set()
        for phase, batch in enumerate((sample, [k for k in keys if k not in sampled])):
            if phase and not kinds:
                break
            candidates = {k: [(f"{folder}/{alt}.json", kind, why) for alt, kind, why in near_miss_stems(k)
                              if not phase or kind in kinds] for k in batch}
            got = self.read_many(sorted({rel for c in candidates.values() for rel, _, _ in c}))
            for key, options in candidates.items():
                hit = next(((rel, kind, why) for rel, kind, why in options if isinstance(got.get(rel), bytes)), None)
                if hit is None and (not phase or "deeper" in kinds):
                    hit = self._deeper(folder, key)
                if hit is not None:
                    found[key] = (hit[0], hit[2])
                    kinds.add(hit[1])
        return found

    def _deeper(self, folder: str, key: str) -> tuple[str, str, str] | None:
        """``key``'s file name (``x.json`` for ``x.png``) in a folder below the key's own in ``folder``, as
        ``(relpath, "deeper", why)``: a ``.lightly/`` made for the datasource's parent folder (``images/x.png``
        there) when the datasource was pointed at the subfolder, the case Lightly's docs warn about; ``None`` when
        none of the folders looked into holds one, or when a read found another key's file in the key's own folder
        (the files are at the right level there, and that folder may hold 100,000: it is not listed)."""
        head, _, name = key_stem(key).rpartition("/")
        base = f"{folder}/{head}" if head else folder
        if base in self._holding:
            return None
        below = self._below.get(base)
        if below is None:
            below = self._below[base] = self._folders_below(base)
        rels = [f"{rel}/{name}.json" for rel, names in below if f"{name}.json" in names]
        if not rels:
            return None
        where = rels[0][len(base) + 1:].rpartition("/")[0]
        more = len(rels) - 1
        others = f" ({more} more folder{'s' * (more > 1)} below it hold{'s' * (more == 1)} one too)" if more else ""
        return rels[0], "deeper", (
            f"it lies in {where}/ below the image's folder {f'{head}/' if head else '(the top of the folder)'}{others}; "
            "Lightly mirrors the image's folders from the datasource's root, so a .lightly/ made for a datasource one "
            "folder up does not fit a datasource pointed at its subfolder")

    def _folders_below(self, base: str) -> list[tuple[str, set[str]]]:
        """``(relpath, its file names)`` of the folders below ``base`` (not ``base`` itself), at most
        :data:`DEEPER_LEVELS` levels down, shallowest first, listing at most :data:`DEEPER_FOLDERS` folders of this
        ``.lightly/`` in all (one listing each: the tree is never walked whole; a cut is logged).

        Measured on local disk, a ``.lightly/metadata/`` of 100,000 files and a shard of 1,000 keys with files and
        32 without (2 cores under load 5-6, medians of 5, before -> after, two rounds): the files where they belong,
        flat, 103 / 118 -> 69 / 141 ms (no folder listed: a read found files in the keys' folder); in 1,000 folders,
        the 32 keys at the top, 118 / 59 -> 84 / 89 ms (64 folders listed); every file one folder too deep, 1,000
        keys, 89 / 91 ms finding none -> 253 / 218 ms naming all 1,000 (2 folders listed, one of 100,000 files; a
        set of names per folder: a dictionary of every name was ~470 ms). ``os.walk`` of that tree: 56-234 ms.
        On an object store a listing costs one request per 1,000 entries.
        """
        found: list[tuple[str, set[str]]] = []
        level = [base]
        for depth in range(DEEPER_LEVELS + 1):
            below: list[str] = []
            for rel in level:
                if self.folders_listed >= DEEPER_FOLDERS:
                    if not self._deeper_cut:  # (said once)
                        self._deeper_cut = True
                        logger.info("looked for misplaced .lightly/ files in %d folders of %s only (the most listed per "
                                    "shard); %s/ and further folders were not looked into", DEEPER_FOLDERS, self.uri,
                                    rel)
                    return found
                self.folders_listed += 1
                files, folders = self._entries(rel)
                if depth:
                    found.append((rel, set(files)))
                below += [f"{rel}/{f}" for f in sorted(folders)]
            level = below
            if not level:
                break
        return found

    def _entries(self, rel: str) -> tuple[list[str], list[str]]:
        """The file and folder names in ``.lightly/<rel>`` (one listing; none when it does not exist). Local folders
        through ``os.scandir`` (no stat per entry); symbolic links to folders are not followed."""
        files: list[str] = []
        folders: list[str] = []
        try:
            if self._real_root is not None:
                with os.scandir(self._full(rel)) as entries:
                    for entry in entries:
                        (folders if entry.is_dir(follow_symlinks=False) else files).append(entry.name)
            else:
                for info in self.fs.ls(self._full(rel), detail=True):
                    name = str(info["name"]).rstrip("/").rpartition("/")[2]
                    (folders if info.get("type") == "directory" else files).append(name)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except Exception as exc:  # noqa: BLE001 - only a hint (a role may read objects and not list them): never fatal
            logger.warning("cannot list %s/%s to look for .lightly/ files below a key's folder (%s): such files are "
                           "not looked for", self.uri, rel, exc)
            self.folders_listed = DEEPER_FOLDERS  # (no further listing in this shard)
            self._deeper_cut = True
        return files, folders

    def read_text(self, relpath: str) -> str | None:
        """A text file of ``.lightly/``, ``None`` when absent (see :func:`decode_text`).

        :raises LightlyFileError: naming the file, when it is not UTF-8 (or UTF-16 with a BOM) text.
        """
        data = self.read_bytes(relpath)
        return None if data is None else decode_text(data, relpath)


def decode_text(data: bytes, relpath: str) -> str:
    """The text of a ``.lightly/`` file (:func:`~lightly_airflow.config.errors.decode_user_text`): UTF-8, with or
    without a byte order mark (BOM), or UTF-16 with one.

    :raises LightlyFileError: naming the file and the byte, for any other encoding.
    """
    try:
        return decode_user_text(data)
    except ValueError as exc:  # ("<what> at byte N; save it as UTF-8": the fix after the last "; ")
        problem, _, fix = str(exc).rpartition("; ")
        raise LightlyFileError(relpath, "", problem or fix, fix if problem else "") from None


#: How much of the line around a JSON error a message quotes (a prediction file is often one long line).
EXCERPT_CHARS = 40


def json_excerpt(text: str, pos: int) -> str:
    """The text around ``pos`` on its line, at most :data:`EXCERPT_CHARS` characters, cut ends marked ``…``:
    a message then shows what is wrong, not only its line and column. An error at the start of a line (a
    trailing comma's closing bracket) is shown from the line before's end, where the mistake is."""
    before = text[:pos].rstrip()
    if before and "\n" in text[len(before):pos]:
        pos = len(before) - 1
    start, end = text.rfind("\n", 0, pos) + 1, text.find("\n", pos)
    end = len(text) if end < 0 else end
    lo = max(start, min(pos - EXCERPT_CHARS // 2, end - EXCERPT_CHARS))  # (near the line's end: more before)
    hi = min(end, lo + EXCERPT_CHARS)
    return f"{'…' * (lo > start)}{text[lo:hi].strip()}{'…' * (hi < end)}"


def _json_fix(description: str) -> tuple[str, str]:
    """``(problem, fix)`` of :func:`~lightly_airflow.config.errors.describe_json_error`'s text: its own action
    ("…: remove that comma", "JSON writes false") where it names one, else correcting the JSON there; the place
    (``(at line L column C)``, which that text puts last) stays with the problem."""
    where = re.search(r" \(at line \d+ column \d+\)$", description)
    place = f" {where[0][2:-1]}" if where else ""
    description = description[: where.start()] if where else description
    for marker in (": remove ", ": JSON writes "):
        head, found, action = description.partition(marker)
        if found:
            return f"{head}{place}", f"{found[2:]}{action}"
    return f"{description}{place}", "correct the JSON there (a JSON validator names the same place)"


def parse_json_bytes(data: bytes, relpath: str) -> Any:
    """Parse a ``.lightly/`` JSON file.

    :raises LightlyFileError: naming the file, for bytes that are not JSON text (:func:`decode_text`; NaN and
        Infinity allowed), with the place (line, column and the text there) and the fix; a trailing comma,
        which JSON does not allow, is named as such.
    """
    text = decode_text(data, relpath)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problem, fix = _json_fix(describe_json_error(exc))
        raise LightlyFileError(relpath, "", f"invalid JSON: {problem} near {json_excerpt(text, exc.pos)!r}",
                               fix) from None
    except RecursionError:
        raise LightlyFileError(relpath, "", "invalid JSON: nested too deeply",
                               "write the file with fewer nested lists and objects") from None


def read_lightly_file(lightly_uri: str, relpath: str, credentials: StorageCredentials | None = None) -> bytes | None:
    """The bytes of ``<lightly_uri>/.lightly/<relpath>``, or ``None`` when the file does not exist.

    :param lightly_uri: the folder holding ``.lightly/`` (or the ``.lightly`` folder itself).
    :param relpath: path inside ``.lightly/`` (``predictions/tasks.json``).
    :param credentials: credentials of that store.
    """
    return LightlyDir(lightly_uri, credentials).read_bytes(relpath)


def relevant_filenames_relpath(relevant_filenames_file: str) -> str:
    """Where ``worker_config.relevant_filenames_file`` is inside ``.lightly/``: the name, or the rest of a name
    that already starts with ``.lightly/``.

    :raises ValueError: a name that is no relative file name inside the folder.
    """
    name = str(relevant_filenames_file).strip().lstrip("/")
    if name.startswith(LIGHTLY_DIR + "/"):
        name = name[len(LIGHTLY_DIR) + 1 :]
    problem = check_relative_file_name(name)
    if problem:
        raise ValueError(f"relevant_filenames_file {relevant_filenames_file!r} {problem}.")
    return name


def read_relevant_filenames(
    lightly_uri: str, relevant_filenames_file: str, credentials: StorageCredentials | None = None
) -> str:
    """The text of the relevant-filenames file named by ``worker_config.relevant_filenames_file``.

    The name is looked up inside ``.lightly/`` (Lightly's convention: ``.lightly/relevant_filenames.txt``);
    a name that already starts with ``.lightly/`` is accepted as well.

    :raises FileNotFoundError: naming the full URI looked at and the fix.
    """
    name = relevant_filenames_relpath(relevant_filenames_file)
    folder = LightlyDir(lightly_uri, credentials)
    text = folder.read_text(name)
    if text is None:
        raise FileNotFoundError(
            f"relevant_filenames_file {relevant_filenames_file!r} not found at {folder.uri}/{name}: upload it "
            "into the '.lightly/' folder or fix worker_config.relevant_filenames_file."
        )
    return text



EMBEDDINGS_DIR = "embeddings"


class UnsafeLocationError(ValueError):
    """A user-given location that does not resolve inside the folder it belongs to."""


def resolve_embeddings_csv(lightly_uri: str, name: str, credentials: StorageCredentials | None = None) -> str:
    """The URI of ``worker_config.embeddings``: a CSV *inside* ``<lightly_uri>/.lightly/embeddings/``.

    ``name`` is a path relative to that folder (a leading ``.lightly/embeddings/`` is accepted, as Lightly's
    docs write it). Absolute paths, URIs, ``..`` segments and (on local stores) symlinks that leave the folder
    are refused, so the embed task can never be made to read another file of the worker. Nothing of the
    file's content is ever put into a message.

    :raises UnsafeLocationError: for a name that leaves the folder (the message says what is allowed).
    :raises FileNotFoundError: when the CSV is not there (the message names the URI looked at).
    """
    import os

    text = str(name).strip()
    for prefix in (f"{LIGHTLY_DIR}/{EMBEDDINGS_DIR}/", f"{EMBEDDINGS_DIR}/"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    problem = check_relative_file_name(text)
    if problem:
        raise UnsafeLocationError(
            f"{name!r} {problem}: it must name a CSV inside the '.lightly/embeddings/' folder, e.g. 'my.csv'"
        )
    folder_uri = join_uri(lightly_root(lightly_uri), EMBEDDINGS_DIR)
    uri = join_uri(folder_uri, text)
    fs, path = filesystem(uri, credentials)
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" in protocols:  # object stores have no symbolic links
        _, folder = filesystem(folder_uri, credentials)
        real_folder = os.path.realpath(folder)
        real = os.path.realpath(path)
        if os.path.commonpath([real_folder, real]) != real_folder:
            raise UnsafeLocationError(
                f"{name!r} resolves outside the '.lightly/embeddings/' folder (through a symbolic link): copy "
                "the CSV into that folder instead of linking to it"
            )
    if not fs.exists(path) or fs.isdir(path):
        raise FileNotFoundError(f"the custom embeddings CSV {uri} does not exist")
    return uri

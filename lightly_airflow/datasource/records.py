"""The manifest record schema and the key filters shared by every store."""

from __future__ import annotations

from collections.abc import Collection

import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow.columns import ETAG, KEY, MTIME, SIZE
from lightly_airflow.heif import HEIF_EXTENSIONS
from lightly_airflow.lightly_dir import LIGHTLY_DIR
from lightly_airflow.lightly_dir import VIDEO_EXTENSIONS as _VIDEO

#: AVIF images (Pillow >= 11.3 built with libavif decodes them: the locked Pillow does).
AVIF_EXTENSIONS: tuple[str, ...] = ("avif",)
#: Image extensions, lower case, without the dot: every image format this plugin decodes. Those Lightly accepts
#: (anything Pillow opens among these; WebP: Lightly's libraries list it, ``lightly``'s and LightlyTrain's image
#: extensions), HEIC/HEIF (the iPhone camera's format, decoded by pi-heif: ``lightly_airflow.heif``) and AVIF; the
#: Lightly Worker leaves the last two out.
IMAGE_EXTENSIONS: tuple[str, ...] = ("png", "jpg", "jpeg", "bmp", "gif", "tiff", "tif", "webp", *HEIF_EXTENSIONS,
                                     *AVIF_EXTENSIONS)
#: Video extensions Lightly accepts.
VIDEO_EXTENSIONS: tuple[str, ...] = tuple(_VIDEO)

#: What a datasource lists by default: images and videos (every video frame becomes a sample).
DEFAULT_EXTENSIONS: tuple[str, ...] = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS


def unlisted_image_hint(extension: str) -> str | None:
    """What to do about images the listing's extensions leave out although they are listed by default (HEIC/HEIF,
    AVIF: a list of one's own such as Lightly's leaves them out), ``None`` for other extensions."""
    ext = extension.lower().lstrip(".")
    if ext in HEIF_EXTENSIONS:
        what = "HEIC/HEIF images (iPhone photos), which this plugin decodes"
    elif ext in AVIF_EXTENSIONS:
        from PIL import features

        if not features.check("avif"):
            return (f".{ext} files are AVIF images, which the installed Pillow cannot decode (Pillow >= 11.3 built "
                    "with libavif can): convert them to JPEG or PNG, or upgrade Pillow and list them")
        what = "AVIF images, which the installed Pillow decodes"
    else:
        return None
    return (f".{ext} files are {what} but the extensions given leave out: list them with "
            f"extensions=[..., {ext!r}] (or IMAGE_EXTENSIONS, every image format this plugin reads)")


MANIFEST_SCHEMA = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),
        pa.field(SIZE, pa.int64(), nullable=False),
        pa.field(ETAG, pa.string(), nullable=False),
        pa.field(MTIME, pa.timestamp("us", tz="UTC"), nullable=True),
    ]
)


def normalise_extensions(extensions: Collection[str] | str) -> tuple[str, ...]:
    """Lower-case extensions without dots; ``"*"`` (or a collection holding it) means every file.

    :raises ValueError: for an empty collection or a blank extension.
    """
    if isinstance(extensions, str):
        extensions = [extensions]
    out = []
    for ext in extensions:
        ext = str(ext).strip().lower().lstrip(".")
        if not ext:
            raise ValueError(f"Empty file extension in {list(extensions)!r}: pass e.g. ['png', 'jpg'] or ['*'].")
        out.append(ext)
    if not out:
        raise ValueError("No file extensions given: pass e.g. IMAGE_EXTENSIONS or ['*'] for every file.")
    return tuple(dict.fromkeys(out))


def extension_regex(extensions: tuple[str, ...]) -> str | None:
    """RE2 regex matching keys with one of ``extensions`` (case-insensitive use); ``None`` for every file."""
    if "*" in extensions:
        return None
    alternatives = "|".join("".join("\\" + c if not c.isalnum() else c for c in ext) for ext in extensions)
    return r"\.(?:" + alternatives + r")$"


#: Files that operating systems and tools leave in a folder, which are never samples (RE2, matched
#: case-insensitively on the key). A real bucket has them: macOS AppleDouble sidecars ``._photo.jpg`` (from a
#: Mac's external disk or network share; a zip made on a Mac holds them under ``__MACOSX/``), ``.DS_Store``,
#: Windows' ``Thumbs.db`` / ``desktop.ini``, editors' lock and backup files (``.#a.jpg``, ``~$a.docx``,
#: ``.~lock.a#``, ``a.jpg~``), and any hidden folder (``.git/``, ``.ipynb_checkpoints/``, ``.Trash-1000/``,
#: ``.thumbnails/``, …), besides the Recycle Bin, ``System Volume Information/`` and Synology's ``@eaDir/`` and
#: ``#recycle/`` (thumbnail copies and deleted files). A hidden *file* with an image name that matches none of
#: these (``.hidden.jpg``) is a sample like any other. ``.lightly/`` keys are never listed (:func:`base_mask`).
OS_FILE_REGEX = (
    r"(?:^|/)(?:"
    r"\._[^/]*|\.#[^/]*|~\$[^/]*|\.~lock\.[^/]*#|[^/]*~"
    r"|\.ds_store|\.localized|\.directory|\.picasa\.ini|thumbs\.db|ehthumbs(?:_vista)?\.db|desktop\.ini|icon\r"
    r")$"
    r"|(?:^|/)(?:__macosx|\$recycle\.bin|system volume information|@eadir|#recycle"
    r"|\.(?:[^./][^/]*|\.[^/]+))/"
)


def os_file_mask(keys: pa.Array) -> pa.Array:
    """Keys that are OS or tool metadata (:data:`OS_FILE_REGEX`), never samples."""
    return pc.fill_null(pc.match_substring_regex(keys, OS_FILE_REGEX, ignore_case=True), False)


def base_mask(keys: pa.Array, ext_regex: str | None) -> pa.Array:
    """Keys that are files we may list: not inside any ``.lightly/`` folder, not a folder marker, right extension."""
    keep = pc.invert(pc.match_substring_regex(keys, r"(?:^|/)" + LIGHTLY_DIR.replace(".", r"\.") + "/"))
    keep = pc.and_(keep, pc.invert(pc.ends_with(keys, "/")))
    keep = pc.and_(keep, pc.not_equal(keys, ""))
    if ext_regex is not None:
        keep = pc.and_(keep, pc.match_substring_regex(keys, ext_regex, ignore_case=True))
    return pc.fill_null(keep, False)


def empty_table() -> pa.Table:
    return MANIFEST_SCHEMA.empty_table()

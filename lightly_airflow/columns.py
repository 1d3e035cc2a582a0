"""The one column naming convention shared by staging files, the selection engine and the datapool.

Every table the pipeline writes or reads names its columns through this module, so a column means the
same thing in a manifest shard, a staging file, the engine's samples table and the datapool.

Identity columns (manifests and every staging file):

- ``key``: the file's path relative to the datasource root, ``/``-separated, no leading ``/``.
- ``size``: file size in bytes (int64).
- ``etag``: the store's content identity (S3 ETag, GCS generation/MD5, Azure ETag/MD5, local content hash).
- ``mtime``: modification time (timestamp, microseconds, UTC). Informational only: never used for "new".

Per-sample values (staging files, engine input, datapool):

- ``embedding``: L2-normalised float32 vector, one fixed dimension per datapool.
- ``content_hash``: hex SHA-256 of the file's bytes (exact-duplicate detection).
- ``status``: one of :data:`STATUSES`; ``status_reason`` says why a file is not ``ok``;
  ``duplicate_of`` names the key a duplicate repeats.
- ``metadata.<name>``: computed metadata (``metadata.lightly.sharpness``) and custom metadata
  (``metadata.weather.temperature``); the name is the Lightly ``METADATA`` input ``key`` verbatim.
- ``scores.<task>.<score>``: a scorer's value for a prediction task (``scores.cls.uncertainty_margin``).
- ``predictions.<task>.class_distribution``: probability vector ordered by category id; the category names
  are recorded in the table's schema metadata under :data:`CATEGORIES_METADATA_KEY`.
- ``predictions.<task>.category_count.<category name>``: number of objects of that category.

Video frames (a frame is a sample named as Lightly names it, see :mod:`lightly_airflow.video.naming`):

- ``video``: the key of the frame's video (null for images); ``frame_index``: the frame's index as PyAV
  decodes it; ``frame_pts``: its presentation timestamp in the stream's time base; ``frame_seconds``: its time.
- ``video_problem`` (manifests only): why a video could not be read (completely, or from some frame on).
- ``video_frames`` (manifests only): the number of frames of the row's video (``video.index.VideoIndex.n_frames``:
  its readable frames), so a task that reads one shard knows where each video ends.
- ``video_seekable`` (manifests only): whether the index found the opened container seekable
  (``video.index.VideoIndex.seekable``); false: its frames are found in one pass from the start of the file.
Object rows (docs/objects.md): an object (a predicted box, or a synthetic one of an ``auto_tasks`` entry) is a
row of its own with ``key`` = its ``object_id`` (``<parent key>#<task>#<index>``), ``etag`` of its image,
``parent_key`` (the image's ``key``; null on image rows, so it tells the two apart), ``object_task``,
``object_index`` (position in the prediction file or tile number), ``object_bbox`` (``[x, y, w, h]`` pixels as
predicted), ``object_crop_box`` (the padded box that was cropped, integer pixels), ``object_category``,
``object_score``, the crop's ``embedding`` and ``metadata.lightly.*``, and ``object_selected`` (its image was
selected by the run). Object rows are never ``selected`` themselves (they carry no tags).

Datapool-only columns: ``sample_id``, ``run_id``, ``dag_id``, ``selected``, ``pick_rank``, ``tags``,
``committed_at``; ``selection.<value>`` per selected sample: why it was picked, the value of each objective at
the moment of its pick (``selection.score`` the combined ``Σ strength·log(objective)``, ``selection.distance``
to the selected set, ``selection.weight``, ``selection.balance_deficit``, ``selection.similarity``,
``selection.typicality``; see ``SelectionResult.pick_details``).
"""

from __future__ import annotations

KEY = "key"
SIZE = "size"
ETAG = "etag"
MTIME = "mtime"
MANIFEST_COLUMNS = (KEY, SIZE, ETAG, MTIME)

EMBEDDING = "embedding"
CONTENT_HASH = "content_hash"
STATUS = "status"
STATUS_REASON = "status_reason"
DUPLICATE_OF = "duplicate_of"

STATUS_OK = "ok"
STATUS_CORRUPT = "corrupt"
STATUS_DUPLICATE = "duplicate"
STATUS_MISSING = "missing"
STATUSES = (STATUS_OK, STATUS_CORRUPT, STATUS_DUPLICATE, STATUS_MISSING)
#: ``status_reason`` of a tombstone row starts so (``video.supersede``: a frame a replaced video no longer has; it
#: keeps the former etag, status missing)
SUPERSEDED = "superseded"

VIDEO = "video"
FRAME_INDEX = "frame_index"
FRAME_PTS = "frame_pts"
FRAME_SECONDS = "frame_seconds"
VIDEO_COLUMNS = (VIDEO, FRAME_INDEX, FRAME_PTS, FRAME_SECONDS)
VIDEO_PROBLEM = "video_problem"
VIDEO_SEEKABLE = "video_seekable"
VIDEO_FRAMES = "video_frames"

SAMPLE_ID = "sample_id"
RUN_ID = "run_id"
DAG_ID = "dag_id"
SELECTED = "selected"
PICK_RANK = "pick_rank"
TAGS = "tags"
COMMITTED_AT = "committed_at"
#: The version of the pixel rules a row's embedding, hash and metrics were computed under (null in rows
#: committed before it existed).
PIXEL_RULES = "pixel_rules"
#: The version of the rules for what a sample's pixels are (images and video frames). Every committed row records
#: it (:data:`PIXEL_RULES`); the list task reuses a pool's embedding, hash and metrics of an unchanged file
#: only when they were computed under this version, so a rule that changes pixels is applied on the next
#: ``process_all`` instead of staying behind in old rows. Raise it with every change of pixels.
#: 1 (rows without it): before 2026-12-04. 2: images upright and transparency on white in the metadata pass;
#: video frames upright by their display matrix, edit lists applied, ``frame_seconds`` from the file's start.
#: 3: high bit depths scaled by their stated or guessed white (12-bit data in 16-bit files), JPEGs above
#: ``PIL.Image.MAX_IMAGE_PIXELS`` decoded at a reduced scale instead of corrupt. 4: 16-bit colour TIFFs and 16-bit
#: grey + alpha PNGs scaled by their white like 16-bit colour PNGs (not their high bytes). 5: planar 16-bit colour
#: TIFFs (each colour its own plane) decoded plane by plane, scaled as the others (they were garbled or near-black);
#: an 8-bit RGB or grey PNG's transparent colour (tRNS) composited on white. 6: colours converted to sRGB by an
#: embedded ICC profile (Display P3, Adobe RGB, CMYK and grey profiles; sRGB ones change nothing); a PNG that
#: Pillow refused over its iCCP chunk read without it. 7: HDR video frames (PQ, HLG) and BT.2020 ones tone- and
#: gamut-mapped to sRGB as an SDR screen shows them (they were read as SDR: dull, pale or nearly black). 8: video
#: frames without a colour matrix tag read with BT.709 when HD (≥ 1280 wide or > 576 high), as players read them
#: (they were read with BT.601: saturated colours ~10-20 levels off). 9: video frames mirrored by their display
#: matrix as players show them (a horizontally mirrored video was turned upside down, a vertically mirrored or
#: transposed one shown as stored). 10: a 16-bit PNG's transparent colour (tRNS) on white; grey TIFFs with
#: premultiplied alpha and PNGs with over 1 MB of compressed text before their pixels decoded (they were corrupt);
#: a damaged PNG corrupt in every pass (the embed pass used its half-decoded picture).
PIXEL_RULES_VERSION = 10

INITIAL_TAG = "initial-tag"

OBJECT_ID = KEY
PARENT_KEY = "parent_key"
OBJECT_TASK = "object_task"
OBJECT_INDEX = "object_index"
OBJECT_BBOX = "object_bbox"
OBJECT_CROP_BOX = "object_crop_box"
OBJECT_CATEGORY = "object_category"
OBJECT_SCORE = "object_score"
OBJECT_SELECTED = "object_selected"

METADATA_PREFIX = "metadata."
SCORES_PREFIX = "scores."
PREDICTIONS_PREFIX = "predictions."
SELECTION_PREFIX = "selection."

# Schema-metadata keys (bytes keys in Parquet/Arrow schema metadata, JSON values).
DATASOURCE_URI_METADATA_KEY = "lightly.datasource_uri"
LIGHTLY_URI_METADATA_KEY = "lightly.lightly_uri"
EMBEDDING_MODEL_METADATA_KEY = "lightly.embedding_model"
EMBEDDING_DIM_METADATA_KEY = "lightly.embedding_dim"
#: manifest schema metadata: ``{"model", "dim"}`` of the datapool the run commits to (``None``: a new pool)
POOL_EMBEDDING_METADATA_KEY = "lightly.pool_embedding"
EMBEDDING_INPUT_SIZE_METADATA_KEY = "lightly.embedding_input_size"
CATEGORIES_METADATA_KEY = "lightly.categories"


def object_id(parent_key: str, task: str, index: int) -> str:
    """The id (and datapool ``key``) of an object: ``img/a.png`` + ``cars`` + 3 -> ``img/a.png#cars#3``."""
    return f"{parent_key}#{task}#{index}"


def object_metadata_column(task: str, name: str) -> str:
    """Image-level mean of a crop metric over the image's objects of ``task`` (a ``METADATA`` input key
    ``objects.<task>.lightly.<name>``): ``(cars, sharpness)`` -> ``metadata.objects.cars.lightly.sharpness``."""
    return metadata_column(f"objects.{task}.lightly.{name}")


def metadata_column(name: str) -> str:
    """Column of a ``METADATA`` input: ``lightly.sharpness`` -> ``metadata.lightly.sharpness``."""
    return METADATA_PREFIX + name


def selection_column(name: str) -> str:
    """Column of a per-pick selection value: ``distance`` -> ``selection.distance``."""
    return SELECTION_PREFIX + name


def lightly_metadata_column(name: str) -> str:
    """Column of a computed metric: ``sharpness`` -> ``metadata.lightly.sharpness``."""
    return metadata_column("lightly." + name)


def score_column(task: str, score: str) -> str:
    """Column of a ``SCORES`` input: ``(cls, uncertainty_margin)`` -> ``scores.cls.uncertainty_margin``."""
    return f"{SCORES_PREFIX}{task}.{score}"


def class_distribution_column(task: str) -> str:
    """Column of a ``PREDICTIONS``/``CLASS_DISTRIBUTION`` input."""
    return f"{PREDICTIONS_PREFIX}{task}.class_distribution"


def category_count_column(task: str, category: str) -> str:
    """Column of a ``PREDICTIONS``/``CATEGORY_COUNT`` input for one category name."""
    return f"{PREDICTIONS_PREFIX}{task}.category_count.{category}"

# The 2-D map of the embeddings (float32, null without an embedding): computed once per run before the commit
# in one PCA basis kept per datapool (lightly_airflow.report.layout), so every run's points share one map.
LAYOUT_X = "layout.x"
LAYOUT_Y = "layout.y"

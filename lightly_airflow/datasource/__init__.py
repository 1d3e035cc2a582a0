"""Datasources: list S3, GCS, Azure and local folders as one stream of records, find new files, shard them.

Public API (no Airflow imports):

- :func:`list_files` — stream ``key, size, etag, mtime`` record batches from any store;
- :func:`new_files` — hash anti-join of a listing against the datapool's known files;
- :func:`write_manifests` / :func:`read_manifest` — the run's deterministic manifest shards (the reader and
  its :class:`Manifest` type are :mod:`lightly_airflow.staging`'s, re-exported here);
- :func:`read_bytes` / :func:`read_many` — read listed files from any store (``MissingFileError`` for gone ones);
- :func:`known_files` — the datapool's ``key, etag`` (``None`` before the first run);
- :class:`NewFilesQuery` / :func:`find_new_files` — the one definition of what a run processes (sensor,
  trigger and list task build the same frozen query);
- :func:`check_new_files` — "are there new files?" for sensors and triggers.
"""

from lightly_airflow.datasource.check import NewFilesCheck, check_new_files
from lightly_airflow.datasource.diff import POLICIES, new_files
from lightly_airflow.datasource.known import known_files
from lightly_airflow.datasource.listing import list_files, list_table
from lightly_airflow.datasource.manifest import shard_count, write_manifests
from lightly_airflow.datasource.query import (
    ListingSkips,
    NewFiles,
    NewFilesQuery,
    QueryCredentials,
    RelevantFilenamesMissing,
    find_new_files,
)
from lightly_airflow.datasource.reader import MissingFileError, read_bytes, read_many
from lightly_airflow.datasource.records import DEFAULT_EXTENSIONS, IMAGE_EXTENSIONS, MANIFEST_SCHEMA, VIDEO_EXTENSIONS
from lightly_airflow.datasource.relevant import RelevantFilenames, RelevantFilenamesError
from lightly_airflow.staging import Manifest, read_manifest

__all__ = [
    "DEFAULT_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "MANIFEST_SCHEMA",
    "Manifest",
    "POLICIES",
    "VIDEO_EXTENSIONS",
    "ListingSkips",
    "MissingFileError",
    "NewFiles",
    "NewFilesCheck",
    "NewFilesQuery",
    "QueryCredentials",
    "RelevantFilenames",
    "RelevantFilenamesError",
    "RelevantFilenamesMissing",
    "check_new_files",
    "find_new_files",
    "known_files",
    "list_files",
    "list_table",
    "new_files",
    "read_bytes",
    "read_many",
    "read_manifest",
    "shard_count",
    "write_manifests",
]

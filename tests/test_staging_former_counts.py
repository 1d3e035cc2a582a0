"""A shard's staging file written before its stage wrote ``lightly.counts.<stage>`` (a run resumed after an upgrade:
its shard tasks ran on the release before, its select task on this one) never counts 0 silently: the release
before's own keys are read (``staging.FORMER_COUNT_KEYS``), and a file without any counts is counted as not known
(``StageCounts.not_known``, said by ``staging.counts_not_known_note``)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from lightly_doc_examples import CLASSIFICATION_ONLY_CATEGORY, CLASSIFICATION_SCHEMA
from metadata.conftest import make_manifest, write_tree

from lightly_airflow import columns as C
from lightly_airflow import staging

P = ".lightly/predictions/"


def _as_released_before(path: str, former: dict[bytes, bytes]) -> None:
    """Rewrite a staging file as the release before wrote it: no ``lightly.counts.<stage>``, ``former`` instead."""
    table = pq.read_table(path)
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if not k.startswith(b"lightly.counts.")}
    pq.write_table(table.replace_schema_metadata({**meta, **former}), path)


def _decoded(path: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (pq.read_schema(path).metadata or {}).items()}


def test_predictions_shards_of_older_releases_are_read_or_counted_as_not_known(tmp_path: Path) -> None:
    from lightly_airflow.predictions import load_predictions_shard

    store = tmp_path / "store"
    files = {P + "tasks.json": ["weather"], P + "weather/schema.json": CLASSIFICATION_SCHEMA}
    files.update({P + f"weather/a/{i}.json": {**CLASSIFICATION_ONLY_CATEGORY, "file_name": f"a/{i}.png"}
                  for i in range(6)})
    write_tree(store, files)
    shards = [make_manifest(tmp_path / f"s{n}", [f"a/{2 * n}.png", f"a/{2 * n + 1}.png"], lightly_uri=str(store))
              for n in range(3)]
    outs = [load_predictions_shard(m)["output_uri"] for m in shards]  # (2 predictions without probabilities each)
    # Shard 1 as the release of 2026-12-07 10:17 wrote it (its own key), shard 2 as one before that (no count).
    _as_released_before(outs[1], {b"lightly.derived_probabilities": json.dumps({"weather": 2}).encode()})
    _as_released_before(outs[2], {})
    meta: dict[str, str] = {}
    for out in outs:  # (as the select task merges the shards' metadata: pipeline.assemble_run)
        meta = staging.merged_metadata(meta, _decoded(out))
    summed = staging.summed_counts([meta], staging.PREDICTIONS)
    assert summed == {"weather": 4}  # shard 0's and shard 1's (read from the former key); it read 2
    assert summed.not_known == 1  # shard 2: not known, where it counted 0 silently
    note = staging.counts_not_known_note(staging.PREDICTIONS, summed.not_known, len(outs))
    assert note is not None and note.startswith("the predictions counts of 1 of 3 shards are not known")
    assert "clear the run's predictions tasks, then its select task" in note
    # Each shard's own file, as a table: the same.
    tables = [pq.read_table(o) for o in outs]
    assert staging.summed_counts(tables, staging.PREDICTIONS).not_known == 1
    # Every shard counted, and a run without predictions: nothing said.
    current = staging.merged_metadata({}, _decoded(outs[0]))
    assert staging.summed_counts([current], staging.PREDICTIONS).not_known == 0
    assert staging.counts_not_known_note(staging.PREDICTIONS, 0) is None
    embeddings_only = {C.EMBEDDING_MODEL_METADATA_KEY: json.dumps("m")}  # (no predictions file in the shard)
    assert staging.summed_counts([staging.merged_metadata({}, embeddings_only)], staging.PREDICTIONS).not_known == 0


def test_object_shards_of_older_releases_are_read_or_counted_as_not_known_through_the_stacked_run(
        tmp_path: Path) -> None:
    from lightly_airflow.objects.run import load_run_objects
    from lightly_airflow.objects.shard import DROP_COUNTS, objects_schema

    schema = objects_schema("efficientnet-lite0", 4, 64)
    pool, run = str(tmp_path / "pool"), "manual__up"
    manifests = [staging.shard_uri(pool, run, staging.MANIFEST, i) for i in range(3)]
    for i, manifest in enumerate(manifests):
        table = pa.Table.from_pylist([{C.KEY: f"{i}.png#det#0", C.PARENT_KEY: f"{i}.png", C.OBJECT_TASK: "det",
                                       C.OBJECT_INDEX: 0, C.EMBEDDING: [0.5, 0.5, 0.5, 0.5], C.STATUS: "ok"}],
                                     schema=schema)
        uri = staging.sibling_uri(manifest, staging.OBJECTS)
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        if i == 0:  # this release
            table = staging.with_counts(table, staging.OBJECTS, dict.fromkeys(DROP_COUNTS, 0) | {"boxes_outside_image": 5})
        elif i == 1:  # the release before 2026-12-07 18:58: one key per count (objects.shard.count_key)
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **{
                f"lightly.{n}".encode(): str(3 if n == "boxes_outside_image" else 1 if n == "images_failed" else 0
                                             ).encode() for n in DROP_COUNTS}})
        pq.write_table(table, uri)  # (shard 2: a release before the objects stage counted)
    stacked = load_run_objects(manifests)  # (the select task's stacked run: objects.run, unchanged)
    assert stacked is not None and stacked.num_rows == 3
    counts = staging.summed_counts([stacked], staging.OBJECTS)
    assert counts["boxes_outside_image"] == 8 and counts["images_failed"] == 1  # (5 + 3: it read 5)
    assert counts.not_known == 1  # (carried through the stacked table's metadata)
    # A retried shard 2 (this release) replaces the not-known count: the stacked run counts every shard.
    uri = staging.sibling_uri(manifests[2], staging.OBJECTS)
    pq.write_table(staging.with_counts(pq.read_table(uri), staging.OBJECTS, {"boxes_outside_image": 1}), uri)
    again = staging.summed_counts([load_run_objects(manifests)], staging.OBJECTS)
    assert again["boxes_outside_image"] == 9 and again.not_known == 0

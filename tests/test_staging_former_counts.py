"""A shard's staging file without ``lightly.counts.<stage>`` (written before its stage counted: a run resumed after an
upgrade) never counts 0 silently: it is counted as not known (``StageCounts.not_known``, said by
``staging.counts_not_known_note``). The keys main wrote for a few hours before ``lightly.counts.<stage>``
(``lightly.derived_probabilities`` 2026-12-07 10:17-18:58; the objects stage's ``lightly.<count>`` 2026-12-04 to
12-07) are not read: no release wrote them (the package is 0.1.0, untagged), so such a file is not known too."""

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


def _as_written_before(path: str, former: dict[bytes, bytes]) -> None:
    """Rewrite a staging file as an older build wrote it: no ``lightly.counts.<stage>``, ``former`` instead."""
    table = pq.read_table(path)
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if not k.startswith(b"lightly.counts.")}
    pq.write_table(table.replace_schema_metadata({**meta, **former}), path)


def _decoded(path: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (pq.read_schema(path).metadata or {}).items()}


def test_predictions_shards_without_counts_are_counted_as_not_known(tmp_path: Path) -> None:
    from lightly_airflow.predictions import load_predictions_shard

    store = tmp_path / "store"
    files = {P + "tasks.json": ["weather"], P + "weather/schema.json": CLASSIFICATION_SCHEMA}
    files.update({P + f"weather/a/{i}.json": {**CLASSIFICATION_ONLY_CATEGORY, "file_name": f"a/{i}.png"}
                  for i in range(6)})
    write_tree(store, files)
    shards = [make_manifest(tmp_path / f"s{n}", [f"a/{2 * n}.png", f"a/{2 * n + 1}.png"], lightly_uri=str(store))
              for n in range(3)]
    outs = [load_predictions_shard(m)["output_uri"] for m in shards]  # (2 predictions without probabilities each)
    # Shard 1 as main wrote it for a few hours (its own key, never released), shard 2 before that (no count).
    _as_written_before(outs[1], {b"lightly.derived_probabilities": json.dumps({"weather": 2}).encode()})
    _as_written_before(outs[2], {})
    meta: dict[str, str] = {}
    for out in outs:  # (as the select task merges the shards' metadata: pipeline.assemble_run)
        meta = staging.merged_metadata(meta, _decoded(out))
    summed = staging.summed_counts([meta], staging.PREDICTIONS)
    assert summed == staging.StageCounts({"weather": 2}, not_known=2)  # shard 0's; shards 1 and 2: not known
    note = staging.counts_not_known_note(staging.PREDICTIONS, summed.not_known, len(outs))
    assert note is not None and note.startswith("the predictions counts of 2 of 3 shards are not known")
    assert "clear the run's predictions tasks, then its select task" in note
    # Each shard's own file, as a table: the same.
    tables = [pq.read_table(o) for o in outs]
    assert staging.summed_counts(tables, staging.PREDICTIONS) == summed
    assert not hasattr(staging, "FORMER_COUNT_KEYS")
    # Every shard counted, and a run without predictions: nothing said.
    current = staging.merged_metadata({}, _decoded(outs[0]))
    assert staging.summed_counts([current], staging.PREDICTIONS).not_known == 0
    assert staging.counts_not_known_note(staging.PREDICTIONS, 0) is None
    embeddings_only = {C.EMBEDDING_MODEL_METADATA_KEY: json.dumps("m")}  # (no predictions file in the shard)
    assert staging.summed_counts([staging.merged_metadata({}, embeddings_only)], staging.PREDICTIONS).not_known == 0


def test_object_shards_without_counts_are_counted_as_not_known_through_the_stacked_run(
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
        if i == 0:  # counted
            table = staging.with_counts(table, staging.OBJECTS, dict.fromkeys(DROP_COUNTS, 0) | {"boxes_outside_image": 5})
        elif i == 1:  # main before 2026-12-07 18:58 (never released): one key per count, not read
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **{
                f"lightly.{n}".encode(): str(3 if n == "boxes_outside_image" else 1 if n == "images_failed" else 0
                                             ).encode() for n in DROP_COUNTS}})
        pq.write_table(table, uri)  # (shard 2: written before the objects stage counted)
    stacked = load_run_objects(manifests)  # (the select task's stacked run: objects.run, unchanged)
    assert stacked is not None and stacked.num_rows == 3
    counts = staging.summed_counts([stacked], staging.OBJECTS)
    assert counts.counts["boxes_outside_image"] == 5 and counts.counts["images_failed"] == 0  # (shard 0's)
    assert counts.not_known == 2  # (carried through the stacked table's metadata)
    # Retried shards 1 and 2 replace the not-known counts: the stacked run counts every shard.
    for i in (1, 2):
        uri = staging.sibling_uri(manifests[i], staging.OBJECTS)
        pq.write_table(staging.with_counts(pq.read_table(uri), staging.OBJECTS, {"boxes_outside_image": i}), uri)
    again = staging.summed_counts([load_run_objects(manifests)], staging.OBJECTS)
    assert again.counts["boxes_outside_image"] == 8 and again.not_known == 0

"""The datapool's guarantees on every writable store: local disk, moto S3 and Azurite."""

from __future__ import annotations

import threading
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from lightly_airflow import columns as C
from lightly_airflow.datapool import (
    COMMIT_VERSION,
    ConcurrentCommitError,
    Datapool,
    DatapoolError,
    EmbeddingMismatchError,
    TagExistsError,
    default_tag,
)
from lightly_airflow.storage import StorageCredentials

from .conftest import DIM, MODEL, commit_run, run_rows

STORES = ["local", "s3_bucket", "azure_container"]


@pytest.fixture(params=STORES)
def pool_location(request: pytest.FixtureRequest, tmp_path) -> tuple[str, StorageCredentials | None]:
    if request.param == "local":
        return str(tmp_path / "pool"), None
    bucket = request.getfixturevalue(request.param)
    return bucket.uri + "/pool", bucket.credentials


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([(C.KEY, "ascending"), (COMMIT_VERSION, "ascending")])


def test_snapshots_tags_and_schema_evolution(pool_location, digits) -> None:
    pool = Datapool(*pool_location)
    assert not pool.exists() and pool.version() is None and pool.selected().num_rows == 0
    runs = [
        ("scheduled__2026-01-01T00:00:00+00:00", None, run_rows(digits, range(0, 40), picks=[4, 1, 30], corrupt=[7])),
        ("scheduled__2026-01-02T00:00:00+00:00", "batch-2", run_rows(digits, range(40, 70), picks=[2, 0], extra_metadata="weather")),
        ("manual__2026-01-03", None, run_rows(digits, range(70, 90), picks=[5]).drop_columns([C.score_column("cls", "uncertainty_margin")])),
    ]
    snapshots = {}
    for run_id, tag, rows in runs:
        result = commit_run(pool, rows, run_id, tag=tag)
        assert not result.already_committed
        assert result.tag == (tag or default_tag(run_id))
        snapshots[run_id] = (result.version, pool.read())

    assert pool.exists()
    # Every run's snapshot reads back as it was, by run id, by version and by time.
    history = {h["run_id"]: h for h in pool.history() if h["run_id"]}
    for run_id, (version, snapshot) in snapshots.items():
        assert pool.committed_version(run_id) == version == history[run_id]["version"]
        assert pool.read(run_id=run_id).equals(snapshot)
        assert pool.read(version=version).equals(snapshot)
        assert pool.read(timestamp=history[run_id]["timestamp"] + timedelta(milliseconds=1)).num_rows == snapshot.num_rows
    assert [snapshots[r][1].num_rows for r, _, _ in runs] == [40, 70, 90]

    # Tags match the selections; initial-tag is every selected sample, in pick order.
    tags = {t["name"]: t for t in pool.tags()}
    expected_all = []
    for run_id, tag, rows in runs:
        name = tag or default_tag(run_id)
        picked = rows.filter(rows.column(C.SELECTED)).sort_by(C.PICK_RANK).column(C.KEY).to_pylist()
        expected_all += picked
        assert tags[name]["run_id"] == run_id and tags[name]["count"] == len(picked)
        tagged = pool.read(tag=name, columns=[C.KEY, C.RUN_ID, C.TAGS])
        assert sorted(tagged.column(C.KEY).to_pylist()) == sorted(picked)
        assert set(tagged.column(C.RUN_ID).to_pylist()) == {run_id}
        assert all(t == [name, C.INITIAL_TAG] for t in tagged.column(C.TAGS).to_pylist())
    assert tags[C.INITIAL_TAG]["count"] == len(expected_all) == 6
    selected = pool.selected([C.KEY, C.EMBEDDING, C.PICK_RANK])
    assert selected.column(C.KEY).to_pylist() == expected_all
    assert selected.schema.field(C.EMBEDDING).type == pa.list_(pa.float32(), DIM)
    x, _ = digits
    first = int(expected_all[0].rsplit("/", 1)[1].split(".")[0])
    assert selected.column(C.EMBEDDING)[0].values.to_numpy().tolist() == pytest.approx(x[first].tolist())

    # New columns were added, old rows read them as null; a dropped column is null in the run that lacked it.
    latest = pool.read()
    weather = latest.column(C.metadata_column("weather"))
    assert weather.null_count == 60 and set(weather.drop_null().to_pylist()) == {"v0", "v1", "v2"}
    score = latest.filter(pc.equal(latest.column(C.RUN_ID), "manual__2026-01-03"))
    assert score.column(C.score_column("cls", "uncertainty_margin")).null_count == 20
    assert C.metadata_column("weather") not in pool.read(version=snapshots[runs[0][0]][0]).column_names
    # The corrupt sample is kept with its status; every processed sample is known.
    known = pool.known_files()
    assert known.num_rows == 90 and known.column_names == [C.KEY, C.ETAG, C.CONTENT_HASH, C.STATUS]
    assert pc.sum(pc.equal(known.column(C.STATUS), C.STATUS_CORRUPT)).as_py() == 1
    assert pool.embedding_info() == {"model": MODEL, "dim": DIM}


def test_retried_commit_is_a_noop(pool_location, digits, caplog) -> None:
    pool = Datapool(*pool_location)
    rows = run_rows(digits, range(0, 30), picks=[3, 2])
    first = commit_run(pool, rows, "run-a")
    before = pool.read()
    caplog.set_level("INFO", logger="lightly_airflow.datapool")
    # The retried task read the pool before its first attempt committed: stale read_version, still a no-op.
    again = commit_run(pool, rows, "run-a", read_version=None)
    assert again.already_committed and again.version == first.version and again.tag == first.tag
    assert "already committed" in caplog.text
    assert pool.version() == first.version and pool.read().equals(before)
    assert len([h for h in pool.history() if h["run_id"]]) == 1


def test_concurrent_commits_lose_nothing(pool_location, digits) -> None:
    location = pool_location
    commit_run(Datapool(*location), run_rows(digits, range(0, 20), picks=[0]), "seed")
    a, b = Datapool(*location), Datapool(*location)
    read_a, read_b = a.version(), b.version()
    rows_a = run_rows(digits, range(20, 40), picks=[1, 2])
    rows_b = run_rows(digits, range(40, 60), picks=[3])
    commit_run(a, rows_a, "run-a", read_version=read_a)
    with pytest.raises(ConcurrentCommitError, match="run-a") as err:
        commit_run(b, rows_b, "run-b", read_version=read_b)
    assert err.value.read_version == read_b and err.value.current_version == read_b + 1
    assert b.committed_version("run-b") is None
    commit_run(b, rows_b, "run-b")  # re-read, (re-select), retry
    keys = set(Datapool(*location).read(columns=[C.KEY]).column(C.KEY).to_pylist())
    expected = set(rows_a.column(C.KEY).to_pylist()) | set(rows_b.column(C.KEY).to_pylist())
    assert expected <= keys and len(keys) == 60


def test_racing_writers_exactly_one_wins(pool_location, digits) -> None:
    commit_run(Datapool(*pool_location), run_rows(digits, range(0, 10), picks=[0]), "seed")
    version = Datapool(*pool_location).version()
    barrier = threading.Barrier(2)
    outcome: dict[str, object] = {}

    def write(run_id: str, start: int) -> None:
        pool = Datapool(*pool_location)
        rows = run_rows(digits, range(start, start + 15), picks=[1])
        barrier.wait()
        try:
            outcome[run_id] = commit_run(pool, rows, run_id, read_version=version)
        except ConcurrentCommitError as exc:
            outcome[run_id] = exc

    threads = [threading.Thread(target=write, args=(f"race-{i}", 100 + 20 * i)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [v for v in outcome.values() if isinstance(v, ConcurrentCommitError)]
    assert len(errors) == 1, outcome
    pool = Datapool(*pool_location)
    assert pool.version() == version + 1
    assert pool.read().num_rows == 25


def test_embedding_model_and_dimension_are_enforced(tmp_path, digits) -> None:
    pool = Datapool(tmp_path / "pool")
    commit_run(pool, run_rows(digits, range(0, 10), picks=[0]), "r1")
    rows = run_rows(digits, range(10, 20), picks=[0])
    with pytest.raises(EmbeddingMismatchError, match=r"digits-pixels.*other-model"):
        pool.commit(rows, run_id="r2", dag_id="curate", tag=None, config={}, counts={}, embedding_model="other-model",
                    embedding_dim=DIM, read_version=pool.version())
    with pytest.raises(EmbeddingMismatchError, match=r"dim 64.*dim 32"):
        pool.commit(rows, run_id="r2", dag_id="curate", tag=None, config={}, counts={}, embedding_model=MODEL,
                    embedding_dim=32, read_version=pool.version())
    fresh = Datapool(tmp_path / "other")
    with pytest.raises(EmbeddingMismatchError, match="dimension 32"):
        fresh.commit(rows, run_id="r2", dag_id="curate", tag=None, config={}, counts={}, embedding_model=MODEL,
                     embedding_dim=32, read_version=None)
    assert not fresh.exists() and pool.version() == 1


def test_tag_names(tmp_path, digits) -> None:
    pool = Datapool(tmp_path / "pool")
    commit_run(pool, run_rows(digits, range(0, 10), picks=[0]), "r1", tag="week-1")
    with pytest.raises(TagExistsError, match=r"week-1.*r1"):
        commit_run(pool, run_rows(digits, range(10, 20), picks=[0]), "r2", tag="week-1")
    with pytest.raises(DatapoolError, match="root tag"):
        commit_run(pool, run_rows(digits, range(10, 20), picks=[0]), "r2", tag=C.INITIAL_TAG)
    for bad in ("a/b", "a b ", " a", "-a", "a\tb", "a" * 129, "a'b"):
        with pytest.raises(DatapoolError, match="Invalid tag"):
            commit_run(pool, run_rows(digits, range(10, 20), picks=[0]), "r2", tag=bad)
    # Lightly's tag names (space ; = @ allowed there) are taken as they are
    commit_run(pool, run_rows(digits, range(10, 20), picks=[0]), "r2", tag="round 2;cam=front@v1")
    assert pool.history()[-1]["tag"] == "round 2;cam=front@v1"
    assert pool.read(tag="round 2;cam=front@v1", columns=[C.KEY]).num_rows == 1
    assert default_tag("scheduled__2026-01-01T00:00:00+00:00") == "scheduled__2026-01-01T00-00-00-00-00"
    assert pool.version() == 2


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.set_column(t.schema.get_field_index(C.PICK_RANK), C.PICK_RANK, pa.nulls(t.num_rows, pa.int64())), "pick_rank"),
        (lambda t: pa.concat_tables([t, t.slice(0, 1)]), "more than once"),
        (lambda t: t.append_column(C.RUN_ID, pa.array(["x"] * t.num_rows)), "sets itself"),
        (lambda t: t.drop_columns([C.EMBEDDING]), "embedding"),
        (lambda t: t.set_column(t.schema.get_field_index(C.STATUS), C.STATUS, pa.array(["weird"] * t.num_rows)), "weird"),
    ],
)
def test_bad_rows_are_named(tmp_path, digits, mutate, message) -> None:
    pool = Datapool(tmp_path / "pool")
    with pytest.raises(DatapoolError, match=message):
        commit_run(pool, mutate(run_rows(digits, range(0, 10), picks=[0, 1])), "r1")
    assert not pool.exists()


def test_type_change_of_a_column_is_a_clear_error(tmp_path, digits) -> None:
    pool = Datapool(tmp_path / "pool")
    commit_run(pool, run_rows(digits, range(0, 10), picks=[0]), "r1")
    rows = run_rows(digits, range(10, 20), picks=[0])
    col = C.lightly_metadata_column("brightness")
    rows = rows.set_column(rows.schema.get_field_index(col), col, pa.array(["bright"] * 10))
    with pytest.raises(DatapoolError, match=r"metadata.lightly.brightness.*string.*double"):
        commit_run(pool, rows, "r2")


def test_changed_file_latest_row_wins(tmp_path, digits) -> None:
    pool = Datapool(tmp_path / "pool")
    commit_run(pool, run_rows(digits, range(0, 10), picks=[2]), "r1")
    changed = run_rows(digits, [2, 11], picks=[0], etag_suffix="v2")
    commit_run(pool, changed, "r2")
    known = pool.known_files()
    assert known.num_rows == 11
    row = known.filter(pc.equal(known.column(C.KEY), changed.column(C.KEY)[0])).to_pylist()[0]
    assert row[C.ETAG] == changed.column(C.ETAG)[0].as_py()
    selected = pool.selected([C.KEY, C.ETAG, C.RUN_ID])
    assert selected.num_rows == 1 and selected.column(C.RUN_ID).to_pylist() == ["r2"]
    # Embeddings are reused only for a known (key, etag): content the pool embedded before.
    old = run_rows(digits, [2, 3]).select([C.KEY, C.ETAG])
    wanted = pa.table({C.KEY: old.column(C.KEY), C.ETAG: [old.column(C.ETAG)[0].as_py(), "another-etag"]})
    found = pool.embeddings_for(wanted)
    assert found.column(C.KEY).to_pylist() == [old.column(C.KEY)[0].as_py()]
    assert found.column(C.EMBEDDING)[0].values.to_numpy() == pytest.approx(digits[0][2])
    assert found.schema.field(C.EMBEDDING).type == pa.list_(pa.float32(), DIM)
    assert pool.embeddings_for(changed.select([C.KEY, C.ETAG])).num_rows == 2
    assert pool.embeddings_for(pa.table({C.KEY: ["nope"], C.ETAG: ["x"]})).num_rows == 0


def test_retention_defaults_and_appends_only_add_files(tmp_path, digits) -> None:
    pool = Datapool(tmp_path / "pool")
    commit_run(pool, run_rows(digits, range(0, 10), picks=[0]), "r1")
    table = DeltaTable(str(tmp_path / "pool"))
    config = table.metadata().configuration
    assert config["delta.enableExpiredLogCleanup"] == "false"
    assert config["delta.logRetentionDuration"] == config["delta.deletedFileRetentionDuration"] == "interval 36500 days"
    files_before = set(table.file_uris())
    commit_run(pool, run_rows(digits, range(10, 20), picks=[0]), "r2")
    files_after = set(DeltaTable(str(tmp_path / "pool")).file_uris())
    # The run added one file per partition (its selected and its other rows); no earlier file was touched.
    added = files_after - files_before
    assert files_before < files_after and len(added) == 2
    assert sorted(f.split("/")[-2] for f in added) == ["selected=false", "selected=true"]

    short = Datapool(tmp_path / "short", table_configuration={"delta.logRetentionDuration": "interval 30 days"})
    commit_run(short, run_rows(digits, range(0, 10), picks=[0]), "r1")
    assert DeltaTable(str(tmp_path / "short")).metadata().configuration["delta.logRetentionDuration"] == "interval 30 days"
    with pytest.raises(DatapoolError, match="delta"):
        Datapool(tmp_path / "x", table_configuration={"retention": "1"})


def test_secrets_stay_out_of_commit_metadata(tmp_path, digits) -> None:
    creds = StorageCredentials(access_key_id="AKIA", secret_access_key="s3cr3t-value")
    pool = Datapool(tmp_path / "pool", creds)
    assert "s3cr3t" not in repr(pool)
    pool.commit(run_rows(digits, range(0, 5), picks=[0]), run_id="r1", dag_id="curate", tag=None,
                config={"datasource": {"aws_secret_access_key": "s3cr3t-value", "bucket": "b"}}, counts={"new": 5},
                embedding_model=MODEL, embedding_dim=DIM, read_version=None)
    entry = pool.history()[-1]
    assert entry["config"] == {"datasource": {"aws_secret_access_key": "***", "bucket": "b"}}
    log_text = "".join(p.read_text() for p in (tmp_path / "pool" / "_delta_log").glob("*.json"))
    assert "s3cr3t" not in log_text and '"counts":{"new":5}' in log_text


def test_read_arguments_are_checked(tmp_path, digits) -> None:
    pool = Datapool(tmp_path / "pool")
    with pytest.raises(DatapoolError, match="No datapool"):
        pool.read()
    commit_run(pool, run_rows(digits, range(0, 5), picks=[0]), "r1")
    with pytest.raises(DatapoolError, match="at most one"):
        pool.read(version=1, run_id="r1")
    with pytest.raises(DatapoolError, match="versions 0..1"):
        pool.read(version=7)
    with pytest.raises(DatapoolError, match="has not committed"):
        pool.read(run_id="nope")
    with pytest.raises(DatapoolError, match="known tags"):
        pool.read(tag="nope")
    with pytest.raises(DatapoolError, match="Unknown column"):
        pool.read(columns=["nope"])


def test_reads_of_many_keys_keep_them_as_the_rows_stream_back(tmp_path, digits, monkeypatch) -> None:
    # An SQL IN list of ~30,000 keys crashed the process inside DataFusion (a segmentation fault, measured: 20,000
    # fine); a read of more than IN_LIST_MAX values keeps them batch by batch as the rows stream back instead.
    # embeddings_for of 30,000 known files (a process_all backfill reuses every embedding) returns each one.
    from lightly_airflow.datapool import reading, snapshot

    n = 30_000
    rows = run_rows(digits, [i % 1797 for i in range(n)], picks=[5, 7])
    keys = [f"many/{j:06d}.png" for j in range(n)]
    rows = rows.set_column(rows.schema.get_field_index(C.KEY), C.KEY, pa.array(keys))
    pool = Datapool(tmp_path / "pool")
    commit_run(pool, rows, "r1")
    found = pool.embeddings_for(pool.known_files())
    assert sorted(found.column(C.KEY).to_pylist()) == keys
    by_key = dict(zip(found.column(C.KEY).to_pylist(), found.column(C.EMBEDDING).to_pylist(), strict=True))
    assert by_key[keys[1797 + 3]] == pytest.approx(digits[0][3])
    # Both ways (an IN list up to IN_LIST_MAX values, kept as they stream above) give the same rows, with a
    # WHERE of the caller's and values the pool does not have; the column must be selected, no order.
    snap = pool.snapshot()
    wanted = [keys[5], keys[7], keys[9], "many/none.png", keys[5]]
    got = {}
    for most in (1_000, 2):
        monkeypatch.setattr(reading, "IN_LIST_MAX", most)
        monkeypatch.setattr(snapshot, "IN_LIST_MAX", most)
        got[most] = (snap.select([C.KEY, C.SELECTED], "", values_in=(C.KEY, wanted)).sort_by(C.KEY),
                     snap.select([C.KEY], f"WHERE {reading.quote_ident(C.SELECTED)}", values_in=(C.KEY, wanted)))
    assert got[2][0].equals(got[1_000][0]) and got[2][0].column(C.KEY).to_pylist() == [keys[5], keys[7], keys[9]]
    assert got[2][1].equals(got[1_000][1]) and sorted(got[2][1].column(C.KEY).to_pylist()) == [keys[5], keys[7]]
    with pytest.raises(ValueError, match="select that column"):
        snap.select([C.ETAG], "", values_in=(C.KEY, wanted))
    with pytest.raises(ValueError, match="at most 2"):
        reading.in_list(C.KEY, wanted)

"""A shard task's staging file cut short (a store or copy that stopped half-way, a file emptied by hand): the
select task names the file and the task to run again instead of a bare "Parquet magic bytes not found", commits
nothing, and once that task ran again (a cleared task, as Airflow retries it) the run commits what an untouched
run commits: every file once, the same statuses, embeddings and picks."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pytest

from lightly_airflow import columns as C
from lightly_airflow import staging
from lightly_airflow.demo import Batch, add_batch

from .runs import prepare

SELECTION = {"n_samples": 4, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
COLUMNS = [C.KEY, C.STATUS, C.STATUS_REASON, C.SELECTED, C.PICK_RANK, C.EMBEDDING]


def _select(pool: Path, manifests: list[str]) -> object:
    from lightly_airflow.pipeline import select_and_commit

    return select_and_commit(datapool_uri=f"file://{pool}", run_id="r1", dag_id="t", manifests=manifests,
                             selection_config=SELECTION)


def _pool_rows(pool: Path) -> object:
    from lightly_airflow.datapool import Datapool

    return Datapool(f"file://{pool}").read(columns=COLUMNS).sort_by(C.KEY)


def _cut(uri: str) -> Path:
    path = Path(uri.removeprefix("file://"))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.fixture(scope="module")
def untouched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("untouched")
    add_batch(root / "images", Batch("few", (0, 12), ()))
    _select(root / "pool", prepare(root / "images", root / "pool", "r1", SELECTION))
    return root / "images", _pool_rows(root / "pool")


def _embed(source: Path, pool: Path, manifest: str) -> None:
    from lightly_airflow.embedding import embed_shard

    embed_shard(manifest, device="cpu", num_workers=1)


def _metadata(source: Path, pool: Path, manifest: str) -> None:
    from lightly_airflow.metadata import compute_metadata_shard

    compute_metadata_shard(manifest)


def _predictions(source: Path, pool: Path, manifest: str) -> None:
    from lightly_airflow.predictions import load_predictions_shard

    load_predictions_shard(manifest, lightly_uri=f"file://{source}")


def _all(source: Path, pool: Path, manifest: str) -> None:
    assert prepare(source, pool, "r1", SELECTION) == [manifest]  # the list task's retry: the same manifests


@pytest.mark.parametrize(("damaged", "task", "rerun"), [
    (lambda m: staging.sibling_uri(m, staging.EMBEDDINGS), "embed task of this shard", _embed),
    (lambda m: staging.sibling_uri(m, staging.METADATA), "metadata task of this shard", _metadata),
    (lambda m: staging.sibling_uri(m, staging.PREDICTIONS), "predictions task of this shard", _predictions),
    (lambda m: staging.errors_uri(m, staging.METADATA), "metadata task of this shard", _metadata),
    (lambda m: m, "list task of this run", _all),
], ids=["embeddings", "metadata", "predictions", "metadata-errors", "manifest"])
def test_a_damaged_staging_file_is_named_and_a_rerun_of_its_task_commits_the_untouched_result(
        tmp_path: Path, untouched: tuple[Path, object], damaged, task: str, rerun) -> None:
    from lightly_airflow.datapool import Datapool

    source, expected = untouched
    pool = tmp_path / "pool"
    manifests = prepare(source, pool, "r1", SELECTION)
    path = _cut(damaged(manifests[0]))
    with pytest.raises(staging.DamagedStagingFile) as err:
        _select(pool, manifests)
    assert f"Staging file file://{path} is damaged" in str(err.value) and f"clear the {task}" in str(err.value)
    assert Datapool(f"file://{pool}").version() is None  # nothing committed
    rerun(source, pool, manifests[0])  # only the task the message names runs again (cleared in Airflow)
    summary = _select(pool, manifests)
    assert summary.version == 1 and summary.problems == 0
    rows = _pool_rows(pool)
    keys = rows.column(C.KEY).to_pylist()
    assert len(keys) == len(set(keys)) == 12 and pc.all(pc.equal(rows.column(C.STATUS), C.STATUS_OK)).as_py()
    assert rows.equals(expected)


def test_a_damaged_or_missing_reuse_file_names_itself_and_the_list_task(tmp_path: Path) -> None:
    """The list task writes the pool's embeddings of unchanged files (``reuse-embeddings.parquet``) for the embed
    tasks; cut short or gone, the embed task named neither the file nor the task (pyarrow's bare error)."""
    from lightly_airflow.embedding import embed_shard

    add_batch(tmp_path / "images", Batch("few", (0, 6), ()))
    manifest = prepare(tmp_path / "images", tmp_path / "pool", "r1", SELECTION)[0]
    reuse = tmp_path / "pool" / "reuse.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({C.KEY: ["x"] * 200, C.ETAG: ["e"] * 200}), reuse)
    _cut(str(reuse))
    with pytest.raises(staging.DamagedStagingFile, match=r"reuse\.parquet is damaged.*clear the list task"):
        embed_shard(manifest, device="cpu", num_workers=1, reuse_uri=str(reuse))
    reuse.unlink()
    with pytest.raises(FileNotFoundError, match=r"reuse\.parquet does not exist: the list task of this run writes it"):
        embed_shard(manifest, device="cpu", num_workers=1, reuse_uri=str(reuse))

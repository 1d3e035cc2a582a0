"""ListNewFilesOperator: a connection problem fails the first task at once (no retry), naming the fix."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lightly_airflow.operators.list_files import ListNewFilesOperator


def test_an_undefined_connection_fails_without_retry(tmp_path, monkeypatch) -> None:
    (tmp_path / "ds").mkdir()
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_CONN", raising=False)
    op = ListNewFilesOperator(task_id="list_new_files", datasource_uri=str(tmp_path / "ds"),
                              datapool_uri=str(tmp_path / "pool"), datasource_conn_id="no_such_conn")
    with pytest.raises(AirflowFailException, match=r"'no_such_conn' is not defined.*AIRFLOW_CONN_NO_SUCH_CONN"):
        op.execute({"run_id": "manual__1"})


def _csv_folder(root, dim: int = 32):
    """A datasource with two images and ``.lightly/embeddings/emb.csv`` of ``dim`` embedding columns."""
    import csv

    from PIL import Image

    src = root / "src"
    (src / ".lightly" / "embeddings").mkdir(parents=True)
    with (src / ".lightly" / "embeddings" / "emb.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filenames", *(f"embedding_{i}" for i in range(dim)), "labels"])
        for i in range(2):
            Image.new("RGB", (8, 8), (i * 100, 0, 0)).save(src / f"img{i}.png")
            writer.writerow([f"img{i}.png", *(["0.5"] * dim), "0"])
    return src


class _TI:
    def __init__(self) -> None:
        self.pushed: dict = {}

    def xcom_push(self, key, value) -> None:
        self.pushed[key] = value


DIVERSE = {"n_samples": 1, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def test_num_ftrs_other_than_the_embeddings_csv_fails_the_list_task_before_any_listing(tmp_path) -> None:
    """``lightly_config.model.num_ftrs`` 64 with a 32-column CSV was refused only by the embed step, after the listing,
    the metadata and the predictions; the list task refuses it now, naming the file, the key and the fix."""
    src = _csv_folder(tmp_path)
    pool = tmp_path / "pool"
    op = ListNewFilesOperator(task_id="list_new_files", datasource_uri=str(src), datapool_uri=str(pool),
                              selection_config=DIVERSE, worker_config={"embeddings": "emb.csv"},
                              lightly_config={"model": {"num_ftrs": 64}})
    ti = _TI()
    with pytest.raises(AirflowFailException) as info:
        op.execute({"run_id": "manual__1", "ti": ti})
    text = str(info.value)
    assert "lightly_config.model.num_ftrs" in text and "is 64" in text and "has 32 embedding columns" in text
    assert "emb.csv" in text and "Fix: remove model.num_ftrs from lightly_config (or set it to 32)" in text
    assert ti.pushed == {} and not pool.exists()  # nothing listed, no manifest written

    # The CSV's own dimension (or none asked) lists as before.
    for lightly_config in ({"model": {"num_ftrs": 32}}, {}):
        ti = _TI()
        op = ListNewFilesOperator(task_id="list_new_files", datasource_uri=str(src), datapool_uri=str(pool),
                                  selection_config=DIVERSE, worker_config={"embeddings": "emb.csv"},
                                  lightly_config=lightly_config)
        manifests = op.execute({"run_id": f"manual__{len(lightly_config)}", "ti": ti})
        assert len(manifests) == 1 and ti.pushed["counts"]["new"] == 2
        assert ti.pushed["embeddings_csv"].endswith("emb.csv")


def test_num_ftrs_other_than_the_embeddings_csv_fails_the_sensor_before_it_waits(tmp_path) -> None:
    """The DAG's first task (the sensor) checks it too, before it waits (no new file would ever end that wait
    with the run going on to fail in the list task)."""
    from lightly_airflow.sensors.new_files import NewFilesSensor

    src = _csv_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    sensor = NewFilesSensor(task_id="wait_for_new_files", datasource_uri=str(src), datapool_uri=str(tmp_path / "pool"),
                            selection_config=DIVERSE, worker_config={"embeddings": "emb.csv"},
                            lightly_config={"model": {"num_ftrs": 64}}, deferrable=False, timeout=1, poke_interval=1)
    with pytest.raises(AirflowFailException, match=r"Parameter 'lightly_config'.*is 64.*has 32 embedding columns"):
        sensor.execute({"run_id": "manual__1"})


def _list_once_counting(tmp_path, monkeypatch, module, name, worker_config, lightly_config):  # type: ignore[no-untyped-def]
    """Run the list task on a folder with an embeddings CSV, counting the calls of ``module.name`` (their first
    arguments): (the calls, the task's XComs, the folder)."""
    calls: list[object] = []
    real = getattr(module, name)

    def counting(first, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(first)
        return real(first, *args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    src = _csv_folder(tmp_path)
    ti = _TI()
    op = ListNewFilesOperator(task_id="list_new_files", datasource_uri=str(src), datapool_uri=str(tmp_path / "pool"),
                              selection_config=DIVERSE, worker_config=worker_config, lightly_config=lightly_config)
    assert len(op.execute({"run_id": "manual__1", "ti": ti})) == 1
    return calls, ti.pushed, src


def test_the_list_task_reads_the_embeddings_csv_header_once(tmp_path, monkeypatch) -> None:
    """``validate_params`` resolves ``worker_config.embeddings`` and reads the CSV's header from the store; the list
    task used to resolve and read it a second time for its ``embeddings_csv`` XCom. It reuses the first now."""
    import lightly_airflow.embedding.custom as custom

    reads, pushed, src = _list_once_counting(tmp_path, monkeypatch, custom, "check_embeddings_header",
                                             {"embeddings": "emb.csv"}, {"model": {"num_ftrs": 32}})
    assert pushed["embeddings_csv"] == str(src / ".lightly" / "embeddings" / "emb.csv")
    assert reads == [pushed["embeddings_csv"]]  # one read of its header


def test_the_list_task_parses_the_lightly_config_once(tmp_path, monkeypatch) -> None:
    """``validate_params`` turns the Lightly configs into the embed step's options; the list task used to parse
    ``lightly_config`` a second time for its ``embed_overrides`` XCom (its notes logged twice). It reuses them."""
    import lightly_airflow.config as config

    parsed, pushed, _ = _list_once_counting(tmp_path, monkeypatch, config, "parse_lightly_config",
                                            {"embeddings": "emb.csv", "num_threads": 3},
                                            {"model": {"num_ftrs": 32}, "loader": {"batch_size": 7}})
    assert len(parsed) == 1
    assert pushed["embed_overrides"]["batch_size"] == 7
    assert pushed["embed_overrides"]["loader"] == "threads" and pushed["embed_overrides"]["num_workers"] == 3

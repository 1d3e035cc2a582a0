"""The ``select`` CLI's loading path: embeddings streamed from Parquet into one float32 matrix (the same values
as the library's reader, nulls and NaN included), and no pandas import on the way."""

import json
import subprocess
import sys
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from selection_data import clustered

from lightly_airflow.selection import select
from lightly_airflow.selection.arrays import (
    embedding_rows,
    embedding_width,
    from_numpy,
    read_embedding_rows,
    string_array,
    to_numpy,
)


def _select_cli_without(tmp_path, out, module: str) -> None:
    """``lightly-airflow select`` on ``tmp_path/s.parquet`` and ``c.json`` in a child process that must never
    import ``module``."""
    code = ("import sys; from lightly_airflow.cli import main; rc = main(sys.argv[1:]); "
            f"assert {module!r} not in sys.modules, '{module} imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, "select", "--samples", str(tmp_path / "s.parquet"), "--config",
                           str(tmp_path / "c.json"), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr

def _table(list_type: pa.DataType, n: int = 300, d: int = 12, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = clustered(n, d=d, seed=seed) * rng.uniform(0.5, 2.0, size=(n, 1)).astype(np.float32)  # not unit
    rows: list = [list(map(float, r)) for r in x]
    for i in range(0, 40):  # the first batches hold only nulls (the width is learnt later)
        rows[i] = None
    rows[77] = [float("nan")] * d
    rows[150] = None
    rows[151][3] = float("nan")
    emb = pa.array(rows, type=list_type)
    return pa.table({"key": [f"k{i:04d}" for i in range(n)], "embedding": emb, "score": rng.random(n)})


class _BusyFor(threading.Event):
    """An Event that is set for its first ``n`` reads of ``is_set`` (a caller busy for ``n`` batches)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.asked = n, 0

    def is_set(self) -> bool:
        self.asked += 1
        return self.asked <= self.n


@pytest.mark.parametrize("list_type", [pa.list_(pa.float32()), pa.list_(pa.float32(), 12), pa.list_(pa.float64()),
                                       pa.large_list(pa.float32())])
@pytest.mark.parametrize("batch_rows", [7, 40, 1000])
@pytest.mark.parametrize("busy_batches", [0, 3, 10**6])
def test_streamed_embeddings_equal_the_table_reader(tmp_path, list_type, batch_rows, busy_batches):
    # While the caller is busy (its first busy_batches batches) batches are copied as they come and normalised
    # later: runs of rows between the batches with nulls (which embedding_rows normalises on the way), and the
    # pipelined normalisation after.
    t = _table(list_type)
    pq.write_table(t, tmp_path / "s.parquet", row_group_size=64)
    busy = _BusyFor(busy_batches) if busy_batches else None
    got = read_embedding_rows(str(tmp_path / "s.parquet"), batch_rows=batch_rows, caller_busy=busy)
    assert busy is None or busy.asked >= 1
    assert got is not None
    x, present = got.x, got.present
    ref_x, ref_present = embedding_rows(t)
    assert x.dtype == np.float32 and x.flags.c_contiguous and x.shape == ref_x.shape
    assert np.array_equal(present, ref_present) and not present[:40].any() and not present[[77, 150, 151]].any()
    assert np.array_equal(x, ref_x)  # bit for bit


@pytest.mark.parametrize("busy_batches", [0, 3, 10**6])
@pytest.mark.parametrize("list_type", [pa.list_(pa.float32(), 12), pa.list_(pa.float64())])
def test_the_streamed_read_s_squared_norms_are_the_state_s(tmp_path, list_type, busy_batches):
    # sqnorms=True: the read computes each row's canonical squared norm as it normalises it (on the pipeline's
    # threads, and after a busy caller for the rows copied meanwhile): the bits the DIVERSITY state computes
    # itself, which then takes them (same picks). A batch with nulls (embedding_rows) gives none.
    from lightly_airflow.selection import engine, kernels

    rng = np.random.default_rng(4)
    x = clustered(500, d=12, seed=4) * rng.uniform(0.5, 2.0, size=(500, 1)).astype(np.float32)
    x[9] = np.nan  # (a row of NaN: zeros, not present)
    t = pa.table({"key": [f"k{i:04d}" for i in range(500)], "embedding": pa.array(list(map(list, x)), list_type)})
    pq.write_table(t, tmp_path / "s.parquet", row_group_size=64)
    busy = _BusyFor(busy_batches) if busy_batches else None
    got = read_embedding_rows(str(tmp_path / "s.parquet"), batch_rows=40, caller_busy=busy, sqnorms=True)
    assert got is not None and got.sqnorms is not None
    assert np.array_equal(got.sqnorms, kernels.canonical_sqnorms_np(got.x)) and got.sqnorms[9] == 0.0
    assert read_embedding_rows(str(tmp_path / "s.parquet"), batch_rows=40).sqnorms is None  # (not asked)
    config = {"n_samples": 60, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    states = []
    made = kernels.NumpyDenseState.__init__

    def record(self, *a, **k):  # type: ignore[no-untyped-def]
        made(self, *a, **k)
        states.append((self, k.get("sqnorms")))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kernels.NumpyDenseState, "__init__", record)
        keys = pa.table({"key": t.column("key")})
        with_norms = engine.select(keys, config, embeddings=got).keys
        without = engine.select(keys, config, embeddings=(got.x, got.present)).keys
    assert with_norms == without
    assert states[0][1] is not None and states[1][1] is None
    assert np.array_equal(states[0][0].sqn, states[1][0].sqn)
    nulls = t.set_column(1, "embedding", pa.array([None, *map(list, x[1:])], list_type))
    pq.write_table(nulls, tmp_path / "n.parquet", row_group_size=64)
    assert read_embedding_rows(str(tmp_path / "n.parquet"), batch_rows=40, sqnorms=True).sqnorms is None


def test_different_widths_are_an_error(tmp_path):
    t = pa.table({"key": ["a", "b"], "embedding": pa.array([[1.0, 0.0], [1.0, 0.0, 0.0]], pa.list_(pa.float32()))})
    pq.write_table(t, tmp_path / "s.parquet")
    with pytest.raises(ValueError, match="different lengths"):
        read_embedding_rows(str(tmp_path / "s.parquet"), batch_rows=1)


def test_overlapping_reads_give_back_the_callers_memory_pool(tmp_path):
    # The CLI reads the preselected file on a second thread while the candidates are read: each read switches
    # Arrow to the system allocator; the caller's pool comes back when the last one ends, not the first.
    from lightly_airflow.selection.arrays import _system_pool

    before = pa.default_memory_pool()
    a, b = _system_pool(), _system_pool()
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    assert pa.default_memory_pool().backend_name == "system"
    b.__exit__(None, None, None)
    assert pa.default_memory_pool().backend_name == before.backend_name != "system"


def test_a_bad_preselected_file_read_beside_the_candidates_names_itself(tmp_path, capsys):
    pq.write_table(_table(pa.list_(pa.float32())), tmp_path / "s.parquet")
    bad = pa.table({"key": ["a", "b"], "embedding": pa.array([[1.0, 0.0], [1.0, 0.0, 0.0]], pa.list_(pa.float32()))})
    pq.write_table(bad, tmp_path / "p.parquet")
    (tmp_path / "c.json").write_text(json.dumps({"n_samples": 5, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}))
    from lightly_airflow.cli import main

    rc = main(["select", "--samples", str(tmp_path / "s.parquet"), "--config", str(tmp_path / "c.json"),
               "--preselected", str(tmp_path / "p.parquet"), "--out", str(tmp_path / "o.parquet")])
    assert rc != 0 and not (tmp_path / "o.parquet").exists()
    assert "p.parquet: the preselected samples' embeddings have different lengths" in capsys.readouterr().err


def test_a_stopped_read_returns_nothing(tmp_path):
    pq.write_table(_table(pa.list_(pa.float32())), tmp_path / "s.parquet")
    stop = threading.Event()
    stop.set()
    assert read_embedding_rows(str(tmp_path / "s.parquet"), batch_rows=7, caller_busy=_BusyFor(5), stop=stop) is None


def test_config_errors_come_before_the_early_reads_errors(tmp_path, capsys):
    # The candidates' embeddings are read on a thread while the config is validated; a bad config is reported
    # (and the read stopped), not the bad file the read would have found.
    bad = pa.table({"key": ["a", "b"], "embedding": pa.array([[1.0, 0.0], [1.0, 0.0, 0.0]], pa.list_(pa.float32()))})
    pq.write_table(bad, tmp_path / "s.parquet")
    (tmp_path / "c.json").write_text(json.dumps({"n_samples": 5, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY", "strenght": 2}}]}))
    from lightly_airflow.cli import main

    args = ["select", "--samples", str(tmp_path / "s.parquet"), "--config", str(tmp_path / "c.json"),
            "--out", str(tmp_path / "o.parquet")]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "strenght" in err and "different lengths" not in err
    (tmp_path / "c.json").write_text(json.dumps({"n_samples": 5, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}))
    assert main(args) != 0
    assert "s.parquet: the candidates' embeddings have different lengths" in capsys.readouterr().err


def test_a_config_needing_no_candidate_embeddings_drops_the_early_read(tmp_path, capsys):
    # The text names EMBEDDINGS (the read starts) but the input is an object task's: the validated config needs
    # no candidate embeddings, the read is stopped and its result (here: an error) never surfaces.
    bad = pa.table({"key": ["a", "b"], "embedding": pa.array([[1.0, 0.0], [1.0, 0.0, 0.0]], pa.list_(pa.float32()))})
    pq.write_table(bad, tmp_path / "s.parquet")
    (tmp_path / "c.json").write_text(json.dumps({"n_samples": 1, "strategies": [
        {"input": {"type": "EMBEDDINGS", "task": "det"}, "strategy": {"type": "DIVERSITY"}}]}))
    from lightly_airflow.cli import main

    assert main(["select", "--samples", str(tmp_path / "s.parquet"), "--config", str(tmp_path / "c.json"),
                 "--out", str(tmp_path / "o.parquet")]) != 0
    err = capsys.readouterr().err
    assert "no objects of task 'det'" in err and "different lengths" not in err


def test_file_without_embedding_column(tmp_path):
    pq.write_table(pa.table({"key": ["a"]}), tmp_path / "s.parquet")
    assert read_embedding_rows(str(tmp_path / "s.parquet")) is None


def test_arrow_numpy_helpers_round_trip():
    a = np.arange(10, dtype=np.float64)
    mask = a % 3 == 0
    arr = from_numpy(a, mask=mask)
    assert arr.to_pylist() == [None if m else float(v) for v, m in zip(a, mask)]
    assert np.array_equal(to_numpy(from_numpy(np.arange(5, dtype=np.int64)).slice(1, 3)), [1, 2, 3])
    assert to_numpy(pa.array([True, False, True, True, False, False, True, False, True]).slice(2)).tolist() == [
        True, True, False, False, True, False, True]
    f = pa.array([1.5, None, 2.0, None], pa.float64()).slice(1)
    assert np.array_equal(to_numpy(f), [np.nan, 2.0, np.nan], equal_nan=True)
    assert string_array(["a", "bé", ""]).to_pylist() == ["a", "bé", ""]
    assert string_array(["a"]).type == pa.string()


def test_cli_streams_embeddings_and_matches_the_library(tmp_path):
    # DIVERSITY x WEIGHTS through the CLI (embedding column streamed, table read without it) equals select()
    # on the whole table; the process never imports pandas (1.8 s: pyarrow's to_numpy/pa.array import it).
    t = _table(pa.list_(pa.float32()), n=500, d=8, seed=3)
    cfg = {"n_samples": 60, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY", "strength": 1.0}},
        {"input": {"type": "METADATA", "key": "score"}, "strategy": {"type": "WEIGHTS"}}]}
    t = t.rename_columns(["key", "embedding", "metadata.score"])
    pq.write_table(t, tmp_path / "s.parquet", row_group_size=100)
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    out = tmp_path / "o.parquet"
    _select_cli_without(tmp_path, out, "pandas")
    got = pq.read_table(out)
    ref = select(t, cfg)
    assert got.column("key").to_pylist() == ref.keys
    assert got.column("selection.score").to_pylist() == ref.pick_details.column("selection.score").to_pylist()
    metrics = json.loads(got.schema.metadata[b"lightly.selection_metrics"])
    assert metrics["missing_inputs"] == ref.metrics["missing_inputs"] and metrics["missing_inputs"]["embedding"] == 43


@pytest.mark.parametrize("list_type", [pa.list_(pa.float32(), 12), pa.list_(pa.float32()), pa.large_list(pa.float64())])
def test_a_select_process_never_imports_pyarrow_compute(tmp_path, list_type):
    # Embeddings straight from the list columns' buffers (flatten() imports pyarrow.compute, 43 ms of a select
    # process), the picks' keys from the string buffers (take()) and the output's key column built as string
    # (a cast from large_string): the picks and keys equal select()'s on the whole table.
    x = clustered(300, d=12, seed=9)
    t = pa.table({"key": [f"k{i:04d}" for i in range(300)], "embedding": pa.array(list(map(list, x)), list_type)})
    cfg = {"n_samples": 40, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    pq.write_table(t, tmp_path / "s.parquet", row_group_size=70)
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    out = tmp_path / "o.parquet"
    _select_cli_without(tmp_path, out, "pyarrow.compute")
    got = pq.read_table(out)
    assert got.schema.field("key").type == pa.string()
    assert got.column("key").to_pylist() == select(t, cfg).keys


@pytest.mark.parametrize("weights", [False, True])
def test_small_diversity_select_never_imports_numba(tmp_path, monkeypatch, weights):
    # A DIVERSITY selection (with WEIGHTS too: the numpy state's own heap) of a few thousand rows runs on
    # numpy/BLAS only: importing numba and loading its cached kernels (~1 CPU-second per process) would cost
    # more than the selection. Picks equal select()'s.
    from lightly_airflow.selection import kernels

    t = _table(pa.list_(pa.float32()), n=400, d=16, seed=5).rename_columns(["key", "embedding", "metadata.score"])
    cfg = {"n_samples": 50, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    if weights:
        cfg["strategies"].append({"input": {"type": "METADATA", "key": "score"}, "strategy": {"type": "WEIGHTS"}})
    pq.write_table(t, tmp_path / "s.parquet")
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    out = tmp_path / "o.parquet"
    _select_cli_without(tmp_path, out, "numba")
    got = pq.read_table(out)
    keys = got.column("key").to_pylist()
    assert keys == select(t, cfg).keys
    # and the compiled state (what larger inputs use) picks the same rows with the same values
    monkeypatch.setattr(kernels, "NUMPY_MAX_ROWS", -1)
    monkeypatch.setattr(kernels, "NUMPY_MAX_ROWS_HEAP", -1)
    monkeypatch.setattr(kernels, "NUMPY_MAX_WORK", -1)  # (not by candidates x picks either)
    ref = select(t, cfg)
    assert ref.keys == keys
    assert got.column("selection.distance").to_pylist() == ref.pick_details.column("selection.distance").to_pylist()


def test_kernels_import_numba_only_when_one_runs():
    code = ("import sys, numpy as np; from lightly_airflow.selection import kernels; "
            "assert 'numba' not in sys.modules; "
            "v = kernels.canonical_sqnorms(np.ones((3, 4), dtype=np.float32)); "
            "assert 'numba' in sys.modules and v.tolist() == [4.0] * 3; "
            "from lightly_airflow.jit import numba; assert numba is sys.modules['numba']")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("busy", [False, True])
def test_wide_list_columns_are_read_in_batches_as_small_as_fixed_size_ones(tmp_path, monkeypatch, busy):
    # The embedding runner writes list<float>: its batches are sized by the width in the footer, as a fixed-size
    # list's by its type (a guessed width of 64 read 20 MiB batches at D = 1,280: +62 MiB peak of a select).
    x = clustered(700, d=1280, seed=3)
    sizes: dict[str, list[int]] = {}
    iter_batches = pq.ParquetFile.iter_batches

    def recording(self, batch_size=65536, **kw):
        sizes.setdefault(name, []).append(batch_size)
        return iter_batches(self, batch_size=batch_size, **kw)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", recording)
    got = {}
    for name, list_type in (("fixed", pa.list_(pa.float32(), 1280)), ("list", pa.list_(pa.float32()))):
        emb = pa.ListArray.from_arrays(pa.array(np.arange(0, 1280 * 701, 1280), pa.int32()), pa.array(x.ravel()))
        pq.write_table(pa.table({"key": [f"k{i}" for i in range(700)], "embedding": emb.cast(list_type)}),
                       tmp_path / f"{name}.parquet")
        out = read_embedding_rows(str(tmp_path / f"{name}.parquet"), caller_busy=_BusyFor(10**6) if busy else None)
        assert out is not None
        got[name] = out[0]
    assert sizes["list"] == sizes["fixed"] and len(sizes["list"]) == 1
    assert sizes["list"][0] * 1280 * 4 <= 2**20  # (at most 1 MiB of float32 a batch)
    assert np.array_equal(got["list"], got["fixed"])


@pytest.mark.parametrize("list_type", [pa.list_(pa.float32(), 6), pa.list_(pa.float32()), pa.large_list(pa.float64())])
def test_embedding_width_from_the_footer(tmp_path, list_type):
    t = pa.table({"key": ["a", "b", "c"], "embedding": pa.array([[0.5] * 6] * 3, list_type)})
    pq.write_table(t, tmp_path / "s.parquet")
    assert embedding_width(pq.ParquetFile(tmp_path / "s.parquet")) == 6
    pq.write_table(pa.table({"key": ["a"]}), tmp_path / "k.parquet")
    assert embedding_width(pq.ParquetFile(tmp_path / "k.parquet")) is None
    pq.write_table(t.slice(0, 0), tmp_path / "e.parquet")
    assert embedding_width(pq.ParquetFile(tmp_path / "e.parquet")) in (None, 6)



@pytest.mark.parametrize("empty", [None, []])
def test_embedding_width_of_a_list_column_with_null_rows(tmp_path, empty):
    # Half the rows without an embedding (null or empty): each is one null value in the footer's counts, so
    # values per row would say 640; the width is that of the rows that have one (batch sizes and routing use it).
    rows = [empty if i % 2 else [0.25] * 1280 for i in range(1000)]
    pq.write_table(pa.table({"embedding": pa.array(rows, pa.list_(pa.float32()))}), tmp_path / "n.parquet")
    assert embedding_width(pq.ParquetFile(tmp_path / "n.parquet")) == 1280
    pq.write_table(pa.table({"embedding": pa.array([None] * 3, pa.list_(pa.float32()))}), tmp_path / "z.parquet")
    assert embedding_width(pq.ParquetFile(tmp_path / "z.parquet")) is None

# Limits of the numpy state low enough that a few hundred rows reach the compiled one (in a child process too)
_ROUTING = {"NUMPY_MAX_ROWS": 100, "NUMPY_MAX_ROWS_HEAP": 150, "NUMPY_MAX_WORK": 200 * 30}
_ROUTING_CHILD = "".join(f"kernels.{name} = {value}; " for name, value in _ROUTING.items())


@pytest.mark.parametrize("n", [80, 120, 200])
@pytest.mark.parametrize("k", [10, 40])
@pytest.mark.parametrize("weights", [False, True])
def test_the_compiled_state_guess_is_the_state_select_builds(monkeypatch, n, k, weights):
    # The select command loads numba beside the read when expects_compiled_state says the compiled state will
    # take the embeddings: the guess from the counts is the state select() then builds (no THRESHOLD here).
    from lightly_airflow.config import parse_selection_config
    from lightly_airflow.selection import kernels, objectives
    from lightly_airflow.selection.engine import expects_compiled_state

    for name, value in _ROUTING.items():
        monkeypatch.setattr(kernels, name, value)
    built = []
    real = objectives.farthest_point_state

    def spy(*a, **kw):
        built.append(real(*a, **kw))
        return built[-1]

    monkeypatch.setattr(objectives, "farthest_point_state", spy)
    x = clustered(n, d=8, seed=n)
    t = pa.table({"key": [f"k{i}" for i in range(n)], "embedding": pa.array(list(map(list, x)), pa.list_(pa.float32())),
                  "metadata.score": np.linspace(0.1, 1.0, n)})
    cfg = {"n_samples": k, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    if weights:
        cfg["strategies"].append({"input": {"type": "METADATA", "key": "score"}, "strategy": {"type": "WEIGHTS"}})
    guess = expects_compiled_state(parse_selection_config(cfg), n, 8, 0)
    select(t, cfg)
    assert len(built) == 1 and isinstance(built[0], kernels.FarthestPointState) == guess
    assert guess == (n > (150 if weights else 100) and (weights or n * k > 200 * 30))


def test_no_diversity_expects_no_compiled_state():
    from lightly_airflow.config import parse_selection_config
    from lightly_airflow.selection.engine import expects_compiled_state

    typical = {"n_samples": 10, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "TYPICALITY"}}]}
    assert not expects_compiled_state(parse_selection_config(typical), 10**6, 64, 0)
    late = {"n_samples": 10, "strategies": [  # DIVERSITY only from 5 preselected samples on
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}, "when": {"min_preselected": 5}},
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "TYPICALITY"}}]}
    assert not expects_compiled_state(parse_selection_config(late), 10**6, 64, 0)
    assert expects_compiled_state(parse_selection_config(late), 10**6, 64, 5)


@pytest.mark.parametrize("k", [10, 40])
def test_select_loads_numba_beside_the_read_when_the_compiled_state_takes_the_embeddings(tmp_path, k):
    # In a child process with the routing limits above: with k = 40 (compiled state) numba's first kernel load
    # runs before the state is built, while the candidates' read may still run (warm_compiled_state called
    # once, from the select command); with k = 10 (numpy state) it never runs and numba is never imported.
    # The picks equal select()'s either way.
    n = 200
    x = clustered(n, d=8, seed=4)
    t = pa.table({"key": [f"k{i:03d}" for i in range(n)], "embedding": pa.array(list(map(list, x)), pa.list_(pa.float32()))})
    cfg = {"n_samples": k, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    pq.write_table(t, tmp_path / "s.parquet", row_group_size=50)
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    out = tmp_path / "o.parquet"
    code = f"""
import sys
from lightly_airflow.selection import kernels
from lightly_airflow.cli import main
{_ROUTING_CHILD}
calls = []
warm, init = kernels.warm_compiled_state, kernels.FarthestPointState.__init__
def counted():
    calls.append(('numba' in sys.modules, 'warm'))
    warm()
def built(self, *a, **kw):
    calls.append(('numba' in sys.modules, 'state'))
    init(self, *a, **kw)
kernels.warm_compiled_state = counted
kernels.FarthestPointState.__init__ = built
rc = main(sys.argv[1:])
print(calls, 'numba' in sys.modules)
sys.exit(rc)
"""
    proc = subprocess.run([sys.executable, "-c", code, "select", "--samples", str(tmp_path / "s.parquet"), "--config",
                           str(tmp_path / "c.json"), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    if k == 40:
        assert proc.stdout.strip() == "[(False, 'warm'), (True, 'state')] True"
    else:
        assert proc.stdout.strip() == "[] False"
    assert pq.read_table(out).column("key").to_pylist() == select(t, cfg).keys



def test_select_reads_a_config_saved_by_windows_tools(tmp_path, capsys):
    # PowerShell 5's ``>`` writes UTF-16 with a BOM: read as the DAG reads .lightly/ files; another encoding is
    # an error naming --config and the fix, not a traceback.
    from lightly_airflow.cli import main

    pq.write_table(_table(pa.list_(pa.float32())), tmp_path / "s.parquet")
    config = {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    (tmp_path / "c.json").write_bytes(json.dumps(config).encode("utf-16"))
    args = ["select", "--samples", str(tmp_path / "s.parquet"), "--config", str(tmp_path / "c.json"),
            "--out", str(tmp_path / "o.parquet")]
    assert main(args) == 0 and pq.read_table(tmp_path / "o.parquet").num_rows == 5
    (tmp_path / "c.json").write_bytes(json.dumps({**config, "note": "Grüße"}, ensure_ascii=False).encode("latin-1"))
    assert main(args) != 0
    assert "--config" in (err := capsys.readouterr().err) and "not UTF-8 text" in err


@pytest.mark.parametrize("numpy_state", [True, False])
def test_the_select_command_asks_the_read_for_norms_where_the_numpy_state_takes_them(tmp_path, monkeypatch,
                                                                                     numpy_state):
    # The select command's early read computes the rows' squared norms only where the numpy state may take them
    # (the compiled state computes its own: there they would only slow the read); the same picks either way.
    import json as _json

    from lightly_airflow.cli import main
    from lightly_airflow.selection import cli as select_cli
    from lightly_airflow.selection import kernels

    x = clustered(400, d=16, seed=8)
    pq.write_table(pa.table({"key": [f"k{i:04d}" for i in range(400)],
                             "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 16)}),
                   tmp_path / "s.parquet")
    (tmp_path / "c.json").write_text(_json.dumps(
        {"n_samples": 30, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}))
    asked = []
    read = select_cli.read_embedding_rows

    def recording(*a, **k):  # type: ignore[no-untyped-def]
        asked.append(k.get("sqnorms"))
        return read(*a, **k)

    monkeypatch.setattr(select_cli, "read_embedding_rows", recording)
    if not numpy_state:  # (every input takes the compiled state)
        for name in ("NUMPY_MAX_ROWS", "NUMPY_MAX_ROWS_HEAP", "NUMPY_MAX_ROWS_HEAP_WIDE", "NUMPY_MAX_ROWS_WIDE",
                     "NUMPY_MAX_WORK"):
            monkeypatch.setattr(kernels, name, -1)
    assert main(["select", "--samples", str(tmp_path / "s.parquet"), "--config", str(tmp_path / "c.json"),
                 "--out", str(tmp_path / "o.parquet")]) == 0
    assert asked == [numpy_state]
    ref = read(str(tmp_path / "s.parquet"))
    expected = kernels.farthest_point_order(ref.x, 30)[0]
    got = pq.read_table(tmp_path / "o.parquet").column("key").to_pylist()
    assert got == [f"k{i:04d}" for i in expected]


def test_the_early_read_is_guessed_from_the_config_as_loaded():
    # Before the config models import, the select command guesses from the loaded dict whether the candidates'
    # embeddings will be read: an EMBEDDINGS input without a task (an object-level one reads the objects' rows).
    from lightly_airflow.selection.cli import reads_embeddings

    div = {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}
    weights = {"input": {"type": "METADATA", "key": "EMBEDDINGS"}, "strategy": {"type": "WEIGHTS"}}
    objects = {"input": {"type": "EMBEDDINGS", "task": "cars"}, "strategy": {"type": "DIVERSITY"}}
    assert reads_embeddings({"n_samples": 5, "strategies": [weights, div]})
    assert not reads_embeddings({"n_samples": 5, "strategies": [weights]})
    assert not reads_embeddings({"n_samples": 5, "strategies": [objects, weights]})
    assert not reads_embeddings({"strategies": "EMBEDDINGS"}) and not reads_embeddings(["EMBEDDINGS"])
    assert not reads_embeddings({"strategies": [None, {"input": "EMBEDDINGS"}]})


def test_a_select_process_never_imports_numpy_ma(tmp_path):
    # numpy's np.unique imports numpy.ma on its first call (~10 ms, on a pass thread in the middle of the picks):
    # the numpy state's catch-up of a few waiting rows took its rows' epochs with it.
    # (wide data as the images' embeddings: there a few waiting rows catch up; 256-D clusters never got there)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((200, 1280))[rng.integers(0, 200, 3000)] + rng.standard_normal((3000, 1280))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    t = pa.table({"key": [f"k{i:05d}" for i in range(3000)],
                  "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 1280)})
    pq.write_table(t, tmp_path / "s.parquet")
    (tmp_path / "c.json").write_text(json.dumps(
        {"n_samples": 800, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}))
    _select_cli_without(tmp_path, tmp_path / "o.parquet", "numpy.ma")
    assert pq.read_table(tmp_path / "o.parquet").num_rows == 800

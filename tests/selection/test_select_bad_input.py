"""``lightly-airflow select`` given the mistakes a new user makes: each is one message naming the option, the file
and the fix (exit 1, no traceback), found before any work; a good run right after one still selects."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lightly_airflow.cli import main

CONFIG = {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    emb = pa.array([list(map(float, row)) for row in rng.normal(size=(40, 8))], pa.list_(pa.float32()))
    keys = [f"img {i}.png" for i in range(40)]
    pq.write_table(pa.table({"key": keys, "embedding": emb}), tmp_path / "s.parquet")
    (tmp_path / "c.json").write_text(json.dumps(CONFIG))
    return tmp_path


def _select(files, *extra: str, samples: str | None = None, config: str | None = None, out: str | None = None) -> int:
    return main(["select", "--samples", samples or str(files / "s.parquet"), "--config", config or str(files / "c.json"),
                 "--out", out or str(files / "o.parquet"), *extra])


def _error(capsys, *words: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("lightly-airflow select: error: ") and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)
    return err


def test_a_samples_or_preselected_file_that_is_no_parquet_file_is_named_with_the_fix(files, capsys) -> None:
    (files / "folder.parquet").mkdir()
    (files / "empty.parquet").write_bytes(b"")
    (files / "table.parquet").write_text("key,embedding\na,1\n")  # a CSV renamed
    for name, problem in [("missing.parquet", "does not exist"), ("folder.parquet", "is a folder, not a file"),
                          ("empty.parquet", "is empty (0 bytes)"), ("table.parquet", "is not a Parquet file")]:
        path = str(files / name)
        assert _select(files, samples=path) == 1, name
        _error(capsys, f"--samples {path!r}: {problem}", "Fix: give the path of a Parquet file (`lightly-airflow select --help`")
        assert _select(files, "--preselected", path) == 1, name
        _error(capsys, f"--preselected {path!r}: {problem}")
    assert not (files / "o.parquet").exists()
    assert _select(files) == 0  # (the good run after the bad ones)
    assert pq.read_table(files / "o.parquet").num_rows == 5


def test_out_is_checked_before_the_work_and_its_missing_folder_is_made(files, capsys) -> None:
    (files / "taken.parquet").mkdir()
    assert _select(files, out=str(files / "taken.parquet")) == 1
    _error(capsys, f"--out {str(files / 'taken.parquet')!r}: is a folder", "Fix:")
    assert _select(files, out=str(files / "c.json" / "o.parquet")) == 1  # (its "folder" is a file)
    _error(capsys, "--out", "its folder cannot be made")
    out = files / "new folder" / "ünïcødé" / "picks.parquet"
    assert _select(files, out=str(out)) == 0
    assert pq.read_table(out).num_rows == 5


def test_a_config_files_problems_name_the_option_and_the_file(files, capsys) -> None:
    bad = files / "n0.json"
    bad.write_text(json.dumps({**CONFIG, "n_samples": 0}))
    assert _select(files, config=str(bad)) == 1
    _error(capsys, f"--config {str(bad)!r}: selection config has 1 problem(s)", "  - n_samples: must be a positive",
           "Fix: correct the listed keys")


def test_a_negative_seed_is_refused_where_it_is_given(files, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        _select(files, "--seed", "-1")
    assert exit_.value.code == 2
    assert "argument --seed: '-1' must be 0 or a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _select(files, "--seed", "five")
    assert "argument --seed: 'five' is not an integer" in capsys.readouterr().err
    assert _select(files, "--seed", "0") == 0


def test_a_negative_random_seed_is_lightly_s_any_integer(files) -> None:
    """Lightly's model takes any integer ``random_seed``; numpy's generators none below 0: a seed s below 0 is
    2**64 + s (the same 64 bits), so a config pasted from Lightly runs, and the same seed picks the same."""

    def picks(seed: int) -> list[str]:
        random = {"n_samples": 5, "strategies": [{"input": {"type": "RANDOM", "random_seed": seed},
                                                  "strategy": {"type": "WEIGHTS"}}]}
        assert _select(files, config=json.dumps(random)) == 0
        return pq.read_table(files / "o.parquet").column("key").to_pylist()

    assert picks(-3) == picks(2**64 - 3) == picks(-3)
    assert picks(-3) != picks(3)


@pytest.mark.parametrize(("column", "held"), [(pa.array(["0.1,0.2", "0.3,0.4"]), "holds string,"),
                                             (pa.array([["0.1", "0.2"], ["0.3", "0.4"]]), "holds list<element: string>,")],
                         ids=["text", "lists of text"])
def test_an_embedding_column_of_text_is_named_with_its_type(files, capsys, column, held) -> None:
    pq.write_table(pa.table({"key": ["a", "b"], "embedding": column}), files / "text.parquet")
    assert _select(files, samples=str(files / "text.parquet")) == 1
    _error(capsys, "text.parquet: the candidates' column 'embedding' holds", held,
           "not a list of numbers per row", "Fix: write each embedding as a list of floats")


def test_picks_that_share_a_key_are_warned_of(files, caplog):
    """A samples file holding one file twice (two rows, one key): when both rows are picked the run says so, naming
    the file, the key and the fix (the CLI reads only the picks' keys); a file without repeats says nothing."""
    rng = np.random.default_rng(1)
    emb = pa.array([list(map(float, row)) for row in rng.normal(size=(12, 8))], pa.list_(pa.float32()))
    keys = [f"img {i}.png" for i in range(12)]
    keys[7] = keys[3]
    pq.write_table(pa.table({"key": keys, "embedding": emb}), files / "twice.parquet")
    every = str(files / "every.json")
    (files / "every.json").write_text(json.dumps({**CONFIG, "n_samples": 12}))
    with caplog.at_level("WARNING", logger="lightly_airflow.selection.cli"):
        assert _select(files, samples=str(files / "twice.parquet"), config=every) == 0
    [warning] = [r.getMessage() for r in caplog.records if "more than once" in r.getMessage()]
    assert "twice.parquet" in warning and "'img 3.png'" not in warning and "img 3.png" in warning and "Fix:" in warning
    caplog.clear()
    with caplog.at_level("WARNING", logger="lightly_airflow.selection.cli"):
        assert _select(files, config=every.replace("every", "c")) == 0
    assert not [r for r in caplog.records if "more than once" in r.getMessage()]

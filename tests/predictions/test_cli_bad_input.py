"""``lightly-airflow predictions`` / ``metadata`` given a ``--lightly-uri`` that is no folder (a typo), and a
``tasks.json`` that cannot be read: an error naming the option, and a warning where the run is watched."""

from __future__ import annotations

import json
import logging

import pyarrow.parquet as pq
import pytest
from metadata.conftest import make_manifest, write_tree

from lightly_airflow.cli import main

P = ".lightly/predictions/"
SCHEMA = {"task_type": "classification", "categories": [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}]}


@pytest.mark.parametrize("command", ["predictions", "metadata"])
def test_a_lightly_uri_that_is_no_folder_is_an_error_naming_the_option(tmp_path, capsys, command) -> None:
    manifest = make_manifest(tmp_path, ["a.png"])
    (tmp_path / "notes.txt").write_text("a file")
    for given in [str(tmp_path / "lightyl-store"), str(tmp_path / "notes.txt")]:
        assert main([command, "--manifest", manifest, "--lightly-uri", given]) == 1
        err = capsys.readouterr().err
        assert err == (f"lightly-airflow {command}: error: --lightly-uri {given!r} is not a folder. Fix: give the "
                       "folder that holds .lightly/ (or the .lightly folder itself)\n")
    assert not (tmp_path / "pool" / "_staging" / "run-1" / command).exists()


def test_a_tasks_json_that_cannot_be_read_is_warned_and_a_good_one_after_it_loads(tmp_path, capsys, caplog) -> None:
    store = tmp_path / "store"
    write_tree(store, {P + "tasks.json": '["cls",]', P + "cls/schema.json": SCHEMA,
                       P + "cls/a.json": {"file_name": "a.png", "predictions": [{"category_id": 1,
                                                                                 "probabilities": [0.2, 0.8]}]}})
    manifest = make_manifest(tmp_path, ["a.png"])
    with caplog.at_level(logging.WARNING, logger="lightly_airflow.predictions.shard"):
        assert main(["predictions", "--manifest", manifest, "--lightly-uri", str(store)]) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [f"no predictions are loaded: {store}/.lightly/predictions/tasks.json: invalid JSON: a trailing "
                      "comma before ']' at line 1 column 7 (JSON allows none) near '[\"cls\",]'. Fix: remove that "
                      "comma"]  # (one fix: "… remove that comma. Fix: correct the file" said two)
    assert json.loads(capsys.readouterr().out)["errors"] == 1
    (store / P / "tasks.json").write_text('["cls"]')
    assert main(["predictions", "--manifest", manifest, "--lightly-uri", str(store)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tasks"] == ["cls"] and result["with_predictions"] == 1
    assert pq.read_table(result["output_uri"]).num_rows == 1

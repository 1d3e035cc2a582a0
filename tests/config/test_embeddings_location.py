"""worker_config.embeddings resolves inside .lightly/embeddings/ only, checked by the first task; no error
message shows a file's content (issue 14.1: /proc/self/environ would have printed the worker's secrets)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lightly_airflow.pipeline import ParamError, validate_params

SECRET = "AIRFLOW__CORE__FERNET_KEY=canary-3f9a"
CONFIG = {"n_samples": 1, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


@pytest.fixture()
def datasource(tmp_path: Path) -> Path:
    ds = tmp_path / "ds"
    folder = ds / ".lightly" / "embeddings"
    folder.mkdir(parents=True)
    (folder / "good.csv").write_text("filenames,embedding_0,embedding_1,labels\na.png,1,0,0\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "nested.csv").write_text("filenames,embedding_0,labels\na.png,1,0\n")
    (folder / "header.csv").write_text(f"{SECRET},embedding_0\na.png,1\n")
    outside = tmp_path / "secret.csv"
    outside.write_text(f"filenames,embedding_0\n{SECRET},1\n")
    os.symlink(outside, folder / "link.csv")
    os.symlink(tmp_path, folder / "dirlink")
    return ds


def _run(ds: Path, name: str) -> None:
    validate_params(datasource_uri=ds.as_uri(), datapool_uri=(ds.parent / "pool").as_uri(), lightly_uri=None,
                    selection_config=CONFIG, worker_config={"embeddings": name})


@pytest.mark.parametrize("name", ["good.csv", ".lightly/embeddings/good.csv", "sub/nested.csv"])
def test_names_inside_the_folder_are_accepted(datasource: Path, name: str) -> None:
    _run(datasource, name)


@pytest.mark.parametrize("name", [
    "/proc/self/environ", "file:///proc/self/environ", "../../../../../../proc/self/environ",
    ".lightly/embeddings/../../secret.csv", "sub/../../../secret.csv", "../secret.csv", "link.csv",
    "dirlink/secret.csv", "s3://other-bucket/e.csv", "C:\\\\secret.csv", "./good.csv",
])
def test_names_leaving_the_folder_are_refused_without_reading(datasource: Path, name: str) -> None:
    with pytest.raises(ParamError) as info:
        _run(datasource, name)
    message = str(info.value)
    assert "Parameter 'worker_config.embeddings'" in message and "Fix:" in message
    assert ".lightly/embeddings/" in message
    assert "canary" not in message and "FERNET" not in message


def test_missing_csv_and_bad_header_fail_without_content(datasource: Path) -> None:
    with pytest.raises(ParamError, match="does not exist"):
        _run(datasource, "nope.csv")
    with pytest.raises(ParamError, match="header") as info:
        _run(datasource, "header.csv")
    assert "canary" not in str(info.value)

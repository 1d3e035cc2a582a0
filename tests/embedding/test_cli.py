"""``lightly-airflow embed`` in-process: output, XCom pointer, argument errors."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lightly_airflow.cli import main
from lightly_airflow.columns import EMBEDDING, ETAG, KEY

from .conftest import write_manifest


def test_embed_command_writes_output_and_xcom_pointer(tmp_path: Path, image_root, capsys) -> None:  # noqa: ANN001
    root, keys = image_root
    manifest = write_manifest(tmp_path / "pool/_staging/r/manifest/shard-00004.parquet", root.as_uri(), keys[:3], root)
    first = pq.read_table(manifest)
    reuse = tmp_path / "reuse.parquet"
    pq.write_table(pa.table({KEY: [keys[0]], ETAG: [first[ETAG][0].as_py()],
                             EMBEDDING: pa.array([[1.0] + [0.0] * 1279], pa.list_(pa.float32()))}), reuse)
    xcom = tmp_path / "xcom/return.json"
    code = main(["embed", "--manifest", manifest, "--device", "cpu", "--batch-size", "4", "--num-workers", "0",
                 "--reuse", str(reuse), "--xcom-return", "--xcom-path", str(xcom)])
    assert code == 0
    pointer = json.loads(xcom.read_text())
    assert pointer["output_uri"].endswith("/embeddings/shard-00004.parquet")
    assert (pointer["embedded"], pointer["reused"]) == (2, 1)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == pointer
    assert pq.read_table(pointer["output_uri"])[EMBEDDING][0].as_py()[0] == 1.0


def test_embed_command_reports_bad_input(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit):
        main(["embed", "--manifest", "m.parquet", "--batch-size", "0"])
    with pytest.raises(SystemExit):
        main(["embed", "--manifest", "m.parquet", "--device", "tpu"])
    code = main(["embed", "--manifest", str(tmp_path / "manifest/shard-00000.parquet"), "--xcom-path",
                 str(tmp_path / "x/return.json")])
    assert code == 1 and "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x/return.json").exists()

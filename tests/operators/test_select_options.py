"""The select task's compaction option is checked when the DAG is parsed, not after a run's embedding."""

from __future__ import annotations

import pytest

from lightly_airflow.datapool.compaction import CompactionOptions
from lightly_airflow.operators.select import SelectAndCommitOperator


def _op(**kwargs):
    return SelectAndCommitOperator(task_id="select_and_commit", manifests=[], selection_config={},
                                   datapool_uri="file:///tmp/pool", **kwargs)


def test_compaction_options_are_read_at_parse_time() -> None:
    assert _op().compaction == CompactionOptions()
    assert _op(compaction={"mode": "off"}).compaction.mode == "off"
    tuned = CompactionOptions(min_small_files=10, target_file_bytes=2**26)
    assert _op(compaction=tuned).compaction is tuned
    with pytest.raises(ValueError, match="select_and_commit: compaction .* mode must be 'auto' or 'off'"):
        _op(compaction={"mode": "on"})
    with pytest.raises(ValueError, match="select_and_commit: compaction .*min_smal"):
        _op(compaction={"min_smal_files": 3})

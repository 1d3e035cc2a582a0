"""A reviewer who leaves picks out of a sequence run (``selected_sequence_length``) leaves out whole sequences: some
frames of one fail the decision (it committed the others as a sequence with a hole, and the left-out frame kept its
``sequence``), all of them commit the other sequences and no ``sequence`` on the left-out frames."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lightly_airflow import columns as C
from lightly_airflow.review import PROPOSAL_FILE, Review, ReviewError

from .runs import two_videos_proposed

SEQUENCES = {"n_samples": 6, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def test_a_reviewer_leaves_out_whole_sequences_or_nothing(tmp_path: Path) -> None:
    from lightly_airflow import staging
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.pipeline import select_and_commit

    source, pool, listed, proposed = two_videos_proposed(tmp_path, SEQUENCES)
    first, second = (s["frames"] for s in proposed.metrics["sequences"])
    picks = json.loads((Path(staging.reports_dir(str(pool), "manual__v")) / PROPOSAL_FILE).read_text())["picks"]
    assert picks == [*first, *second]

    def decide(dropped: tuple[str, ...]):
        return select_and_commit(datapool_uri=f"file://{pool}", run_id="manual__v", dag_id="t",
                                 manifests=listed.manifests, selection_config=SEQUENCES, selected_sequence_length=3,
                                 review=Review("decide", approved=True, by="bob", dropped=dropped))

    with pytest.raises(ReviewError, match=rf"some frames of 1 selected sequence.*{first[1]}, .*\(1 of 3 left out\)"):
        decide((first[1],))
    assert not Datapool(f"file://{pool}").exists()  # nothing committed
    assert decide(tuple(first)).selected == 3
    rows = Datapool(f"file://{pool}").read(columns=[C.KEY, C.SELECTED, "sequence"])
    chosen = rows.filter(pc.fill_null(rows.column(C.SELECTED), False))
    assert sorted(chosen.column(C.KEY).to_pylist()) == sorted(second) and set(chosen.column("sequence").to_pylist()) == {1}
    left = rows.filter(pc.is_in(rows.column(C.KEY), value_set=pa.array(first)))
    assert left.column("sequence").null_count == 3  # (it kept sequence 0 though not selected)

"""A proposal whose reviewer's Commit was refused (the datapool changed meanwhile) no longer awaits a reviewer: the
datapool page lists it under "Approved, not committed" with the reason and the fix, not under "Awaiting review",
and the run tab's ``awaiting_review`` follows the recorded state. A real run through the DAG tasks' functions."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from lightly_airflow.demo import Batch, add_batch
from lightly_airflow.review import Review, ReviewError

DIVERSE = {"n_samples": 6, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
MINE, OTHER, THIRD = "manual__mine", "manual__other", "manual__third"


def _select(pool: Path, run_id: str, manifests: list[str], review: Review | None = None):
    from lightly_airflow.pipeline import select_and_commit

    return select_and_commit(datapool_uri=f"file://{pool}", run_id=run_id, dag_id="t", manifests=manifests,
                             selection_config=DIVERSE, review=review)


def refused_run(tmp_path: Path) -> Path:
    """MINE proposed, OTHER committed meanwhile, the reviewer's Commit of MINE refused; THIRD proposed after OTHER
    and waits for a reviewer. Returns the pool's folder."""
    from faults.runs import prepare

    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("a", (0, 40), ()))
    mine = prepare(source, pool, MINE, DIVERSE)
    _select(pool, MINE, mine, Review("propose"))
    _select(pool, OTHER, prepare(source, pool, OTHER, DIVERSE))
    with pytest.raises(ReviewError, match="the datapool changed after the proposal"):
        _select(pool, MINE, mine, Review("decide", approved=True, by="alice"))
    add_batch(source, Batch("b", (40, 60), ()))  # (new files for THIRD)
    _select(pool, THIRD, prepare(source, pool, THIRD, DIVERSE), Review("propose"))
    return pool


def test_a_refused_commit_is_shown_apart_from_the_proposals_awaiting_review(tmp_path, monkeypatch) -> None:
    from html.parser import HTMLParser

    from ui_client import ui_client

    pool = refused_run(tmp_path)
    with ui_client(monkeypatch, {"main": {"uri": f"file://{pool}"}}) as client:
        ov = client.get("/lightly/api/pools/main").json()
        assert [w["run_id"] for w in ov["awaiting_review"]] == [THIRD]  # was: [THIRD, MINE]
        [gone] = ov["not_committed_after_review"]
        assert gone["run_id"] == MINE and gone["review"]["state"] == "approved, not committed"

        page = client.get("/lightly/pools/main").text
        text = _text(page, HTMLParser)
        waiting, _, refused = text.partition("Approved, not committed (1)")
        assert "Awaiting review (1)" in waiting and THIRD in waiting and MINE not in waiting
        assert MINE in refused and "approved by alice; not committed" in refused
        assert "clear the run's select task to propose again" in refused and THIRD not in refused
        # (stacked under 600 px: six columns overflowed a 400 px window to 514 px, seen in Chromium)
        assert page.count('data-label="Review"') == 2

        def run(run_id: str) -> dict:
            return client.get(f"/lightly/api/runs/t/{quote(run_id, safe='')}").json()

        assert run(MINE)["awaiting_review"] is False  # was: True (proposal.json and no commit)
        assert run(MINE)["not_committed_after_review"].startswith("approved by alice; not committed")
        assert run(THIRD)["awaiting_review"] is True and run(THIRD)["not_committed_after_review"] is None
        tab = client.get(f"/lightly/runs/t/{quote(MINE, safe='')}", follow_redirects=False)
        tab_text = _text(tab.text, HTMLParser)
        assert tab.status_code == 200 and "not committed. Review: approved by alice; not committed" in tab_text
        assert "awaiting review" not in tab_text and "dry run" not in tab_text
        assert client.get(f"/lightly/runs/t/{quote(THIRD, safe='')}", follow_redirects=False).status_code == 303


def _text(page: str, parser_cls: type) -> str:
    parts: list[str] = []

    class P(parser_cls):  # type: ignore[misc,valid-type]
        def handle_data(self, data: str) -> None:
            parts.append(data)

    P().feed(page)
    return " ".join(" ".join(parts).split())

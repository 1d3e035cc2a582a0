"""A reviewer's Commit refused at the commit: the proposal's report is written again through the report writer from
the proposal's own data (its recorded summary and picks, the staging rows against the pool version it read), so the
report says what ``proposal.json`` records, and a report lost with the proposal's write comes back; its "Missed goals"
blame no reviewer for a commit that did not happen; and the refused deciding task sends the run's metrics
(committed 0) before it fails. Real images, real runs, real Delta commits."""

from __future__ import annotations

import html
import json
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from review_runs import DIVERSE, commit_refused
from review_runs import select as _select

from lightly_airflow.demo import Batch, add_batch
from lightly_airflow.review import PROPOSAL_FILE, Review, ReviewError, recorded_review

REVIEW_LINE = re.compile(r'<p class="review"><b>Review:</b> ([^<]*)</p>')
GENERATED = re.compile(r"generated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


def _folder(pool: Path, run_id: str) -> Path:
    from lightly_airflow import staging

    return Path(staging.reports_dir(str(pool), run_id))


def _review_line(page: str) -> str:
    [line] = REVIEW_LINE.findall(page)
    return html.unescape(line)


def _without_review_and_time(page: str) -> str:
    return GENERATED.sub("generated -", REVIEW_LINE.sub("", page))


def test_a_refused_commit_writes_the_proposals_report_again_from_the_proposals_data(tmp_path: Path) -> None:
    from faults.runs import prepare

    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("b", (0, 8), ()))
    _select(pool, "manual__base", prepare(source, pool, "manual__base", DIVERSE))  # 6 selected before
    add_batch(source, Batch("a", (0, 24), ()))
    mine = prepare(source, pool, "manual__mine", DIVERSE)
    _select(pool, "manual__mine", mine, Review("propose"))
    folder = _folder(pool, "manual__mine")
    proposed = (folder / "index.html").read_text()
    assert _review_line(proposed).startswith("awaiting review")
    assert json.loads((folder / PROPOSAL_FILE).read_text())["version"] is not None  # (time travel to it)
    # Another run commits the same pictures: on the pool as it is now every file of "mine" is a duplicate and the
    # selection picks nothing (a report drawn from the deciding attempt would say 24 duplicates, 0 selected).
    _select(pool, "manual__other", prepare(source, pool, "manual__other", DIVERSE))

    with pytest.raises(ReviewError, match="the datapool changed after the proposal"):
        _select(pool, "manual__mine", mine, Review("decide", approved=True, by="alice"))
    record = json.loads((folder / PROPOSAL_FILE).read_text())
    page = (folder / "index.html").read_text()
    # The report says what the record says (one decision, one text), and nothing else changed: the same cards,
    # tables and goals as the proposal the reviewer saw, from its data.
    assert _review_line(page) == recorded_review(record)["text"]
    assert recorded_review(record)["state"] == "approved, not committed"
    assert _without_review_and_time(page) == _without_review_and_time(proposed)
    cards = page.replace("\n", "")
    assert '<div class="n">24</div><div class="l">ok</div>' in cards  # (not duplicates: the pool it read)
    assert '<div class="n">6</div><div class="l">selected before</div>' in cards  # (the version it read, not 12)

    # A proposal whose report was lost (its write failed; the proposal was recorded) gets it back when a retry of
    # the deciding task is refused again (a patch of the page found no page and left the run without a report).
    (folder / "index.html").unlink()
    with pytest.raises(ReviewError, match="the datapool changed after the proposal"):
        _select(pool, "manual__mine", mine, Review("decide", approved=True, by="bob"))
    again = (folder / "index.html").read_text()
    assert _review_line(again) == recorded_review(json.loads((folder / PROPOSAL_FILE).read_text()))["text"]
    assert _review_line(again).startswith("approved by bob; not committed")
    assert _without_review_and_time(again) == _without_review_and_time(proposed)


def test_a_refused_leave_out_is_not_blamed_for_a_short_selection(tmp_path: Path) -> None:
    # n_samples 20 of 9 pictures: the goal is missed for want of candidates. A reviewer's leave-out that the commit
    # refused left nothing out of any commit: "Missed goals" said "the reviewer left out 1 of the run's picks
    # (committed as not selected)".
    from faults.runs import prepare

    config = {**DIVERSE, "n_samples": 20}
    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("a", (0, 9), ()))
    manifests = prepare(source, pool, "manual__r", config)
    _select(pool, "manual__r", manifests, Review("propose"), config)
    with pytest.raises(ReviewError, match="not among the proposal's 9 picks"):
        _select(pool, "manual__r", manifests, Review("decide", approved=True, by="bob", dropped=("nope.png",)), config)
    page = (_folder(pool, "manual__r") / "index.html").read_text()
    assert _review_line(page).startswith("approved by bob, leaving out 1 pick: nope.png; not committed")
    assert "only 9 candidates (ok, new, not selected before)" in page
    assert "the reviewer left out" not in page


class _Statsd:
    """A StatsD daemon's socket: the lines Airflow's StatsD logger sends."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def gauges(self) -> dict[str, float]:
        """The tagged gauges received (``airflow.lightly.<name>``, no legacy names), the latest value of each."""
        out: dict[str, float] = {}
        self.sock.settimeout(0.5)
        while True:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return out
            for line in data.decode().splitlines():
                name, _, rest = line.partition(":")
                if name.startswith("airflow.lightly.") and name.count(".") == 3:
                    out[name.removeprefix("airflow.")] = float(rest.split("|")[0])


@pytest.fixture
def statsd(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Statsd]:
    pytest.importorskip("statsd", reason="Airflow's StatsD logger needs the statsd package (apache-airflow[statsd])")
    from airflow.sdk._shared.observability.metrics import stats
    from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
    from airflow.sdk.configuration import conf
    from airflow.sdk.observability.metrics import stats_utils

    receiver = _Statsd()
    for name, value in {"STATSD_ON": "True", "STATSD_HOST": "127.0.0.1", "STATSD_PORT": str(receiver.port),
                        "OTEL_ON": "False", "STATSD_DATADOG_ENABLED": "False",
                        "STATSD_INFLUXDB_ENABLED": "False"}.items():
        monkeypatch.setenv(f"AIRFLOW__METRICS__{name}", value)
    stats.initialize(factory=stats_utils.get_stats_factory(),  # (as Airflow's task runner sets them up)
                     export_legacy_names=conf.getboolean("metrics", "legacy_names_on"))
    try:
        yield receiver
    finally:
        stats.initialize(factory=NoStatsLogger, export_legacy_names=False)
        receiver.sock.close()


def test_a_refused_deciding_task_sends_the_runs_metrics_before_it_fails(tmp_path: Path, statsd: _Statsd) -> None:
    from airflow.sdk import DAG
    from airflow.sdk.exceptions import AirflowFailException
    from faults.runs import prepare

    from lightly_airflow.operators.select import SelectAndCommitOperator

    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("a", (0, 12), ()))
    mine = prepare(source, pool, "manual__mine", DIVERSE)
    _select(pool, "manual__mine", mine, Review("propose"))
    _select(pool, "manual__other", prepare(source, pool, "manual__other", DIVERSE))  # the picks differ now
    statsd.gauges()  # (the proposing and the other run's figures: not sent by an operator, none)

    with DAG("lightly_datapool", schedule=None):
        op = SelectAndCommitOperator(task_id="commit_reviewed", manifests=mine, selection_config=DIVERSE,
                                     review="decide", review_task_id="review_selection",
                                     datapool_uri=f"file://{pool}")
    answer = {"chosen_options": ["Commit"], "responded_by_user": {"id": "1", "name": "alice"}}
    context = {"ti": SimpleNamespace(xcom_pull=lambda task_ids: answer), "run_id": "manual__mine",
               "dag": SimpleNamespace(dag_id="lightly_datapool"), "dag_run": None}
    with pytest.raises(AirflowFailException, match="the datapool changed after the proposal"):
        op.execute(context)
    gauges = statsd.gauges()
    # The run's figures as any run sends them (those of the proposal the reviewer saw), committed 0: a dashboard
    # showed the proposing task's "committed 0" and then nothing, as if the decision were still awaited.
    assert gauges["lightly.run.committed"] == 0.0
    assert gauges["lightly.run.processed"] == 12.0 and gauges["lightly.run.selected"] == 6.0
    assert gauges["lightly.run.candidates"] == 12.0 and gauges["lightly.run.duplicate"] == 0.0
    assert "lightly.run.goals_missed" in gauges and "lightly.selection.seconds" in gauges
    assert "lightly.datapool.version" not in gauges  # (nothing committed)


def test_a_commit_given_before_the_proposal_commits_nothing(tmp_path: Path) -> None:
    # The mismatch's fix, "clear the run's select task to propose again", done without the downstream tasks (the
    # CLI's `airflow tasks clear -t select_and_commit`): the review task kept alice's answer to the first proposal,
    # and the deciding task, cleared next, committed the new proposal's picks, which nobody had reviewed.

    from lightly_airflow.datapool import Datapool

    source, pool = tmp_path / "images", tmp_path / "pool"
    mine, alice = commit_refused(source, pool)
    _select(pool, "manual__mine", mine, Review("propose"))  # the select task cleared alone: a new proposal
    folder = _folder(pool, "manual__mine")
    record = json.loads((folder / PROPOSAL_FILE).read_text())
    assert recorded_review(record)["state"] == "awaiting review"
    versions = [e["version"] for e in Datapool(f"file://{pool}").history()]

    with pytest.raises(ReviewError, match=r"Commit by alice at .* was given before this proposal was made .* nobody "
                                          r"has reviewed these picks\. Nothing was committed; clear the review task"):
        _select(pool, "manual__mine", mine, alice)  # the deciding task cleared: alice's answer of before
    assert [e["version"] for e in Datapool(f"file://{pool}").history()] == versions  # nothing committed
    again = json.loads((folder / PROPOSAL_FILE).read_text())
    assert recorded_review(again)["state"] == "awaiting review" and again["picks"] == record["picks"]  # (still waits)

    bob = Review("decide", approved=True, by="bob", at=datetime.now(UTC).isoformat())  # the new proposal reviewed
    decided = _select(pool, "manual__mine", mine, bob)
    assert decided.committed and decided.review["by"] == "bob"

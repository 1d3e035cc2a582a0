"""``Review.keep``: the picks a reviewed commit keeps (a left-out key that is no pick, or part of a sequence, refused);
``review_body``: what the reviewer reads (a video run's files and frames, a dry run, a run decided before)."""

from __future__ import annotations

import pytest

from lightly_airflow.review import Review, ReviewError


class CountingPicks(list[str]):
    """The proposal's picks, counting how often something iterates over them."""

    iterations = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        type(self).iterations += 1
        return super().__iter__()


def test_keep_reads_the_picks_once_however_many_keys_are_left_out() -> None:
    picks = CountingPicks(f"k{i:05d}" for i in range(2000))
    dropped = tuple(picks[::2])  # 1000 keys left out
    review = Review("decide", approved=True, dropped=dropped)
    CountingPicks.iterations = 0
    kept = review.keep(picks)
    assert kept == set(picks[1::2])
    assert CountingPicks.iterations == 1  # (a set of the picks per left-out key was 1001 passes over them)


def test_keep_refuses_a_key_that_is_no_pick() -> None:
    review = Review("decide", approved=True, dropped=("a", "nope"))
    with pytest.raises(ReviewError, match="1 key\\(s\\) that are not among the proposal's 2 picks: 'nope'"):
        review.keep(["a", "b"])
    assert Review("decide", approved=True).keep(["a", "b"]) == {"a", "b"}


def test_keep_refuses_leaving_out_part_of_a_sequence() -> None:
    # (selected_sequence_length 3: a reviewer who left out a-01 alone committed a-00 and a-02 as sequence 0, a
    # "sequence" with a hole, and a-01's row kept sequence 0 though not selected)
    sequences = [{"video": "a.mp4", "frames": ["a-00", "a-01", "a-02"]}, {"video": "b.mp4", "frames": ["b-09", "b-10"]}]
    picks = ["a-00", "a-01", "a-02", "b-09", "b-10"]
    with pytest.raises(ReviewError, match=r"some frames of 1 selected sequence\(s\).*'a.mp4' has the frames a-00, "
                                          r"a-01, a-02 \(1 of 3 left out\)\. Nothing was committed"):
        Review("decide", approved=True, dropped=("a-01",)).keep(picks, sequences)
    whole = Review("decide", approved=True, dropped=("b-10", "b-09"))
    assert whole.keep(picks, sequences) == {"a-00", "a-01", "a-02"}
    assert Review("decide", approved=True, dropped=("a-01",)).keep(picks) == {"a-00", "a-02", "b-09", "b-10"}


def test_a_run_cleared_after_its_review_tells_the_reviewer_that_answering_changes_nothing() -> None:
    # Clearing select_and_commit with its downstream tasks after the decision asks the reviewer again; the select task
    # answers with the recorded decision (the commit's metadata, or the discard's record: tests/faults/test_review.py),
    # and so does commit_reviewed whatever the new answer. The body said "3 samples selected ... Commit adds exactly
    # these picks": a Discard then left the commit in place, a Commit of a discarded run committed nothing, silently.
    from lightly_airflow.review import review_body

    proposed = {"selected": 3, "candidates": 8, "version": None, "review": Review("propose").to_dict()}
    assert review_body(proposed, "/r").startswith("**3** samples selected of 8 candidates")
    committed = {**proposed, "version": 4, "committed": True,
                 "review": Review("decide", approved=True, by="alice").to_dict()}
    body = review_body(committed, "/r/x")
    assert body.startswith("**This run was reviewed before: approved by alice.** It committed datapool version 4, "
                           "and answering again changes nothing"), body
    assert "[Open the curation report](/r/x)" in body and "Commit** adds" not in body
    discarded = {**proposed, "review": Review("decide", approved=False, by="bob").to_dict()}
    assert review_body(discarded, "/r").startswith("**This run was reviewed before: discarded by bob: nothing "
                                                   "committed.** It committed nothing, and answering again")


def test_the_reviewer_reads_a_video_runs_files_and_frames_apart() -> None:
    # (a run's processed counts its samples: 2 videos of 31 frames said "62 files processed in this run")
    from lightly_airflow.review import review_body

    videos = {"selected": 6, "candidates": 62, "processed": 62, "listing": {"listed": 2, "processed_files": 2}}
    assert review_body(videos, "/r").startswith("**6** samples selected of 62 candidates (2 files processed "
                                                "(62 samples, video frames included) in this run, 0 selected before)")
    images = {**videos, "processed": 2, "candidates": 2}
    assert "(2 files processed in this run, 0 selected before)" in review_body(images, "/r")


def test_the_reviewer_of_a_dry_run_reads_that_nothing_is_committed() -> None:
    # (enable_datapool_update false with LIGHTLY_REVIEW: the body said "Commit adds exactly these picks to the
    # datapool"; a Commit recorded "approved" and committed nothing, and a cleared run's body said "It committed
    # datapool version None")
    from lightly_airflow.review import DRY_RUN_NOTE, review_body

    proposed = {"selected": 3, "candidates": 8, "processed": 8, "dry_run": True, "review": Review("propose").to_dict()}
    body = review_body(proposed, "/r")
    assert body.startswith(DRY_RUN_NOTE) and "nothing is committed whichever you answer" in body
    assert not review_body({**proposed, "dry_run": False}, "/r").startswith(DRY_RUN_NOTE)
    approved = {**proposed, "committed": False, "review": Review("decide", approved=True, by="alice").to_dict()}
    assert "It committed nothing (a dry run), and answering again" in review_body(approved, "/r")
